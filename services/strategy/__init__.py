"""Strategy: fair values, fee-adjusted Kelly and arbitrage scans into signals."""
