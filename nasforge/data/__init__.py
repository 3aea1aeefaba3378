"""Data providers: train / validation / test splits behind one small interface."""
