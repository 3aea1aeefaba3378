"""Numbers as users type them: one reader for every option given as text, one check for every count.

YAML 1.1 (PyYAML) reads `1e-3` and `1E9` as strings, since its floats need a dot and a signed exponent;
every `--*-option KEY=VALUE` and every `--config` file goes through `load_yaml`, which reads numbers as
YAML 1.2 does, so `1e-3`, `1E-3`, `.001` and `1e9` are numbers wherever an option is numeric.
"""

from __future__ import annotations

import math
import re
from typing import Any

from nasforge.core.errors import ConfigError

# YAML 1.2 core schema floats (plus the `_` digit groups YAML 1.1 allowed): 1e-3, 1E9, .001, 2., -1.5e+3
_FLOAT = re.compile(r"^[-+]?(?:\.[0-9][0-9_]*|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?$"
                    r"|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$")
_INT = re.compile(r"^[-+]?[0-9][0-9_]*$")


def parse_number(text: str) -> int | float | None:
    """The number `text` spells (int when it has no dot or exponent), or None when it is not one."""
    word = text.strip()
    if _INT.match(word):
        return int(word.replace("_", ""))
    if _FLOAT.match(word):
        return float(word.replace("_", "").lower().replace(".inf", "inf").replace(".nan", "nan"))
    return None


def load_yaml(text: str) -> Any:
    """`yaml.safe_load` with YAML 1.2 floats (see the module docstring)."""
    import yaml

    return yaml.load(text, Loader=_loader())


_LOADER: Any = None


def _loader() -> Any:
    global _LOADER  # built once: PyYAML's resolvers are class attributes
    if _LOADER is None:
        import yaml

        class NumberLoader(yaml.SafeLoader):
            pass

        float_tag = "tag:yaml.org,2002:float"
        NumberLoader.yaml_implicit_resolvers = {
            first: [(tag, rx) for tag, rx in resolvers if tag != float_tag]
            for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
        NumberLoader.add_implicit_resolver(float_tag, _FLOAT, list("-+0123456789."))
        _LOADER = NumberLoader
    return _LOADER


def as_count(flag: str, value: Any, minimum: int = 1) -> int:
    """A whole number >= minimum: 3, 3.0, 1e3 or "3"; never a bool, 2.5 or "many" (a ConfigError naming
    the flag, so a config file's `trials: true` cannot quietly run one trial)."""
    number = parse_number(value) if isinstance(value, str) else value
    if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number) \
            or number != int(number) or number < minimum:
        what = {1: "a positive whole number", 0: "0 or more, a whole number"}.get(
            minimum, f"a whole number >= {minimum}")
        raise ConfigError(f"{flag} must be {what} (got {value!r})")
    return int(number)


def as_real(flag: str, value: Any, *, low: float = -math.inf, low_open: bool = False) -> float:
    """A finite number >= low (> low when `low_open`): 0.5, 1e-3 or ".5"; never a bool or text."""
    number = parse_number(value) if isinstance(value, str) else value
    if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number) \
            or number < low or (low_open and number == low):
        if low == 0:
            what = "a positive number" if low_open else "0 or more"
        else:
            what = f"a number {'>' if low_open else '>='} {low:g}" if math.isfinite(low) else "a finite number"
        raise ConfigError(f"{flag} must be {what} (got {value!r})")
    return float(number)
