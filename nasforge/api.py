"""The Python API: `nasforge.search(...)` returns a Study you can query, load and predict with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from nasforge.core import registry
from nasforge.core.errors import StorageError, UserError
from nasforge.storage.sql import Store, TrialRow
from nasforge.stored import StoredStudy

TrialRecord = TrialRow


class Study(StoredStudy):
    """A stored search, read back from its store."""

    # ---- results: config, trials, best_trial, trial(n) (nasforge.stored) ----------------------------
    @property
    def space(self) -> Any:
        return registry.create("space", self.config["space"], **self.config.get("space_config", {}))

    # ---- several objectives (nasforge.objectives) -----------------------------------------------------
    @property
    def objectives(self) -> list[Any]:
        """The study's objectives (`Objective`s); a single-objective study: its objective and params."""
        from nasforge.objectives.pareto import study_objectives

        return study_objectives(self.config, self.info.objective, self.info.direction)

    def pareto_front(self, objectives: list[str] | None = None) -> list[TrialRecord]:
        """The complete trials no other dominates on `objectives` (default: the study's), best on the first
        objective first; computed from the stored trials, so it always matches them."""
        from nasforge.objectives.pareto import pareto_front
        from nasforge.objectives.spec import parse_objectives

        return pareto_front(self.trials, parse_objectives(objectives) if objectives else self.objectives)

    def pick(self, expression: str) -> TrialRecord:
        """The best-scoring complete trial meeting `expression`, e.g. "latency_ms<5 and params<1e6"."""
        from nasforge.objectives.pick import pick_trial

        return pick_trial(self.trials, expression, self.name)

    def leaderboard(self) -> list[dict[str, Any]]:
        from nasforge.report.leaderboard import rows_for

        return rows_for(self.info, self.trials, self.space)

    def trials_dataframe(self) -> Any:
        """One row per trial: number, state, score, each metric, params, timing, architecture."""
        import pandas as pd

        space = self.space
        records = []
        for t in self.trials:
            try:
                summary = space.summary(space.from_json(t.arch))
            except Exception:  # an ensemble trial: its description
                described = t.arch.get("description", "")
                summary = described if isinstance(described, str) else ""
            rec: dict[str, Any] = {"number": t.number, "state": t.state.value, "key": t.key,
                                   self.info.objective: t.metrics.get(self.info.objective),
                                   "params": t.params, "duration": t.duration, "seed": t.seed,
                                   "parent": t.parent, "started": t.started, "finished": t.finished,
                                   "architecture": summary, "error": t.error, "checkpoint": t.checkpoint}
            for k, v in t.metrics.items():
                rec.setdefault(k, v)
            records.append(rec)
        return pd.DataFrame.from_records(records)

    # ---- pictures (nasforge.report.plots); each returns a matplotlib Figure, saved when `out` is given ----------
    def plot_history(self, out: str | Path | None = None) -> Any:
        """The objective per trial and the best so far, against trial number and wall time."""
        from nasforge.report.plots import history_figure

        return _saved(history_figure(self.info, self.trials), out)

    def plot_curves(self, trials: list[int] | None = None, metric: str | None = None,
                    out: str | Path | None = None) -> Any:
        """Learning curves of `trials` (default: the best five complete trials)."""
        from nasforge.report.plots import curves_figure

        numbers = trials if trials is not None else [r["trial"] for r in self.leaderboard()[:5] if r["rank"]]
        for n in numbers:
            self.trial(n)
        curves = {n: self.store.intermediate(self.info.id, n) for n in numbers}
        return _saved(curves_figure(self.info, curves, metric), out)

    def plot_pareto(self, out: str | Path | None = None) -> Any:
        """The study's front over its `--objectives` (`pareto_front`), else the objective against params
        (and FLOPs where stored)."""
        from nasforge.report.plots import pareto_figure

        return _saved(pareto_figure(self.info, self.trials), out)

    def plot_importance(self, out: str | Path | None = None) -> Any:
        """How much of the objective's variance each of the space's decisions explains."""
        from nasforge.report.plots import importance_figure

        return _saved(importance_figure(self.info, self.space, self.trials), out)

    def plot_parallel(self, out: str | Path | None = None) -> Any:
        """Parallel coordinates over the most important decisions and the objective."""
        from nasforge.report.plots import parallel_figure

        return _saved(parallel_figure(self.info, self.space, self.trials), out)

    def draw(self, trial: int | None = None, out: str | Path | None = None) -> Any:
        """The architecture of a trial (default: the best) as a drawing model (graphs of nodes and edges),
        written as SVG or PNG when `out` is given."""
        from nasforge.report.drawing import draw_trial

        return draw_trial(self.space, self.trial(trial), out)

    # ---- models --------------------------------------------------------------------------
    def load_model(self, trial: int | None = None) -> Any:
        """The trained torch module of a trial (the best by default), in eval mode."""
        from nasforge.predict import load_predictor

        return load_predictor(self._checkpoint(trial)).model

    def predictor(self, trial: int | None = None) -> Any:
        from nasforge.predict import load_predictor

        return load_predictor(self._checkpoint(trial))

    def predict(self, data: Any, trial: int | None = None) -> np.ndarray:
        """Predictions for a CSV path, a DataFrame or an array of raw feature rows.

        Class labels (as in the training file) for classification, values for regression.
        """
        return self.predictor(trial).predict(data)

    def export(self, out: str | Path, format: str | None = None, trial: int | None = None,
               ensemble: int | None = None, input_dtype: str = "float64") -> Any:
        """Write a trial (default: the best) as one TorchScript or ONNX file taking raw inputs (docs/shipping.md)."""
        from nasforge.export.exporter import export

        return export(self, out=out, format=format, trial=trial, ensemble=ensemble, input_dtype=input_dtype)


    # ---- ensembles and distillation (nasforge.ensemble) ------------------------------------------
    def ensemble(self, method: str = "greedy", size: int = 5, pool: int = 10, combine: str = "probabilities",
                 trials: list[int] | None = None) -> TrialRecord:
        """Store an ensemble of the best searched trials as a trial and return it (an identical one is reused).

        `size` distinct members for every `method`: average (the best `size`), weighted (fitted weights over the
        best `size`) or greedy (Caruana's selection with replacement of `size` members among the best `pool`);
        `combine`: probabilities or logits. One below its best member on validation has `info.worse_than_member`.
        """
        from nasforge.ensemble.build import make_ensemble
        from nasforge.ensemble.members import StudyMembers

        row, _ = make_ensemble(StudyMembers(self.store, self.info), method, size, pool, combine, trials)
        return row

    def distill(self, teacher: int | None = None, loss: str = "cross_entropy", max_params: int | None = None,
                trials: int = 1, temperature: float = 2.0, lambda_min: float = 0.25, lambda_max: float = 1.0,
                students: list[int] | None = None, epochs: int | None = None) -> list[TrialRecord]:
        """Distill the teacher (default: the best trial, ensembles included) into the best searched
        architectures with at most `max_params` parameters; returns the new distillation trials."""
        from nasforge.ensemble.distill import distill
        from nasforge.ensemble.members import StudyMembers

        return distill(StudyMembers(self.store, self.info), teacher=teacher, loss=loss, temperature=temperature,
                       lambda_min=lambda_min, lambda_max=lambda_max, max_params=max_params, trials=trials,
                       students=students, epochs=epochs)

    # ---- final training (nasforge.final) ------------------------------------------------------------
    def train(self, trial: int, epochs: int | None = None, batch_size: int | None = None, lr: float | None = None,
              augment: dict[str, Any] | None = None, seed: int | None = None, refit: bool = False) -> TrialRecord:
        """Retrain trial `trial`'s architecture from scratch for `epochs` (cosine schedule, no early stopping)
        and return the new final trial (an identical one already stored is returned as is). `refit` trains on
        the training and validation splits together (no validation metrics, no score; `epochs` defaults to
        the trial's best epoch scaled by the larger data: nasforge.final.refit_epochs)."""
        from nasforge.final import train_final

        row, _ = train_final(self.store, self.info, trial, epochs, batch_size=batch_size, lr=lr, augment=augment,
                             seed=seed, refit=refit)
        return row

    def write_replay(self, path: str | Path, trial: int | None = None) -> Path:
        """Write a replay file (JSON) that retrains a trial (default: the best) exactly; see `train_replay`."""
        from nasforge.final import write_replay

        return write_replay(self.info, self.trial(trial), path)


def _saved(fig: Any, out: str | Path | None) -> Any:
    if out is not None:
        from nasforge.report.plots import save

        save(fig, out)
    return fig


def plot_bench(folder: str | Path, out: str | Path | None = None) -> Any:
    """Strategies compared, from a `nasforge bench --out` folder."""
    from nasforge.report.plots import bench_figure, check_out

    if out is not None:
        check_out(out)
    return _saved(bench_figure(folder), out)


def train_replay(path: str | Path, study: str | None = None, storage: str | None = None) -> TrialRecord:
    """Train a replay file and store it as a trial of its study (or `study`); returns that trial."""
    from nasforge.final import train_replay as _train_replay

    row, _, _ = _train_replay(Store(storage), path, study)
    return row


def _in_memory(data: Any, label: Any, options: dict[str, Any]) -> None:
    """`search(X, y)`: the arrays become an ArrayProvider in `options` (the split options go to it)."""
    from nasforge.data.provider import ArrayProvider

    if options.get("provider") is not None:
        raise UserError("give data or provider=, not both")
    split = {key: options.pop(key) for key in ("task", "valid_fraction", "test_fraction") if key in options}
    options["provider"] = ArrayProvider(data, label, seed=options.get("seed", 0), **split)


def load_study(name: str, storage: str | None = None) -> Study:
    return Study(name, storage)


def search(data: Any = None, label: Any = None, **options: Any) -> Study:
    """Run (or resume) a search and return its Study. Options are the CLI's, in snake_case.

    Example: ``nasforge.search("train.csv", label="target", trials=20, test_fraction=0.2)``.
    In-memory data: ``search(X, y)`` (NumPy arrays, a DataFrame and labels, a torch Dataset of (x, y)
    items), ``search(frame, label="column")``, or ``search(provider=MyProvider())`` (docs/plugins.md).
    ``ensemble_schedule="nonadaptive"|"adaptive"|"intermixed"`` with ``ensemble_options={...}`` adds
    Model Search's ensemble trials during the search (docs/ensembles.md).
    """
    import time

    from nasforge.launch import build_config, run

    started = time.monotonic()  # a time budget counts from the call: the data load is spent from it too
    options.setdefault("progress", False)
    for kind in ("space", "strategy", "evaluator"):  # a class or function given directly: its import path
        if callable(options.get(kind)):
            options[kind] = registry.import_path(options[kind])
    if data is not None and not isinstance(data, str | Path):
        _in_memory(data, label, options)
        data, label = None, None
    elif isinstance(options.get("provider"), str):  # a registered provider name or an import path
        options["provider"] = registry.create("provider", options["provider"], **options.pop("provider_options", {}))
    schedule_name = options.pop("ensemble_schedule", None)
    schedule_options = options.pop("ensemble_options", None)
    config = build_config(data=data, label=label, **options)
    schedule = None
    if schedule_name is not None:
        from nasforge.ensemble.schedule import make_schedule

        schedule = make_schedule(schedule_name, schedule_options, seed=config.seed)
    elif schedule_options:
        raise UserError("ensemble_options needs ensemble_schedule (nonadaptive, adaptive or intermixed)")
    store = Store(config.storage)
    summary = run(config, store, ensemble=schedule, started=started)
    if summary.stopped_reason and not summary.finished:
        raise StorageError(summary.stopped_reason)
    return Study(config.study, store=store)
