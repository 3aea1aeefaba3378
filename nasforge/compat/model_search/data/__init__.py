"""Model Search's data providers: `csv_data.Provider` for CSV files, `Provider` (also `data.Provider`) to subclass."""

from nasforge.compat.model_search.data.data import Provider

__all__ = ["Provider"]
