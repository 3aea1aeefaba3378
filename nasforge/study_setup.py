"""A study's setup before the loop: its folder, its row (created, or checked against the given settings), the
goals the workers get, and the names a config refers to."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nasforge.config import SearchConfig
from nasforge.core import registry
from nasforge.core.errors import ConfigError, StorageError
from nasforge.core.types import canonical_json
from nasforge.storage.sql import Store, StudyInfo, user_data_dir


def artifact_dir_for(config: SearchConfig, store: Store) -> Path:
    """The study folder: logs and checkpoints. Beside a SQLite file, else under the user data dir."""
    if config.root:
        root = Path(config.root).expanduser().resolve()
    elif store.is_sqlite and store.engine.url.database not in (None, "", ":memory:"):
        db = Path(str(store.engine.url.database)).expanduser().resolve()
        root = db.parent / f"{db.stem}-studies"
    else:
        root = user_data_dir() / "studies"
    folder = (root / config.study).resolve()
    if folder.parent != root.resolve():  # a name that leaves its folder (or a link out of it): never written
        raise ConfigError(f"--study {config.study!r}: its folder {folder} would not be inside {root}")
    return folder


def open_study(config: SearchConfig, store: Store) -> StudyInfo:
    """Create the study, or check that an existing one has the same defining settings."""
    existing = store.get_study(config.study)
    wanted = config.identity()
    if existing is None:  # another runner may create it first: then its row comes back and is checked
        folder = artifact_dir_for(config, store)
        existing = store.create_study(config.study, owner=config.owner, config=wanted, objective=config.objective,
                                      direction=config.direction, artifact_dir=str(folder))
    stored = {k: existing.config.get(k) for k in wanted}
    diffs = [k for k in wanted if canonical_json(stored[k]) != canonical_json(wanted[k])]
    if diffs:
        k = diffs[0]
        raise StorageError(
            f"study {config.study!r} already exists with different settings ({k}: stored "
            f"{_short(stored[k])}, given {_short(wanted[k])}); choose another --study name"
        )
    return existing


def _short(value: Any) -> str:
    text = canonical_json(value)
    return text if len(text) <= 80 else text[:77] + "..."


def goals_json(config: SearchConfig) -> dict[str, Any] | None:
    """The study's objectives and constraints as the workers get them (None when it has neither)."""
    from nasforge.objectives.spec import study_goals

    goals = study_goals(config.identity())
    if not goals.active:
        return None
    return {**goals.to_json(), "costs": goals.costs_needed()}


def validate_names(config: SearchConfig) -> None:
    strategy_kind = "oneshot" if config.strategy in registry.ONESHOT else "strategy"
    for kind, name in (("space", config.space), (strategy_kind, config.strategy), ("evaluator", config.evaluator)):
        registry.resolve(kind, name)  # one line when a stored plugin is no longer installed
