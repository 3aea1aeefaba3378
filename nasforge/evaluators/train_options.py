"""The train evaluator's options, checked when it is made (one line naming the option, before anything runs),
and what a trial's training takes from them: its hyperparameters and its budget."""

from __future__ import annotations

import math
from typing import Any

from nasforge.core.errors import ConfigError
from nasforge.core.types import Architecture, JSONDict
from nasforge.data.augment import Augment
from nasforge.data.base import LANGUAGE_MODEL, Dataset
from nasforge.evaluators.devices import PRECISIONS
from nasforge.evaluators.train_data import _Prepared

# Spaces without `training_hparams(arch)` (everything but dnn) train with these, unless the evaluator's
# options say otherwise; a space's own values win over both.
DEFAULT_TRAINING: JSONDict = {"optimizer": "adam", "learning_rate": 1e-3, "lr_decay": 1.0, "grad_clip": None}
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULES = ("cosine", "exponential")
EXPONENTIAL_DECAY = 0.97  # per epoch, for schedule="exponential" when nothing else gives lr_decay
LM_GRAD_CLIP = 0.25  # language models clip gradients by default (the ENAS / DARTS PTB setting)
HPARAM_KEYS = ("optimizer", "learning_rate", "lr_decay", "grad_clip", "momentum", "weight_decay", "nesterov",
               "label_smoothing")


def _check_number(name: str, value: Any, low: float, high: float = math.inf, *, low_open: bool = False,
                  optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value > high or (value <= low if low_open else value < low):
        bound = f"{'>' if low_open else '>='} {low:g}" + (f" and <= {high:g}" if math.isfinite(high) else "")
        raise ConfigError(f"train evaluator: {name} must be a number {bound}, got {value!r}")
    return float(value)

def _check_hparams(value: Any) -> JSONDict:
    """`hparams` overrides: known keys only, so a typo fails before training rather than being ignored."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"train evaluator: hparams must be an object like {{'learning_rate': 0.01}}, got {value!r}")
    unknown = sorted(set(value) - set(HPARAM_KEYS))
    if unknown:
        raise ConfigError(f"train evaluator: unknown hparams {', '.join(unknown)}; allowed: {', '.join(HPARAM_KEYS)}")
    if value.get("optimizer") is not None and value["optimizer"] not in OPTIMIZERS:
        raise ConfigError(f"train evaluator: hparams optimizer must be one of {', '.join(OPTIMIZERS)}")
    if "learning_rate" in value:
        _check_number("learning_rate", value["learning_rate"], 0.0, low_open=True)
    return dict(value)

class TrainOptions:
    """The options of `nasforge.evaluators.train.TrainEvaluator` (described there), validated."""

    def __init__(self, data: JSONDict | None = None, epochs: int = 10, steps: int | None = None,
                 batch_size: int = 128, patience: int | None = 3, device: str = "cpu",
                 save_weights: bool = True, eval_batch_size: int | None = None, *, optimizer: str | None = None,
                 lr: float | None = None, momentum: float = 0.9, weight_decay: float = 0.0, nesterov: bool = False,
                 schedule: str | None = None, lr_decay: float | None = None, grad_clip: float | None = None,
                 augment: JSONDict | None = None, data_fraction: float = 1.0, data_seed: int = 0,
                 channels_last: bool | None = None, compile: bool = False, precision: str = "auto",
                 hparams: JSONDict | None = None, drop_path: float = 0.0, auxiliary_weight: float = 0.0,
                 refit: bool = False) -> None:
        if int(epochs) < 1 or int(batch_size) < 1 or (eval_batch_size is not None and int(eval_batch_size) < 1):
            raise ConfigError("train evaluator: epochs, batch_size and eval_batch_size must be >= 1")
        if steps is not None and int(steps) < 1:
            raise ConfigError(f"train evaluator: steps must be >= 1, got {steps}")
        if patience is not None and int(patience) < 1:
            raise ConfigError(f"train evaluator: patience must be >= 1 (or null to disable), got {patience}")
        if optimizer is not None and optimizer not in OPTIMIZERS:
            raise ConfigError(f"train evaluator: optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
        if schedule is not None and schedule not in SCHEDULES:
            raise ConfigError(f"train evaluator: schedule must be one of {', '.join(SCHEDULES)} or null, "
                              f"got {schedule!r}")
        for name, flag in (("nesterov", nesterov), ("compile", compile), ("save_weights", save_weights),
                           ("refit", refit)):
            if not isinstance(flag, bool):
                raise ConfigError(f"train evaluator: {name} must be true or false, got {flag!r}")
        if channels_last is not None and not isinstance(channels_last, bool):
            raise ConfigError(f"train evaluator: channels_last must be true, false or null, got {channels_last!r}")
        if precision not in PRECISIONS:
            raise ConfigError(f"train evaluator: precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if isinstance(data_seed, bool) or not isinstance(data_seed, int) or data_seed < 0:
            raise ConfigError(f"train evaluator: data_seed must be a non-negative integer, got {data_seed!r}")
        self.data = data
        self.epochs = int(epochs)
        self.steps = int(steps) if steps is not None else None
        self.batch_size = int(batch_size)
        self.patience = int(patience) if patience is not None else None
        self.device = device
        self.save_weights = bool(save_weights)
        self.eval_batch_size = int(eval_batch_size) if eval_batch_size is not None else None
        self.optimizer = optimizer
        self.lr = _check_number("lr", lr, 0.0, low_open=True, optional=True)
        self.momentum = _check_number("momentum", momentum, 0.0, 1.0)
        self.weight_decay = _check_number("weight_decay", weight_decay, 0.0)
        if nesterov and not self.momentum:
            raise ConfigError("train evaluator: nesterov needs momentum > 0")
        self.nesterov = nesterov
        self.schedule = schedule
        self.lr_decay = _check_number("lr_decay", lr_decay, 0.0, 1.0, low_open=True, optional=True)
        if schedule == "exponential" and self.lr_decay is None:
            self.lr_decay = EXPONENTIAL_DECAY
        self.grad_clip = _check_number("grad_clip", grad_clip, 0.0, low_open=True, optional=True)
        self.augment = Augment.from_options(augment)
        self.data_fraction = self._check_fraction(data_fraction)
        self.data_seed = data_seed
        self.channels_last = channels_last
        self.compile = compile
        self.precision = precision
        self.hparams = _check_hparams(hparams)
        self.drop_path = _check_number("drop_path", drop_path, 0.0, 0.95)
        self.auxiliary_weight = _check_number("auxiliary_weight", auxiliary_weight, 0.0)
        if refit and patience is not None:
            raise ConfigError("train evaluator: refit trains on the validation split too, so nothing can stop it "
                              "early; patience must be null")
        self.refit = refit
        self._dataset: Dataset | None = None
        self._prepared: dict[tuple[str, float], _Prepared] = {}
    def _fraction_of(self, budget: JSONDict) -> float:
        if budget.get("data_fraction") is not None:
            return self._check_fraction(budget["data_fraction"])
        return self.data_fraction
    def _hparams(self, space: Any, arch: Architecture, task: str) -> JSONDict:
        """Defaults < the evaluator's options < what the space searches (dnn: optimizer, lr, decay, clip)."""
        hp: JSONDict = dict(DEFAULT_TRAINING, momentum=self.momentum, weight_decay=self.weight_decay,
                            nesterov=self.nesterov)
        if task == LANGUAGE_MODEL:
            hp["grad_clip"] = LM_GRAD_CLIP
        for key, value in (("optimizer", self.optimizer), ("learning_rate", self.lr), ("lr_decay", self.lr_decay),
                           ("grad_clip", self.grad_clip)):
            if value is not None:
                hp[key] = value
        if hasattr(space, "training_hparams"):
            hp.update({k: v for k, v in space.training_hparams(arch).items() if v is not None})
        hp.update(self.hparams)
        return hp

    @staticmethod
    def _check_fraction(value: Any) -> float:
        fraction = _check_number("data_fraction", value, 0.0, 1.0, low_open=True)
        assert fraction is not None
        return fraction

    def _budget(self, budget: JSONDict) -> tuple[int, int | None]:
        """A trial's budget (from a multi-fidelity strategy) overrides the evaluator's own."""
        if budget.get("steps") is not None:
            return self.epochs, max(1, int(budget["steps"]))
        if budget.get("epochs") is not None:
            return max(1, int(budget["epochs"])), None
        return self.epochs, self.steps
