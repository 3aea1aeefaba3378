"""Backends: where trials run (in-process or a local process pool)."""
