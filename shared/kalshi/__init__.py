"""Kalshi protocol helpers shared by the client services and the simulator."""
