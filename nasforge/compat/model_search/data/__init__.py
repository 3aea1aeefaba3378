"""Model Search's data providers."""
