"""One package per process: ``python -m services.<name>``."""
