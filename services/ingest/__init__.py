"""Ingest: trusted Kalshi order books and outside signals onto the bus."""
