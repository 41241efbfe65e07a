"""Execution: maker and sniper routing, live and paper, and the ledger."""
