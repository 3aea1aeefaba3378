"""`nasforge search`'s options: flags over a YAML/TOML config file over the defaults, as one dict for build_config."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from nasforge.core.errors import ConfigError

SEARCH_KEYS = ("data", "label", "task", "header", "sep", "valid_file", "valid_fraction", "test_file",
               "test_fraction", "space", "strategy", "evaluator", "table", "dataset", "trials", "workers",
               "study", "owner", "storage", "root", "seed", "epochs", "steps", "batch_size", "patience",
               "device", "retries", "trial_timeout", "backend", "address", "trial_cpus", "trial_gpus",
               "time_budget", "baseline", "final_ensemble", "objectives", "max_params", "max_flops",
               "max_latency_ms", "max_peak_memory_mb", "scalarize", "reproducible")
SEARCH_DEFAULTS: dict[str, Any] = {"space": "dnn", "strategy": "model_search", "evaluator": "train",
                                   "seed": 0, "header": "auto", "valid_fraction": 0.2,
                                   "test_fraction": 0.0, "owner": ""}


def load_config_file(path: str) -> dict[str, Any]:
    """YAML or TOML; keys as the flags, with dashes or underscores."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--config {path}: file not found")
    text = p.read_text()
    try:
        if p.suffix == ".toml":
            import tomllib

            raw = tomllib.loads(text)
        else:
            from nasforge.core.numbers import load_yaml

            raw = load_yaml(text) or {}
    except Exception as exc:
        raise ConfigError(f"--config {path}: cannot parse: {str(exc).splitlines()[0]}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"--config {path}: expected a mapping of option names to values")
    out = {}
    allowed = set(SEARCH_KEYS) | {"space_options", "strategy_options", "evaluator_options", "constraints",
                                  "latency_options", "data_options"}
    for key, value in raw.items():
        name = str(key).replace("-", "_")
        if name not in allowed:
            raise ConfigError(f"--config {path}: unknown key {key!r}")
        out[name] = value
    return out


def search_options(args: argparse.Namespace) -> dict[str, Any]:
    """Flags beat the config file, which beats the defaults."""
    options = dict(SEARCH_DEFAULTS)
    if args.config:
        options.update(load_config_file(args.config))
    for key in SEARCH_KEYS:
        value = getattr(args, key, None)
        if value is not None:
            options[key] = value
    data_options = dict(options.pop("data_options", None) or {})
    data_options.update(dict(getattr(args, "data_option", None) or []))
    if data_options:
        options["data_options"] = data_options
    space_options = dict(options.pop("space_options", None) or {})
    space_options.update(dict(args.space_option))
    strategy_options = dict(options.pop("strategy_options", None) or {})
    strategy_options.update(dict(args.strategy_option))
    if getattr(args, "order", None) is not None:
        if options.get("strategy") != "darts":
            raise ConfigError("--order is DARTS's option: use it with --strategy darts")
        strategy_options["order"] = args.order
    evaluator_options = dict(options.pop("evaluator_options", None) or {})
    evaluator_options.update(dict(args.evaluator_option))
    latency_options = dict(options.pop("latency_options", None) or {})
    latency_options.update(dict(getattr(args, "latency_option", None) or []))
    if latency_options:
        options["latency_options"] = latency_options
    if evaluator_options:
        options["evaluator_options"] = evaluator_options
    options["space_options"] = space_options
    options["strategy_options"] = strategy_options
    label = options.get("label")
    if isinstance(label, str) and label.lstrip("-").isdigit():
        options["label"] = int(label)
    return options
