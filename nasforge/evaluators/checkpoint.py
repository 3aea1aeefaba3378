"""A trained model's checkpoint: weights with everything needed to rebuild the model (space, architecture,
data spec, target scaling, preprocessing), in pure JSON types so that it loads with weights_only=True."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nasforge.core import registry
from nasforge.core.types import JSONDict, TrialSpec
from nasforge.data.base import Dataset, DataSpec
from nasforge.evaluators.devices import resolve_device
from nasforge.evaluators.train_data import TargetScale, _Prepared

CHECKPOINT_NAME = "model.pt"
CHECKPOINT_FORMAT = 1


def save_checkpoint(model: nn.Module, dataset: Dataset, data: _Prepared, spec: TrialSpec,
                    metrics: dict[str, float]) -> Path:
    """Write `model.pt` into the trial's folder."""
    path = Path(spec.workdir or ".") / CHECKPOINT_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    preprocessor = dataset.preprocessor.to_json() if dataset.preprocessor is not None else None
    payload = {
        "format": CHECKPOINT_FORMAT,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "arch": spec.arch,
        "space": spec.space,
        "space_config": spec.space_config,
        "data_spec": _plain(dataclasses.asdict(dataset.spec)),
        "target_scale": (None if data.mean is None or data.std is None
                         else {"mean": data.mean.tolist(), "std": data.std.tolist()}),
        "preprocessor": _plain(preprocessor),
        "metrics": metrics,
        "trial": {"study": spec.study, "number": spec.number, "seed": spec.seed},
    }
    torch.save(payload, path)
    return path


def _plain(value: Any) -> Any:
    """Pure JSON types (NumPy arrays become lists), so checkpoints load with weights_only=True."""
    return json.loads(json.dumps(value, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def load_checkpoint(path: str | Path, device: str = "cpu") -> tuple[nn.Module, JSONDict]:
    """Rebuild a trained model (space from the registry) in eval mode; regression models answer in data units."""
    payload = torch.load(Path(path), map_location=resolve_device(device), weights_only=True)
    spec = payload["data_spec"]
    data_spec = DataSpec(task=spec["task"], input_shape=tuple(spec["input_shape"]),
                         num_outputs=int(spec["num_outputs"]), class_names=tuple(spec.get("class_names", ())),
                         feature_names=tuple(spec.get("feature_names", ())),
                         feature_kinds=tuple(spec.get("feature_kinds", ())),
                         per_step=bool(spec.get("per_step", False)))
    space = registry.create("space", payload["space"], **payload["space_config"])
    net = space.build(space.from_json(payload["arch"]), data_spec)
    scale = payload.get("target_scale")
    model = net if scale is None else TargetScale(net, scale["mean"], scale["std"])
    model.load_state_dict(payload["state_dict"])
    model.to(resolve_device(device))
    model.eval()
    return model, payload
