"""A study read back from its store: its settings, its trials, the best one and a trial's saved weights.

`nasforge.api.Study` adds everything else (objectives, pictures, prediction, export, ensembles) on top of
this; the exporter needs only this part, so it imports this module and not the API (no import cycle).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nasforge.core.errors import UserError
from nasforge.core.ranking import best_key
from nasforge.core.types import TrialState
from nasforge.storage.sql import Store, StudyInfo, TrialRow


class StoredStudy:
    """A stored search's rows: read, never written."""

    def __init__(self, name: str, storage: str | None = None, store: Store | None = None) -> None:
        self.store = store or Store(storage, create=False)
        self.info: StudyInfo = self.store.require_study(name)
        self.name = name

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.info.config)

    @property
    def trials(self) -> list[TrialRow]:
        return self.store.trials(self.info.id)

    @property
    def best_trial(self) -> TrialRow | None:
        complete = [t for t in self.trials if t.state == TrialState.COMPLETE and t.score is not None]
        return max(complete, key=best_key) if complete else None

    def trial(self, number: int | None = None) -> TrialRow:
        if number is None:
            best = self.best_trial
            if best is None:
                raise UserError(f"study {self.name!r} has no complete trial yet")
            return best
        row = self.store.trial(self.info.id, number)
        if row is None:
            raise UserError(f"study {self.name!r} has no trial {number}")
        return row

    def _checkpoint(self, number: int | None) -> Path:
        row = self.trial(number)
        if row.state != TrialState.COMPLETE:
            raise UserError(f"trial {row.number} of study {self.name!r} is {row.state.value}, not complete")
        if not row.checkpoint or not Path(row.checkpoint).is_file():
            raise UserError(f"trial {row.number} of study {self.name!r} has no saved weights "
                            f"({row.checkpoint or 'the evaluator saves none'})")
        return Path(row.checkpoint)
