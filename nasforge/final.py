"""Final training and replay files: a found architecture retrained from scratch, stored as a trial.

A final trial retrains trial N's architecture on the study's data with a full cosine schedule and no
early stopping (`info.kind == "final"`, `parent` = N, key `final:<N's key>:<epochs>:<options hash>`);
a refit (`info.refit`) trains on the training and validation splits together, for small sets.
A replay file is everything needed to train one trial again exactly (space, architecture, evaluator
and its config, budget, seed); training it stores a `replay` trial (key `replay:<recipe hash>`). Both
are inserted already finished through `Store.add_finished_trial`, as ensembles and distilled students
are, so a resumed search never meets one half made; like those they count towards `--trials`.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nasforge.config import IDENTITY_FIELDS, SearchConfig
from nasforge.core import registry
from nasforge.core.errors import ConfigError, UserError
from nasforge.core.protocols import Reporter
from nasforge.core.types import JSONDict, Result, TrialSpec, TrialState, canonical_json
from nasforge.storage.sql import NewTrial, Store, StudyInfo, TrialRow

FINAL = "final"
REPLAY = "replay"
REPLAY_FORMAT = "nasforge-replay"
REPLAY_VERSION = 1
REPLAY_FIELDS = ("space", "space_config", "architecture", "evaluator", "evaluator_config", "budget", "seed",
                 "objective", "direction")
# Not retrainable from a replay file: they need their members or teacher, not just labels.
_NOT_REPLAYABLE = ("ensemble", "distillation")


@dataclass(frozen=True)
class Recipe:
    """How one trial is trained: what a replay file holds and what `run_trial` needs."""

    space: str
    space_config: JSONDict
    arch: JSONDict
    evaluator: str
    evaluator_config: JSONDict
    budget: JSONDict
    seed: int
    objective: str
    direction: str

    def to_json(self) -> JSONDict:
        return {"space": self.space, "space_config": self.space_config, "architecture": self.arch,
                "evaluator": self.evaluator, "evaluator_config": self.evaluator_config, "budget": self.budget,
                "seed": self.seed, "objective": self.objective, "direction": self.direction}

    def digest(self) -> str:
        return hashlib.sha1(canonical_json(self.to_json()).encode()).hexdigest()[:16]


def _short_hash(data: Any) -> str:
    return hashlib.sha1(canonical_json(data).encode()).hexdigest()[:10]


def _require_train_study(info: StudyInfo) -> None:
    config = info.config
    if config.get("evaluator") != "train" or not config.get("evaluator_config", {}).get("data"):
        raise ConfigError(f"study {info.name!r}: final training needs a study trained by the train evaluator "
                          f"(this study uses {config.get('evaluator')!r})")


def _trial(store: Store, info: StudyInfo, number: int) -> TrialRow:
    row = store.trial(info.id, number)
    if row is None:
        raise UserError(f"study {info.name!r} has no trial {number}")
    return row


def recipe_of(info: StudyInfo, row: TrialRow) -> Recipe:
    """The exact training of a stored trial: the study's evaluator config and the trial's budget and seed;
    final and replay trials keep their own evaluator config (data aside) in `info.evaluator_config`."""
    _require_train_study(info)
    kind = str(row.info.get("kind") or "search")
    if kind in _NOT_REPLAYABLE:
        raise UserError(f"trial {row.number} of study {info.name!r} is an {kind} trial: only trials trained on "
                        "labels alone can be retrained or replayed")
    config = dict(info.config["evaluator_config"])
    own = row.info.get("evaluator_config")
    if isinstance(own, dict):
        config = {**own, "data": config["data"]}
    return Recipe(space=str(info.config["space"]), space_config=dict(info.config.get("space_config") or {}),
                  arch=dict(row.arch), evaluator=str(info.config["evaluator"]), evaluator_config=config,
                  budget=dict(row.budget), seed=int(row.seed), objective=info.objective, direction=info.direction)


def _train(store: Store, info: StudyInfo, recipe: Recipe, new: NewTrial,
           reporter: Reporter | None = None) -> tuple[TrialRow, bool]:
    """Train `recipe` in a staging folder and insert it finished; an existing complete trial with the same
    key is returned instead (False: nothing stored), checked before training and again at the insert."""
    from nasforge.execution.worker import run_trial

    existing = [r for r in store.trials(info.id, [TrialState.COMPLETE]) if r.key == new.key]
    if existing:
        return existing[-1], False
    if not info.artifact_dir:
        raise ConfigError(f"study {info.name!r} has no study folder to write trials into")
    folder = Path(info.artifact_dir) / "trials"
    staging = folder / f".staging-{hashlib.sha1(new.key.encode()).hexdigest()[:12]}"
    shutil.rmtree(staging, ignore_errors=True)
    spec = TrialSpec(study=info.name, number=-1, arch=recipe.arch, seed=recipe.seed, space=recipe.space,
                     space_config=recipe.space_config, evaluator=recipe.evaluator,
                     evaluator_config=recipe.evaluator_config, budget=recipe.budget, objective=recipe.objective,
                     direction=recipe.direction, workdir=str(staging), threads=0)
    result = run_trial(spec, reporter)
    try:  # another command may have stored the same trial meanwhile: then that one, and nothing added
        return store.add_finished_trial_once(info.id, new, seed=recipe.seed,
                                             finish=staged_finish(result, staging, folder))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def staged_finish(result: Result, staging: Path, folder: Path) -> Callable[[int], Result]:
    """For `Store.add_finished_trial`: once the number is known, move the trial's staged files to
    `folder/<number>` and point its checkpoint there."""

    def finish(number: int) -> Result:
        target = folder / str(number)
        if result.checkpoint and staging.is_dir():
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
            result.checkpoint = str(target / Path(result.checkpoint).name)
        return result

    return finish


def _check_positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"--{name} must be a positive number (got {value})")
    return value


def final_options(epochs: int, batch_size: int | None = None, lr: float | None = None,
                  augment: JSONDict | None = None, seed: int | None = None, space: str | None = None,
                  tricks: JSONDict | None = None, refit: bool = False) -> JSONDict:
    """The options a final training sets on top of the study's evaluator config (validated).

    A space whose class has `final_training` (nasnet, darts: scheduled drop-path, auxiliary head) gets
    those tricks, as its paper trains a found cell; `tricks` overrides them (0 switches one off)."""
    options: JSONDict = {"epochs": _check_positive("epochs", epochs), "steps": None, "patience": None,
                         "schedule": "cosine"}
    if refit:
        options["refit"] = True
    paper: JSONDict = dict(getattr(registry.resolve("space", space), "final_training", {}) or {}) if space else {}
    for name, value in (tricks or {}).items():
        if value is None:
            continue
        if name not in ("drop_path", "auxiliary_weight"):
            raise ConfigError(f"unknown final-training trick {name!r}")
        if value and not paper:
            raise ConfigError(f"--{name.replace('_', '-')} applies to cell spaces (nasnet, darts), not {space!r}")
        paper[name] = value
    options.update(paper)
    if batch_size is not None:
        options["batch_size"] = _check_positive("batch-size", batch_size)
    if lr is not None:
        if isinstance(lr, bool) or not isinstance(lr, int | float) or not (lr > 0 and math.isfinite(lr)):
            raise ConfigError(f"--lr must be a positive number (got {lr})")
        options["hparams"] = {"learning_rate": float(lr)}
    if augment:
        options["augment"] = dict(augment)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ConfigError(f"--seed must be a non-negative integer (got {seed})")
    return options


def refit_epochs(row: TrialRow, train_rows: int, valid_rows: int) -> int:
    """Epochs for a refit of `row` on train + valid: its best epoch scaled by 1 / (1 - the validation share),
    as the training data grows by that factor (a trial without a best epoch needs --epochs)."""
    best = row.metrics.get("best_epoch") or row.metrics.get("epochs")
    if not best:
        raise UserError(f"trial {row.number} stores no best epoch; give --epochs for its refit")
    share = valid_rows / max(1, train_rows + valid_rows)
    return max(1, math.ceil(float(best) / (1.0 - share) - 1e-9))


def train_final(store: Store, info: StudyInfo, trial: int, epochs: int | None, *, batch_size: int | None = None,
                lr: float | None = None, augment: JSONDict | None = None,
                seed: int | None = None, reporter: Reporter | None = None, drop_path: float | None = None,
                auxiliary_weight: float | None = None, refit: bool = False) -> tuple[TrialRow, bool]:
    """Retrain trial `trial`'s architecture from scratch for `epochs` (cosine, no early stopping) and store it
    as a final trial. The seed defaults to the original trial's. `refit` trains on train + valid (the trial
    then has no validation metrics and no score) for `epochs`, by default `refit_epochs`. Returns (trial,
    whether it was trained now)."""
    from nasforge.evaluators.train import TrainEvaluator

    _require_train_study(info)
    row = _trial(store, info, trial)
    if row.state != TrialState.COMPLETE:
        raise UserError(f"trial {trial} of study {info.name!r} is {row.state.value}, not complete")
    if epochs is None and not refit:
        raise ConfigError("final training needs --epochs (only a refit has a default)")
    if epochs is None:
        probe = TrainEvaluator(**recipe_of(info, row).evaluator_config).dataset()
        epochs = refit_epochs(row, len(probe.train), len(probe.valid))
    options = final_options(epochs, batch_size, lr, augment, seed, space=str(info.config["space"]),
                            tricks={"drop_path": drop_path, "auxiliary_weight": auxiliary_weight}, refit=refit)
    base = recipe_of(info, row)
    config = {**base.evaluator_config, **options}
    if not refit:  # the final training of a refit trial trains on the training split again
        config.pop("refit", None)
    if isinstance(base.evaluator_config.get("hparams"), dict) and "hparams" in options:
        config["hparams"] = {**base.evaluator_config["hparams"], **options["hparams"]}
    evaluator = TrainEvaluator(**config)  # bad options fail here, before anything is trained or stored
    if evaluator.augment is not None and len(evaluator.dataset().spec.input_shape) != 3:
        raise ConfigError(f"--augment needs image data; study {info.name!r} has inputs of shape "
                          f"{tuple(evaluator.dataset().spec.input_shape)}")
    used_seed = base.seed if seed is None else int(seed)
    recipe = Recipe(space=base.space, space_config=base.space_config, arch=base.arch, evaluator=base.evaluator,
                    evaluator_config=config, budget={}, seed=used_seed, objective=base.objective,
                    direction=base.direction)
    given = {k: v for k, v in options.items() if k not in ("steps", "patience", "schedule")}
    key = f"final:{row.key}:{int(epochs)}:{_short_hash({**given, 'seed': used_seed})}"
    extra: JSONDict = {"kind": FINAL, "of": row.number, "epochs": int(epochs), "seed": used_seed,
                       "batch_size": int(config.get("batch_size", 128)), "lr": lr, "augment": options.get("augment"),
                       "schedule": "cosine", "drop_path": config.get("drop_path"),
                       "auxiliary_weight": config.get("auxiliary_weight"), "refit": bool(refit),
                       "evaluator_config": {k: v for k, v in config.items() if k != "data"}}
    return _train(store, info, recipe, NewTrial(key=key, arch=row.arch, parent=row.number, info=extra), reporter)


# ---- replay files ----------------------------------------------------------------------------------
def replay_payload(info: StudyInfo, row: TrialRow) -> JSONDict:
    """A replay file's content for a stored trial."""
    recipe = recipe_of(info, row)
    return {"format": REPLAY_FORMAT, "version": REPLAY_VERSION,
            "study": {"name": info.name, "config": info.config, "objective": info.objective,
                      "direction": info.direction},
            "trial": row.number, "key": row.key, **recipe.to_json(), "metrics": dict(row.metrics)}


def write_replay(info: StudyInfo, row: TrialRow, path: str | Path) -> Path:
    """Write the replay file of a trial (JSON)."""
    payload = replay_payload(info, row)
    target = Path(path)
    try:
        target.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    except OSError as exc:
        raise UserError(f"--replay {path}: cannot write: {exc.strerror or exc}") from exc
    return target


def read_replay(path: str | Path) -> tuple[JSONDict, Recipe, int | None]:
    """Parse and check a replay file: (its study block, its recipe, its trial number); anything wrong is one
    ConfigError."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--replay {path}: file not found")
    try:
        data = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"--replay {path}: not a JSON file ({str(exc).splitlines()[0]})") from exc
    if not isinstance(data, dict) or data.get("format") != REPLAY_FORMAT:
        raise ConfigError(f"--replay {path}: not a nasforge replay file (no \"format\": \"{REPLAY_FORMAT}\")")
    if data.get("version") != REPLAY_VERSION:
        raise ConfigError(f"--replay {path}: unsupported version {data.get('version')!r} (this nasforge reads "
                          f"{REPLAY_VERSION})")
    missing = [f for f in REPLAY_FIELDS if f not in data]
    if missing:
        raise ConfigError(f"--replay {path}: missing field(s) {', '.join(missing)}")
    types = {"space": str, "space_config": dict, "architecture": dict, "evaluator": str, "evaluator_config": dict,
             "budget": dict, "seed": int, "objective": str, "direction": str}
    for name, kind in types.items():
        if not isinstance(data[name], kind) or (kind is int and isinstance(data[name], bool)):
            raise ConfigError(f"--replay {path}: field {name!r} must be {kind.__name__}, got {data[name]!r}")
    if data["evaluator"] != "train" or not isinstance(data["evaluator_config"].get("data"), dict):
        raise ConfigError(f"--replay {path}: only trials of the train evaluator with a data config can be replayed")
    study = data.get("study")
    if study is not None and not isinstance(study, dict):
        raise ConfigError(f"--replay {path}: field 'study' must be an object")
    recipe = Recipe(space=data["space"], space_config=data["space_config"], arch=data["architecture"],
                    evaluator=data["evaluator"], evaluator_config=data["evaluator_config"], budget=data["budget"],
                    seed=int(data["seed"]), objective=data["objective"], direction=data["direction"])
    return dict(study or {}), recipe, _int_or_none(data.get("trial"))


def _check_recipe(path: str | Path, recipe: Recipe) -> None:
    """Space, architecture and evaluator options checked before any study is touched."""
    from nasforge.core import registry
    from nasforge.evaluators.train import TrainEvaluator

    try:
        space = registry.create("space", recipe.space, **recipe.space_config)
        space.from_json(recipe.arch)
    except UserError as exc:
        raise ConfigError(f"--replay {path}: {exc}") from exc
    except Exception as exc:
        raise ConfigError(f"--replay {path}: architecture does not fit space {recipe.space!r} "
                          f"({type(exc).__name__}: {exc})") from exc
    if recipe.direction not in ("maximize", "minimize"):
        raise ConfigError(f"--replay {path}: direction must be maximize or minimize")
    try:
        TrainEvaluator(**recipe.evaluator_config)
    except UserError as exc:
        raise ConfigError(f"--replay {path}: {exc}") from exc
    except TypeError as exc:
        raise ConfigError(f"--replay {path}: bad evaluator_config ({exc})") from exc


def _study_for(store: Store, path: str | Path, block: JSONDict, recipe: Recipe, name: str | None) -> StudyInfo:
    """The named study (the file's unless `name`); made from the file's study settings when the store lacks it.
    An existing study must have the replay's space, data and objective."""
    from nasforge.runner import artifact_dir_for

    name = name or block.get("name")
    if not name or not isinstance(name, str):
        raise ConfigError(f"--replay {path}: the file names no study; give --study NAME")
    info = store.get_study(name)
    if info is None:
        config = block.get("config")
        if not isinstance(config, dict) or any(f not in config for f in IDENTITY_FIELDS):
            raise UserError(f"no study named {name!r} in {store.url}, and --replay {path} lacks the study "
                            "settings to create it")
        config = {**config, "space": recipe.space, "space_config": recipe.space_config}
        search = SearchConfig(study=name, trials=1, **{f: config[f] for f in IDENTITY_FIELDS})
        return store.create_study(name, owner="", config=search.identity(), objective=recipe.objective,
                                  direction=recipe.direction, artifact_dir=str(artifact_dir_for(search, store)))
    _require_train_study(info)
    stored = info.config
    checks = (("space", stored.get("space"), recipe.space),
              ("space_config", stored.get("space_config") or {}, recipe.space_config),
              ("data", stored["evaluator_config"].get("data"), recipe.evaluator_config.get("data")),
              ("objective", info.objective, recipe.objective))
    for what, have, want in checks:
        if canonical_json(have) != canonical_json(want):
            raise ConfigError(f"--replay {path}: its {what} differs from study {name!r}'s; give another --study")
    return info


def train_replay(store: Store, path: str | Path, study: str | None = None,
                 reporter: Reporter | None = None) -> tuple[TrialRow, bool, StudyInfo]:
    """Train a replay file and store it as a `replay` trial. Returns (trial, trained now, study)."""
    block, recipe, number = read_replay(path)
    _check_recipe(path, recipe)
    info = _study_for(store, path, block, recipe, study)
    source = {"study": block.get("name"), "trial": number}
    original = store.trial(info.id, number) if number is not None and source["study"] == info.name else None
    same_study = original is not None and canonical_json(original.arch) == canonical_json(recipe.arch)
    extra: JSONDict = {"kind": REPLAY, "of": source["trial"] if same_study else None, "source": source,
                       "epochs": recipe.evaluator_config.get("epochs"), "seed": recipe.seed,
                       "evaluator_config": {k: v for k, v in recipe.evaluator_config.items() if k != "data"}}
    if recipe.budget:
        extra["budget"] = recipe.budget
    new = NewTrial(key=f"replay:{recipe.digest()}", arch=recipe.arch,
                   parent=source["trial"] if same_study else None, budget=recipe.budget, info=extra)
    row, created = _train(store, info, recipe, new, reporter)
    return row, created, info


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
