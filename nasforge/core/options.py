"""Every option a space, strategy or evaluator takes, read from its factory's signature.

Names come from the registry and option names, types and defaults from the constructor, so
`nasforge options` and `search --help` stay true as code changes and list plugins too. Only the
one-line descriptions are written by hand (`option_help.py`, checked against the signatures by a test);
a plugin factory may carry its own as an `option_help` dict attribute."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nasforge.core import registry
from nasforge.core.errors import ConfigError

KINDS = ("space", "strategy", "evaluator")
# Constructor parameters nasforge fills itself, never a user's option.
_FILLED = {"strategy": frozenset({"space", "seed", "max_trials"}), "evaluator": frozenset({"data"})}
# Options that a search flag of their own sets (an --evaluator-option works for those not named here).
FLAGS = {("evaluator", "train"): {"epochs": "--epochs", "steps": "--steps", "batch_size": "--batch-size",
                                  "patience": "--patience", "device": "--device"},
         ("evaluator", "table"): {"table": "--table", "dataset": "--dataset"},
         ("strategy", "darts"): {"order": "--order"}}
OPTION_FLAG = {"space": "--space-option", "strategy": "--strategy-option", "evaluator": "--evaluator-option"}


@dataclass(frozen=True)
class Option:
    name: str
    type: str
    default: str  # as a user would write it in KEY=VALUE (YAML); "(required)" when there is none
    description: str


@dataclass(frozen=True)
class Entry:
    kind: str  # space, strategy or evaluator
    name: str
    path: str  # module:attribute of the factory
    summary: str  # the factory docstring's first sentence
    options: list[Option]


def names(kind: str) -> list[str]:
    """Registered names of a kind; strategies include the one-shot methods."""
    if kind == "strategy":
        return sorted({*registry.available("strategy"), *registry.available("oneshot")})
    return registry.available(kind)


def _table_kind(kind: str, name: str) -> str:
    return "oneshot" if kind == "strategy" and name in registry.available("oneshot") else kind


def format_default(value: Any) -> str:
    if value is inspect.Parameter.empty:
        return "(required)"
    if isinstance(value, str):
        return value
    if isinstance(value, tuple):
        value = list(value)
    try:
        return json.dumps(value)
    except TypeError:
        return repr(value)


def _annotation(param: inspect.Parameter) -> str:
    if param.annotation is inspect.Parameter.empty:
        return ""
    return param.annotation if isinstance(param.annotation, str) else getattr(param.annotation, "__name__",
                                                                                 str(param.annotation))


def descriptions(kind: str, name: str, factory: Callable[..., Any]) -> dict[str, str]:
    from nasforge.core.option_help import DESCRIPTIONS

    own = getattr(factory, "option_help", None)
    return dict(own) if isinstance(own, dict) else dict(DESCRIPTIONS.get((kind, name), {}))


def option_names(kind: str, name: str, factory: Callable[..., Any]) -> list[inspect.Parameter]:
    """The constructor's keyword options; a class whose `__init__` passes **options on to its base's
    (proxy_bananas to bananas) has the base's too, its own taking precedence."""
    filled = _FILLED.get(kind, frozenset())
    signatures = [inspect.signature(factory)]
    if isinstance(factory, type):
        inits = [cls.__dict__["__init__"] for cls in factory.__mro__ if "__init__" in cls.__dict__]
        signatures = [inspect.signature(init) for init in inits] or signatures
    found: dict[str, inspect.Parameter] = {}
    for signature in signatures:
        params = list(signature.parameters.values())
        for p in params:
            if p.name not in filled and p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                found.setdefault(p.name, p)
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            break
    return list(found.values())


def describe(kind: str, name: str) -> Entry:
    table_kind = _table_kind(kind, name)
    factory = registry.resolve(table_kind, name)
    text = descriptions(kind, name, factory)
    flags = FLAGS.get((kind, name), {})
    from nasforge.core.option_help import DEFAULT_OVERRIDES

    overrides = DEFAULT_OVERRIDES.get((kind, name), {})
    options = []
    for param in option_names(kind, name, factory):
        about = text.get(param.name, "")
        if param.name in flags:
            about = f"{about} (flag {flags[param.name]})" if about else f"flag {flags[param.name]}"
        default = overrides.get(param.name, param.default)
        options.append(Option(param.name, _annotation(param), format_default(default), about))
    path = name if registry.is_import_path(name) else registry.tables()[table_kind][name]
    return Entry(kind, name, path, summary(kind, name, factory), options)


def summary(kind: str, name: str, factory: Callable[..., Any]) -> str:
    from nasforge.core.option_help import SUMMARIES

    if (kind, name) in SUMMARIES:
        return SUMMARIES[(kind, name)]
    doc = inspect.getdoc(factory) or ""
    return doc.split("\n\n")[0].replace("\n", " ").split(". ")[0].rstrip(".")


def lookup(name: str, kind: str | None = None) -> list[Entry]:
    """Every registered thing called `name` (`darts` is a space and a strategy), or a one-line error.

    An import path (package.module:Class) is described as the given `kind`."""
    if registry.is_import_path(name):
        if not kind:
            raise ConfigError(f"{name} is an import path: say what it is with --kind space, strategy or evaluator")
        return [describe(kind, name)]
    kinds = [kind] if kind else list(KINDS)
    found = [describe(k, name) for k in kinds if name in names(k)]
    if not found:
        listing = "; ".join(f"{k}: {', '.join(names(k))}" for k in kinds)
        what = kind or "space, strategy or evaluator"
        raise ConfigError(f"unknown {what} {name!r}; known names are {listing}")
    return found


def render(entry: Entry) -> str:
    head = f"{entry.kind} {entry.name} ({entry.path})" + (f": {entry.summary}" if entry.summary else "")
    lines = [head]
    if not entry.options:
        lines.append("  no options")
        return "\n".join(lines)
    lines.append(f"  give each as {OPTION_FLAG[entry.kind]} KEY=VALUE (VALUE is YAML: 3, 0.1, true, [16, 32])")
    rows = [("option", "default", "type", "description")]
    rows += [(o.name, o.default, o.type, o.description) for o in entry.options]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        lines.append("  " + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3])
    return "\n".join(line.rstrip() for line in lines)


def render_names() -> str:
    lines = []
    for kind in KINDS:
        lines.append(f"{kind}:")
        for name in names(kind):
            lines.append(f"  {name:<14} {describe(kind, name).summary}".rstrip())
    lines.append("`nasforge options NAME` prints the options of NAME with their defaults")
    return "\n".join(lines)
