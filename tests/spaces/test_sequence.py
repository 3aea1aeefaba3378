"""The sequence space: mixed stacks, growth, keys, and a network that never reads the padding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nasforge.core.errors import ConfigError
from nasforge.data.base import DataSpec
from nasforge.models.sequence import SequenceNetwork, reverse_within_length
from nasforge.spaces.base import InvalidArchitecture
from nasforge.spaces.sequence import (
    BLOCK_VOCABULARY,
    BUILTIN_BLOCKS,
    HYPERPARAMETERS,
    INCEPTION_BLOCKS,
    SequenceSpace,
    block_family,
)

pytestmark = pytest.mark.usefixtures("one_thread")

SPEC = DataSpec("classification", (12, 3), 3)  # 2 channels + the mask
EVERY_FAMILY = ["conv3_dil2_64", "transformer_16_h2", "bilstm_16", "gru_16", "res_conv3_64", "inception_16",
                "lstm_16"]


def padded(cases: list[torch.Tensor], steps: int, garbage: bool = False) -> torch.Tensor:
    """Cases of (length, 2) padded to `steps` with the mask channel last; garbage: large values in padding."""
    x = torch.zeros(len(cases), steps, 3)
    for i, case in enumerate(cases):
        x[i, : len(case), :2] = case
        x[i, : len(case), 2] = 1.0
        if garbage:
            x[i, len(case):, :2] = 100 * torch.randn(steps - len(case), 2)
    return x


def test_every_block_is_in_one_family_and_builds() -> None:
    assert len(set(BUILTIN_BLOCKS)) == len(BUILTIN_BLOCKS)
    assert {block_family(b) for b in BUILTIN_BLOCKS} == {"identity", "lstm", "bilstm", "gru", "conv",
                                                         "inception", "transformer"}
    net = SequenceNetwork(list(BUILTIN_BLOCKS), steps=12, channels=2, outputs=3)
    y = torch.randint(0, 3, (2,))
    torch.nn.functional.cross_entropy(net(padded([torch.randn(5, 2), torch.randn(12, 2)], 12)), y).backward()


def test_mixed_stack_parses_draws_and_grows() -> None:
    space = SequenceSpace(max_depth=4)
    arch = space.parse({"blocks": ["conv5_64", "transformer_64_h4", "lstm_64"], "pooling": "mean"})
    assert space.block_names(arch) == ["conv5_64", "transformer_64_h4", "lstm_64"]
    assert space.summary(arch).endswith("conv5_64 > transformer_64_h4 > lstm_64 > mean pool")
    labels = [layer["label"] for layer in space.layer_diagram(arch)["layers"]]
    assert labels == ["conv 1-D k5", "sinusoidal positions", "Transformer encoder", "LSTM", "mean pooling"]
    rng = np.random.default_rng(0)
    child = space.grow(arch, rng)
    assert child is not None and space.depth(child) == 4
    assert space.grow(child, rng) is None  # at max_depth
    assert space.build(arch, SPEC)(torch.randn(2, 12, 3)).shape == (2, 3)


def test_positional_encoding_is_only_in_the_key_with_a_transformer() -> None:
    space = SequenceSpace()
    lstm = [space.parse({"blocks": ["lstm_16"], "positional": p}) for p in ("sinusoidal", "learned")]
    trans = [space.parse({"blocks": ["transformer_16_h2"], "positional": p}) for p in ("sinusoidal", "learned")]
    assert space.key(lstm[0]) == space.key(lstm[1])
    assert space.key(trans[0]) != space.key(trans[1])
    assert space.key(space.parse({"blocks": ["lstm_16", "identity"]})) == space.key(lstm[0])


def test_bad_options_and_descriptions() -> None:
    with pytest.raises(ConfigError, match="blocks must name"):
        SequenceSpace(blocks=["lstm_9"])
    with pytest.raises(ConfigError, match="cannot fix"):
        SequenceSpace(fixed={"heads": 2})
    with pytest.raises(InvalidArchitecture, match="depth must be"):
        SequenceSpace(max_depth=2).parse({"blocks": ["lstm_16"] * 3})
    with pytest.raises(ConfigError, match="channels \\+ mask"):
        SequenceSpace().build(SequenceSpace().parse({"blocks": ["lstm_16"]}), DataSpec("classification", (13,), 2))
    pinned = SequenceSpace(blocks=["gru_16", "conv3_16"], fixed={"pooling": "last"})
    rng = np.random.default_rng(1)
    for _ in range(50):
        arch = pinned.sample(rng)
        assert pinned.hyperparameters(arch)["pooling"] == "last"
        assert set(pinned.block_names(arch)) <= {"gru_16", "conv3_16"}


@pytest.mark.parametrize("pooling", [name for name in HYPERPARAMETERS[0][1]])
@pytest.mark.parametrize("positional", ["sinusoidal", "learned"])
def test_padding_never_reaches_the_output(pooling: str, positional: str) -> None:
    """Garbage in the padded steps, or a longer padded length, changes nothing for any block or pooling."""
    torch.manual_seed(0)
    net = SequenceNetwork(EVERY_FAMILY, steps=12, channels=2, outputs=3, pooling=pooling,
                          positional=positional).eval()
    cases = [torch.randn(5, 2), torch.randn(9, 2), torch.randn(12, 2)]
    with torch.no_grad():
        clean = net(padded(cases, 12))
        dirty = net(padded(cases, 12, garbage=True))
        alone = torch.cat([net(padded([c], 12)) for c in cases])
    assert torch.allclose(clean, dirty, atol=1e-5) and torch.allclose(clean, alone, atol=1e-5)


def test_backward_direction_reads_each_case_reversed_within_its_length() -> None:
    h = torch.arange(10.0).view(2, 5, 1)
    out = reverse_within_length(h, torch.tensor([3, 5]))
    assert out[:, :, 0].tolist() == [[2, 1, 0, 3, 4], [9, 8, 7, 6, 5]]


def test_inception_blocks_come_after_the_first_vocabulary_and_stack_with_any_block() -> None:
    """Tokens stored before the Inception blocks existed keep their meaning; a mixed stack builds and draws."""
    space = SequenceSpace()
    assert space.vocabulary == (*BLOCK_VOCABULARY, *INCEPTION_BLOCKS)
    arch = space.parse({"blocks": ["inception_32", "lstm_16", "inception_16"], "pooling": "mean"})
    assert space.block_names(arch) == ["inception_32", "lstm_16", "inception_16"]
    assert [layer["kind"] for layer in space.layer_diagram(arch)["layers"]] == ["inception", "lstm", "inception",
                                                                                "head"]
    net = space.build(arch, SPEC)
    assert net(torch.randn(2, 12, 3)).shape == (2, 3)
    assert net.blocks[0].width == 128 and net.blocks[2].width == 64


def test_inception_batch_statistics_count_real_steps_only() -> None:
    """In training mode the batch norm's statistics (and so the output and the running averages) do not move
    with garbage in the padding or a longer padded length."""
    cases = [torch.randn(5, 2), torch.randn(9, 2), torch.randn(12, 2)]
    outputs, running = [], []
    for steps, garbage in ((12, False), (12, True), (20, True)):
        torch.manual_seed(0)
        net = SequenceNetwork(["inception_16", "inception_16"], steps=steps, channels=2, outputs=3, pooling="mean")
        net.train()
        outputs.append(net(padded(cases, steps, garbage)))
        running.append(net.blocks[0].norm.running_mean.clone())
    for out, mean in zip(outputs[1:], running[1:]):
        assert torch.allclose(outputs[0], out, atol=1e-5) and torch.allclose(running[0], mean, atol=1e-6)
    assert not torch.allclose(running[0], torch.zeros_like(running[0]))
