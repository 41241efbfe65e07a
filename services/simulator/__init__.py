"""A Kalshi-compatible exchange simulator."""
