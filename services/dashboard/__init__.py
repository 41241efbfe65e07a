"""Dashboard gateway and web UI."""
