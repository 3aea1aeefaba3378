"""The torch-free half of user blocks: a space's `user_blocks` option as the import paths a study stores.

The blocks join the end of a space's block vocabulary, in the order given, so the tokens of the built-in
blocks never move; nasforge.models.user_blocks builds and checks them."""

from __future__ import annotations

from collections.abc import Sequence

from nasforge.core import registry
from nasforge.core.errors import ConfigError


def canonical_blocks(space: str, names: Sequence[str] | None, builtin: Sequence[str]) -> list[str]:
    """Import paths for `names` (registered block names, entry points or import paths), each checked to import."""
    if isinstance(names, str):
        names = [names]
    result: list[str] = []
    for name in names or []:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{space}: user_blocks entries are block names or import paths (got {name!r})")
        if name in builtin:
            raise ConfigError(f"{space}: {name!r} is a built-in block; user_blocks names blocks from user code")
        path = registry.canonical("block", name)
        if path in result:
            raise ConfigError(f"{space}: block {name!r} is listed twice in user_blocks")
        result.append(path)
    return result


def block_index(vocabulary: Sequence[str], name: str) -> int | None:
    """Where `name` (a vocabulary entry, or a registered name of a user block in it) sits, else None."""
    if name in vocabulary:
        return list(vocabulary).index(name)
    try:
        path = registry.canonical("block", name)
    except ConfigError:
        return None
    return list(vocabulary).index(path) if path in vocabulary else None
