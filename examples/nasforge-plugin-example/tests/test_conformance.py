"""The plugin's own tests: nasforge's conformance checks on its space and strategy, one call each."""

from nasforge_example.space import LadderSpace
from nasforge_example.strategy import HillClimb

from nasforge.data.base import DataSpec
from nasforge.testing import check_space, check_strategy


def test_space_conforms() -> None:
    check_space(LadderSpace(), data=DataSpec("classification", input_shape=(2,), num_outputs=2))


def test_strategy_conforms() -> None:
    check_strategy(HillClimb, spaces=["nb201", "dnn", LadderSpace()])
