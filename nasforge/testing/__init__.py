"""The conformance checks of nasforge's own spaces and strategies, for a plugin author's space or strategy.

    from nasforge.testing import check_space, check_strategy
    check_space(MySpace(), data=DataSpec("classification", (13,), 3))   # raises AssertionError on a failure
    check_strategy(MyStrategy)                                          # on the nb201 and dnn spaces

The same functions run in nasforge's tests/conformance on every built-in space and strategy; docs/plugins.md."""

from nasforge.testing.spaces import SPACE_CHECKS, build_forward_backward, check_space
from nasforge.testing.strategies import EVERY_SPACE, FIRST_SPACE, check_strategy

__all__ = ["EVERY_SPACE", "FIRST_SPACE", "SPACE_CHECKS", "build_forward_backward", "check_space", "check_strategy"]
