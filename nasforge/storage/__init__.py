"""Where studies and trials live: SQLite by default, any SQLAlchemy URL."""

from nasforge.storage.sql import Store, StudyInfo, TrialRow, default_storage_url

__all__ = ["Store", "StudyInfo", "TrialRow", "default_storage_url"]
