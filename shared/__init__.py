"""The project's common package: the trading domain (money, fees, books, messages)
as plain typed code, plus the small I/O edges (bus, store, config, logging) every
service shares."""
