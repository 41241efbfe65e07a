"""Backtesting and replay of recorded market data."""
