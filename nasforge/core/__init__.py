"""Vocabulary shared by every part of nasforge (see docs/architecture.md)."""
