"""Turns user-level options into a SearchConfig and runs it: the one path behind CLI and API."""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path
from typing import Any

from nasforge.budget import TimeBudget, check_budget, too_short
from nasforge.config import SearchConfig
from nasforge.core import registry
from nasforge.core.errors import ConfigError
from nasforge.core.numbers import as_count, as_real
from nasforge.runner import Runner, RunSummary, artifact_dir_for, open_study, validate_names
from nasforge.storage.sql import Store

# Spaces whose networks read images (C, H, W): image builtins are handed to them as images.
IMAGE_SPACES = ("cnn", "nb201", "chain_cnn", "metaqnn", "nasnet", "darts", "enas_macro")
TRAIN_DEFAULTS: dict[str, Any] = {"epochs": None, "steps": None, "batch_size": 128, "patience": 5, "device": "cpu"}
DEFAULT_TRIALS = 20
UNLIMITED_TRIALS = 1_000_000  # --time-budget without --trials: trials until the budget is spent
MIN_DEFAULT_STEPS = 4000  # small tables need many epochs, large ones few: budget the default in steps
EPOCH_RANGE = (10, 100)


def default_epochs(train_rows: int, batch_size: int) -> int:
    """Enough epochs for about MIN_DEFAULT_STEPS optimizer steps, kept within EPOCH_RANGE."""
    steps_per_epoch = max(1, math.ceil(train_rows / batch_size))
    return int(min(EPOCH_RANGE[1], max(EPOCH_RANGE[0], math.ceil(MIN_DEFAULT_STEPS / steps_per_epoch))))


def default_study_name(data: str | None, space: str, strategy: str, dataset: str | None = None) -> str:
    """Same data, space and strategy give the same name, so re-running a command resumes it."""
    base = data or "data"
    if base.startswith("builtin:"):
        stem = base.split(":", 1)[1]
    else:
        stem = Path(base).name
        for suffix in (".gz", ".csv", ".tsv", ".txt"):
            stem = stem.removesuffix(suffix)
    if dataset:
        stem = f"{stem}-{dataset}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{stem}-{space}-{strategy}")


def build_config(
    *,
    data: str | None = None,
    label: str | int | None = None,
    space: str = "dnn",
    strategy: str = "model_search",
    evaluator: str = "train",
    trials: int | None = None,
    workers: int | None = None,
    study: str | None = None,
    owner: str = "",
    storage: str | None = None,
    root: str | None = None,
    seed: int = 0,
    epochs: int | None = None,
    steps: int | None = None,
    batch_size: int | None = None,
    patience: int | None = None,
    device: str | None = None,
    task: str | None = None,
    header: str | bool = "auto",
    sep: str | None = None,
    valid_file: str | None = None,
    valid_fraction: float = 0.2,
    test_file: str | None = None,
    test_fraction: float = 0.0,
    table: str | None = None,
    dataset: str | None = None,
    data_options: dict[str, Any] | None = None,
    space_options: dict[str, Any] | None = None,
    strategy_options: dict[str, Any] | None = None,
    evaluator_options: dict[str, Any] | None = None,
    progress: bool = True,
    retries: int = 1,
    trial_timeout: float | None = None,
    backend: str = "local",
    address: str | None = None,
    trial_cpus: float = 1.0,
    trial_gpus: float = 0.0,
    time_budget: float | None = None,
    baseline: bool = True,
    final_ensemble: bool | None = None,
    objectives: str | list[str] | None = None,
    constraints: dict[str, Any] | None = None,
    max_params: float | None = None,
    max_flops: float | None = None,
    max_latency_ms: float | None = None,
    max_peak_memory_mb: float | None = None,
    scalarize: Any = None,
    latency_options: dict[str, Any] | None = None,
    provider: Any = None,
    reproducible: int | None = None,
) -> SearchConfig:
    """Validate everything a user gave (names, numbers, the data itself) before any study is touched.

    `trials` defaults to 20, or to as many as `time_budget` (seconds) allows when that is given.
    `objectives` ("valid_accuracy,latency_ms:min"), the `max_*` limits (or `constraints={"params": 1e6}`),
    `scalarize` and `latency_options` are described in docs/objectives.md. `provider`: a
    nasforge.data.provider.Provider instance instead of `data` (nasforge/data/memory.py). `reproducible` (trials
    asked ahead) tells the strategy results in trial order: the same seed, the same study, for any --workers."""
    time_budget = check_budget(time_budget)
    if trials is None:
        trials = UNLIMITED_TRIALS if time_budget is not None else DEFAULT_TRIALS
    for flag, switch in (("--baseline", baseline), ("--final-ensemble", final_ensemble)):
        if switch is not None and not isinstance(switch, bool):
            raise ConfigError(f"{flag} must be true or false (got {switch!r})")
    trials = as_count("--trials", trials)
    workers = None if workers is None else as_count("--workers", workers)
    retries = as_count("--retries", retries, minimum=0)
    seed = as_count("--seed", seed, minimum=0)
    reproducible = None if reproducible is None else as_count("--reproducible", reproducible)
    trial_timeout = None if trial_timeout is None else as_real("--trial-timeout", trial_timeout, low=0, low_open=True)
    trial_cpus = as_real("--trial-cpus", trial_cpus, low=0, low_open=True)
    trial_gpus = as_real("--trial-gpus", trial_gpus, low=0)
    valid_fraction = as_real("--valid-fraction", valid_fraction)  # its range is checked with the data
    test_fraction = as_real("--test-fraction", test_fraction)
    epochs, steps, batch_size, patience = (
        None if value is None else as_count(flag, value, minimum=minimum)
        for flag, value, minimum in (("--epochs", epochs, 1), ("--steps", steps, 1),
                                     ("--batch-size", batch_size, 1), ("--patience", patience, 0)))
    strategy_kind = "oneshot" if strategy in registry.ONESHOT else "strategy"
    if strategy not in registry.ONESHOT and not registry.known("strategy", strategy):
        raise ConfigError(f"unknown strategy {strategy!r}; choose one of: "
                          f"{', '.join(sorted([*registry.available('strategy'), *registry.ONESHOT]))}, "
                          "or give an import path package.module:Name")
    for kind, name in (("space", space), (strategy_kind, strategy), ("evaluator", evaluator)):
        registry.resolve(kind, name)
    # user names are stored as their import paths, so workers and resume rebuild them
    space, evaluator = registry.canonical("space", space), registry.canonical("evaluator", evaluator)
    strategy = registry.canonical(strategy_kind, strategy)
    space_config = dict(space_options or {})
    strategy_config = dict(strategy_options or {})
    space_obj = registry.create("space", space, **space_config)  # fail early on bad space options
    if space_config.get("user_blocks") and hasattr(space_obj, "user_blocks"):  # stored as import paths, like the space
        space_config.update(user_blocks=space_obj.user_blocks, blocks=space_obj.blocks)
    if strategy_kind == "strategy":  # and on bad strategy options: the runner builds it the same way
        registry.create("strategy", strategy, space=space_obj, seed=seed, max_trials=trials, **strategy_config)
    ev_config: dict[str, Any]
    if evaluator == "synthetic":
        from nasforge.evaluators.synthetic import SyntheticEvaluator

        ev_config = dict(evaluator_options or {})
        ev_instance = _check_options("synthetic", SyntheticEvaluator, ev_config)
        objective, direction = "valid_accuracy", "maximize"
        name = study or default_study_name("synthetic", space, strategy)
    elif evaluator == "table":
        if not table:
            raise ConfigError("the table evaluator needs --table CSV (a benchmark table with an arch_str column)")
        from nasforge.evaluators.table import TableEvaluator

        ev_config = {"table": str(Path(table).expanduser().resolve()),
                                     "dataset": dataset or "cifar10"}
        ev_config.update(_extra_options("table", evaluator_options, reserved=("table",)))
        if isinstance(ev_config.get("costs"), str):
            ev_config["costs"] = str(Path(ev_config["costs"]).expanduser().resolve())
        # loads and checks the table before any study exists
        ev_instance = _check_options("table", TableEvaluator, ev_config)
        objective, direction = "valid_accuracy", "maximize"
        name = study or default_study_name(table, space, strategy, ev_config["dataset"])
    else:
        if provider is not None:
            data, dconf, dataset_obj = _provider_data(provider, data, study, space, strategy, storage, root,
                                                      label=label, task=task, valid_file=valid_file,
                                                      test_file=test_file, sep=sep)
        else:
            if not data:
                raise ConfigError("--data is required: a CSV/TSV file (optionally .gz) or builtin:NAME")
            from nasforge.data.loader import data_config, load_dataset

            flags = {"label": label, "task": task, "header": header, "sep": sep, "valid_file": valid_file,
                     "valid_fraction": valid_fraction, "test_file": test_file, "test_fraction": test_fraction,
                     "seed": seed, "as_images": _builtin_images(data, space)}
            extra = _data_options(data_options, flags)
            dconf = data_config(data, **flags, **extra)
            dataset_obj = load_dataset(dconf)
        ev_config = {"data": dconf}
        for key, value in (("epochs", epochs), ("steps", steps), ("batch_size", batch_size),
                           ("patience", patience), ("device", device)):
            ev_config[key] = TRAIN_DEFAULTS[key] if value is None else value
        if ev_config["epochs"] is None and ev_config["steps"] is None:
            ev_config["epochs"] = default_epochs(len(dataset_obj.train), int(ev_config["batch_size"]))
        ev_config = {k: v for k, v in ev_config.items() if v is not None}
        ev_config.update(_extra_options("train", evaluator_options, reserved=("data",)))
        for key in ("epochs", "steps", "batch_size"):  # an --evaluator-option may set them too
            if ev_config.get(key) is not None:
                ev_config[key] = as_count(f"--{key.replace('_', '-')}", ev_config[key])
        from nasforge.evaluators.train import TrainEvaluator, resolve_device

        ev_instance = _check_options("train", TrainEvaluator, ev_config)
        if backend == "local":  # trials run here: the device must exist here (a Ray worker checks its own)
            resolve_device(str(ev_config.get("device", "cpu")))
        if dataset_obj.spec.task == "regression":
            objective, direction = "valid_rmse", "minimize"
        elif dataset_obj.spec.task == "language_model":
            objective, direction = "valid_perplexity", "minimize"
        else:
            objective, direction = "valid_accuracy", "maximize"
        name = study or default_study_name(data, space, strategy)
    from nasforge.objectives.setup import resolve_goals
    from nasforge.objectives.setup import strategy_options as goal_strategy_options

    limits = dict(constraints or {})
    for cost, limit in (("params", max_params), ("flops", max_flops), ("latency_ms", max_latency_ms),
                        ("peak_memory_mb", max_peak_memory_mb)):
        if limit is not None:
            limits[cost] = limit
    goals = resolve_goals(objective=objective, direction=direction, objectives=objectives, constraints=limits,
                          scalarize=scalarize, latency_options=latency_options, strategy=strategy,
                          oneshot=strategy_kind == "oneshot", evaluator=ev_instance, evaluator_name=evaluator)
    objective, direction = goals.objective, goals.direction
    strategy_options = goal_strategy_options(strategy, dict(strategy_options or {}), goals)
    config = SearchConfig(study=name, space=space, strategy=strategy, evaluator=evaluator,
                          evaluator_config=ev_config, objective=objective, direction=direction,
                          trials=int(trials), space_config=space_config,
                          strategy_config=strategy_config, owner=owner, storage=storage,
                          root=root, workers=None if workers is None else int(workers), seed=int(seed),
                          progress=progress, retries=int(retries),
                          trial_timeout=None if trial_timeout is None else float(trial_timeout),
                          backend=str(backend), address=address, trial_cpus=float(trial_cpus),
                          trial_gpus=float(trial_gpus), time_budget=time_budget, baseline=bool(baseline),
                          final_ensemble=final_ensemble, objectives=goals.objectives, constraints=goals.constraints,
                          scalarize=goals.scalarize, latency=goals.latency, reproducible=reproducible)
    validate_names(config)
    if strategy_kind == "oneshot":
        from nasforge.oneshot.study import check_config

        check_config(config)
    return config


def _ray_modules(config: SearchConfig) -> list[str]:
    """The user code a Ray backend ships to its workers (none for the local backends)."""
    if config.backend != "ray":
        return []
    from nasforge.execution.plugins import module_sources, study_import_paths

    return module_sources(study_import_paths(config))


def _provider_data(provider: Any, data: str | None, study: str | None, space: str, strategy: str,
                   storage: str | None, root: str | None, **not_for_providers: Any) -> tuple[str, Any, Any]:
    """A Provider instance -> (the name its default study is called after, its data config, its dataset)."""
    from nasforge.data.memory import provider_config, study_folder

    if data:
        raise ConfigError("give data or provider=, not both")
    given = sorted(key for key, value in not_for_providers.items() if value is not None)
    if given:
        raise ConfigError(f"option(s) {', '.join(given)} do not apply to a provider (set them on the provider)")
    label = re.sub(r"[^a-z0-9]+", "_", str(getattr(provider, "name", "provider")).lower()).strip("_") or "provider"
    names: list[str] = []

    def folder_of(digest: str) -> Any:
        names.append(f"{label}-{digest[:8]}")
        return study_folder(storage, root, study or default_study_name(names[-1], space, strategy))

    dconf, dataset = provider_config(provider, folder_of)
    return (names[-1] if names else label), dconf, dataset


def _data_options(options: dict[str, Any] | None, flags: dict[str, Any]) -> dict[str, Any]:
    """`--data-option` values (e.g. format=sequence, step_labels=true); those with a flag of their own are refused."""
    extra = dict(options or {})
    if not all(isinstance(key, str) for key in extra):
        raise ConfigError(f"data options must be named, got {sorted(map(str, extra))}")
    taken = sorted(key for key in extra if key in flags)
    if taken:
        raise ConfigError(f"--data-option {taken[0]}=...: use its own flag (--{taken[0].replace('_', '-')})")
    return extra


def _builtin_images(data: str, space: str) -> bool | None:
    """`builtin:digits` goes to a convolutional space as 8x8 images, to the others as 64 features."""
    from nasforge.data.builtin import IMAGE_BUILTINS, PREFIX

    name = str(data).strip()
    if name.startswith(PREFIX) and name[len(PREFIX):] in IMAGE_BUILTINS and space in IMAGE_SPACES:
        return True
    return None


def _extra_options(evaluator: str, options: dict[str, Any] | None, reserved: tuple[str, ...]) -> dict[str, Any]:
    """`--evaluator-option` values; keys that the command's own flags set (the data, the table) are refused."""
    extra = dict(options or {})
    for key in reserved:
        if key in extra:
            raise ConfigError(f"--evaluator-option {key}=...: the {evaluator} evaluator's {key} comes from its own "
                              f"flag (--{key}), not from an option")
    return extra


def _check_options(evaluator: str, cls: Any, config: dict[str, Any]) -> Any:
    """Build the evaluator once so unknown or bad options fail here, before any study is touched."""
    import inspect

    known = [name for name in inspect.signature(cls.__init__).parameters if name != "self"]
    unknown = sorted(set(config) - set(known))
    if unknown:
        raise ConfigError(f"unknown {evaluator} evaluator option(s) {', '.join(unknown)}; known: {', '.join(known)}")
    try:
        return cls(**config)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{evaluator} evaluator: bad option value ({exc})") from None


def _run_oneshot(config: SearchConfig, store: Store, study: Any) -> RunSummary:
    """A weight-sharing search: its search phase and the retrained derived architecture become two trials."""
    import sys
    import time

    from nasforge.oneshot.study import run_oneshot

    start = time.perf_counter()
    rows = run_oneshot(config, store, study, echo=lambda text: print(text, file=sys.stderr, flush=True))
    complete = sum(r.state.value == "complete" for r in rows)
    return RunSummary(study=study, finished=len(rows), complete=complete, failed=len(rows) - complete, reused=0,
                      elapsed=time.perf_counter() - start, new_trials=[r.number for r in rows])


def _attach_log(folder: Path) -> logging.Handler:
    folder.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(folder / "search.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("nasforge")
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return handler


def _write_held_out(config: SearchConfig, folder: Path) -> None:
    """Save a carved test split as `test.csv` in the study folder, for `nasforge predict --evaluate`."""
    data = config.evaluator_config.get("data")
    target = folder / "test.csv"
    if config.evaluator != "train" or not data or target.exists():
        return
    from nasforge.data.loader import load_dataset

    rows = load_dataset(data).held_out_rows
    if rows is not None:
        rows.to_csv(target, index=False)


def run(config: SearchConfig, store: Store | None = None, ensemble: Any = None,
        started: float | None = None) -> RunSummary:
    """Open (or resume) the study and drive it to `config.trials` finished trials (or to the end of its
    time budget), after fitting the baseline and before the final ensemble (see nasforge.budget).

    `ensemble`: a nasforge.ensemble.schedule.Schedule, to add ensemble trials between search phases.
    `started`: when the user's command started (time.monotonic()), where a time budget counts from (default:
    now). A budget that ends before any trial finished raises ConfigError.
    """
    from nasforge.report.progress import ProgressBar

    budget = TimeBudget(config.time_budget, start=started) if config.time_budget is not None else None
    if ensemble is not None and config.strategy in registry.ONESHOT:
        raise ConfigError(f"--ensemble-schedule needs an ask/tell strategy, not the one-shot {config.strategy!r}")
    store = store or Store(config.storage)
    study = open_study(config, store)
    folder = Path(study.artifact_dir) if study.artifact_dir else artifact_dir_for(config, store)
    handler = _attach_log(folder)
    if config.evaluator == "train":
        from nasforge.data.memory import write_pending

        write_pending(config.evaluator_config.get("data"))  # in-memory data, for workers and resume
    _write_held_out(config, folder)
    try:
        if config.strategy in registry.ONESHOT:
            return _run_oneshot(config, store, study)
        backend = _start_backend_during_baseline(config, store, study, budget)
        already = store.counts(study.id).finished  # a failure that was retried counts once
        total = None if config.trials >= UNLIMITED_TRIALS else config.trials
        progress = ProgressBar(total=total, initial=min(already, config.trials), objective=config.objective,
                               enabled=config.progress, budget=budget)
        try:
            if ensemble is not None:
                from nasforge.ensemble.schedule import run_scheduled

                summary: RunSummary = run_scheduled(config, store, backend, progress, ensemble, budget)
            else:
                summary = Runner(config, store, backend, progress, budget).run()
        finally:
            backend.shutdown()
        if budget is not None and not store.counts(study.id).finished:
            raise too_short(budget)
        wanted = config.final_ensemble if config.final_ensemble is not None else budget is not None
        if wanted and config.evaluator == "train" and summary.complete and not summary.broken:
            _final_ensemble(store, study, budget, summary)
        return summary
    finally:
        logging.getLogger("nasforge").removeHandler(handler)
        handler.close()


def _start_backend_during_baseline(config: SearchConfig, store: Store, study: Any, budget: TimeBudget | None) -> Any:
    """The trial backend, its local worker processes started while this process fits the baseline (a worker's
    start-up is mostly imports, seconds each that need not wait for the fit). With a time budget already spent
    and no trial of the study finished, ConfigError (too_short) before any trial starts."""
    from concurrent.futures import ThreadPoolExecutor

    from nasforge.execution.local import make_backend

    def start() -> Any:
        return make_backend(config.workers, config.trial_timeout, backend=config.backend, address=config.address,
                            trial_cpus=config.trial_cpus, trial_gpus=config.trial_gpus,
                            modules=_ray_modules(config))

    if config.backend != "local" or not config.baseline:  # Ray is started from the main thread
        if config.baseline:
            _fit_baseline(config, store, study)
        backend = start()
    else:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="nasforge-start") as starter:
            starting = starter.submit(start)
            try:
                _fit_baseline(config, store, study)
            except BaseException:
                _shut_down_when_started(starting)
                raise
            backend = starting.result()
    if budget is not None and budget.trials_left() <= 0 and not store.counts(study.id).finished:
        backend.shutdown()
        raise too_short(budget)
    return backend


def _shut_down_when_started(starting: Any) -> None:
    """Stop a backend that was starting while an error is raised (its own start error matters less)."""
    import contextlib

    with contextlib.suppress(Exception):
        starting.result().shutdown()


def _fit_baseline(config: SearchConfig, store: Store, study: Any) -> None:
    """Fit and store the gradient-boosting baseline once per study, on a table's own split."""
    stored = store.get_study(study.name)
    if config.evaluator != "train" or stored is None or stored.baseline:
        return
    from nasforge.baseline import applies_to, fit_baseline
    from nasforge.data.loader import load_dataset

    dataset = load_dataset(config.evaluator_config["data"])
    if not applies_to(dataset):
        return
    result = fit_baseline(dataset, seed=config.seed)
    store.set_baseline(study.id, result)
    logging.getLogger("nasforge.baseline").info("baseline %s: %s", result["model"], result)


def _final_ensemble(store: Store, study: Any, budget: TimeBudget | None, summary: RunSummary) -> None:
    """The greedy ensemble of the best trials, stored only when it beats the best one on validation."""
    from nasforge.ensemble.final import final_ensemble

    row = final_ensemble(store, store.require_study(study.name), budget=budget)
    if row is not None and row.number not in summary.new_trials:
        summary.new_trials.append(row.number)
    summary.final = row.number if row is not None else None
