"""Compatibility layers for code written against other NAS tools."""
