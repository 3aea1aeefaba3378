"""Blocks from user code in the dnn, cnn and sequence spaces: registered or by import path, searched, resumed,
shape-checked."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import nasforge
from nasforge.core import registry
from nasforge.core.errors import ConfigError
from nasforge.spaces import cnn, dnn, sequence

BLOCKS = '''
import torch
from torch import nn


class Gated(nn.Module):
    """A dense block: a gated linear unit of 24 features, after the network's activation style."""

    def __init__(self, input_shape, style=None):
        super().__init__()
        (features,) = input_shape
        self.value = nn.Linear(features, 24)
        self.gate = nn.Linear(features, 24)
        self.act = style.act() if style is not None else nn.Identity()

    def forward(self, x):
        return self.act(self.value(x)) * torch.sigmoid(self.gate(x))


def squeeze_excite(input_shape):
    """A conv block: 3x3 conv to 12 channels, then squeeze-and-excitation."""
    channels, _, _ = input_shape
    return SqueezeExcite(channels, 12)


class SqueezeExcite(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU())
        self.excite = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_out, c_out), nn.Sigmoid())

    def forward(self, x):
        h = self.conv(x)
        return h * self.excite(h)[:, :, None, None]


def three_d(input_shape):
    """Wrong for a dnn block: adds an axis."""
    return nn.Unflatten(1, (1, input_shape[0]))


def flat(input_shape):
    """Wrong for a cnn block: flattens the images."""
    return nn.Flatten()


def broken(input_shape):
    return nn.Linear(input_shape[0] + 1, 4)


def not_a_module(input_shape):
    return "fc"


class MaskedMix(nn.Module):
    """A sequence block: mixes each real step with the mean of the real steps (the mask says which are real)."""

    def __init__(self, input_shape):
        super().__init__()
        self.mix = nn.Linear(2 * input_shape[1], 20)

    def forward(self, h, mask):
        self.last_mask = mask
        keep = mask.unsqueeze(-1).to(h.dtype)
        mean = (h * keep).sum(1, keepdim=True) / keep.sum(1, keepdim=True).clamp(min=1)
        return torch.tanh(self.mix(torch.cat([h, mean.expand_as(h)], dim=-1)))


class EveryOther(nn.Module):
    """Wrong for a sequence block: drops every other step."""

    def __init__(self, input_shape):
        super().__init__()

    def forward(self, h):
        return h[:, ::2]
'''


@pytest.fixture
def blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    package = tmp_path / "src" / "myblocks"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "blocks.py").write_text(textwrap.dedent(BLOCKS))
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    yield tmp_path / "src"
    for name in [m for m in sys.modules if m == "myblocks" or m.startswith("myblocks.")]:
        del sys.modules[name]
    for name in registry.plugins("block"):
        if registry.tables()["block"][name].startswith("myblocks"):
            del registry._KINDS["block"][name]


def _complete(study: nasforge.Study) -> list[Any]:
    return [t for t in study.trials if t.state.name == "COMPLETE"]


@pytest.mark.parametrize("workers", [1, 2])
def test_registered_dense_block_is_searched_and_resumed(blocks: Path, tmp_path: Path, workers: int) -> None:
    from myblocks.blocks import Gated

    assert nasforge.register("block", "gated", Gated) == "myblocks.blocks:Gated"
    options = {"space": "dnn", "space_options": {"user_blocks": ["gated"], "blocks": ["gated"], "max_depth": 2},
               "epochs": 1, "storage": f"sqlite:///{tmp_path / 'db.sqlite'}", "study": "gated", "workers": workers}
    study = nasforge.search("builtin:iris", trials=2, **options)
    assert len(_complete(study)) == 2
    # the store keeps the import path, so a process that never called register() rebuilds the space
    assert study.config["space_config"]["user_blocks"] == ["myblocks.blocks:Gated"]
    assert study.config["space_config"]["blocks"] == ["myblocks.blocks:Gated"]
    assert all(set(t.arch["description"]["blocks"]) == {"myblocks.blocks:Gated"} for t in _complete(study))
    model = study.load_model()
    assert any(type(m).__name__ == "Gated" for m in model.modules())
    resumed = nasforge.search("builtin:iris", trials=3, **options)
    assert len(_complete(resumed)) == 3


def test_conv_block_by_import_path_in_the_cnn_space(blocks: Path, tmp_path: Path) -> None:
    path = "myblocks.blocks:squeeze_excite"
    study = nasforge.search("builtin:digits", space="cnn", trials=2, epochs=1, workers=1,
                            space_options={"user_blocks": [path], "blocks": [path, "fc_64", "max_pool_3x3"],
                                           "max_depth": 3},
                            storage=f"sqlite:///{tmp_path / 'db.sqlite'}", study="se")
    assert len(_complete(study)) == 2
    space = cnn.CNNSpace(user_blocks=[path], blocks=[path])
    arch = space.from_json({"blocks": [path, path]})
    from nasforge.models.networks import ConvTower

    tower = ConvTower(space.block_names(arch), 1, 10, image_size=(8, 8))
    assert [type(b).__name__ for b in tower.convs] == ["UserBlock", "UserBlock"]
    assert tower.convs[1].output_shape == (12, 8, 8)  # built for the 12 channels the first one gives


def test_user_blocks_join_the_end_of_the_vocabulary(blocks: Path) -> None:
    plain, extended = dnn.DNNSpace(), dnn.DNNSpace(user_blocks=["myblocks.blocks:Gated"])
    assert extended.vocabulary == (*dnn.BLOCK_VOCABULARY, "myblocks.blocks:Gated")
    arch = plain.from_json({"blocks": ["fc_64", "res_fc_128"]})
    assert extended.key(extended.assemble(arch.tokens)) == plain.key(arch)  # stored tokens keep their meaning
    assert "user_blocks" not in plain.config() and "user_blocks" not in cnn.CNNSpace().config()
    assert cnn.CNNSpace(user_blocks=["myblocks.blocks:flat"]).vocabulary[-1] == "myblocks.blocks:flat"
    with pytest.raises(ConfigError, match="built-in block"):
        dnn.DNNSpace(user_blocks=["fc_64"])
    with pytest.raises(ConfigError, match="listed twice"):
        dnn.DNNSpace(user_blocks=["myblocks.blocks:Gated", "myblocks.blocks:Gated"])
    with pytest.raises(ConfigError, match="unknown blocks"):
        dnn.DNNSpace(blocks=["myblocks.blocks:Gated"])  # a mask names only blocks of the vocabulary


def test_shapes_are_checked_when_a_block_is_built(blocks: Path) -> None:
    from nasforge.models.dense import DenseNetwork, LayerStyle
    from nasforge.models.networks import ConvTower

    net = DenseNetwork(4, ["fc_64", "myblocks.blocks:Gated"], 3, LayerStyle("tanh"))
    assert net.head.in_features == 24
    with pytest.raises(ConfigError, match=r"block 'myblocks.blocks:three_d' given inputs of shape \('batch', 64\) "
                                          r"returned shape \('batch', 1, 64\); a dnn block must return"):
        DenseNetwork(4, ["fc_64", "myblocks.blocks:three_d"], 3, LayerStyle())
    with pytest.raises(ConfigError, match=r"cnn: block 'myblocks.blocks:flat' .* must return \(batch, channels"):
        ConvTower(["myblocks.blocks:flat"], 1, 10, image_size=(8, 8))
    with pytest.raises(ConfigError, match=r"'myblocks.blocks:broken' failed on inputs of shape \('batch', 4\)"):
        DenseNetwork(4, ["myblocks.blocks:broken"], 3, LayerStyle())
    with pytest.raises(ConfigError, match=r"returned str, not a torch\.nn\.Module"):
        DenseNetwork(4, ["myblocks.blocks:not_a_module"], 3, LayerStyle())


def test_missing_block_plugin_is_one_line_on_resume(blocks: Path, tmp_path: Path) -> None:
    options = {"space_options": {"user_blocks": ["myblocks.blocks:Gated"]}, "epochs": 1, "workers": 1,
               "storage": f"sqlite:///{tmp_path / 'db.sqlite'}", "study": "gone"}
    nasforge.search("builtin:iris", trials=1, **options)
    (blocks / "myblocks" / "blocks.py").unlink()
    for name in [m for m in sys.modules if m.startswith("myblocks")]:
        del sys.modules[name]
    with pytest.raises(ConfigError, match=r"block plugin 'myblocks\.blocks:Gated' cannot be imported"):
        nasforge.search("builtin:iris", trials=2, **options)


def test_sequence_block_gets_the_mask_and_passes_the_space_checks(blocks: Path) -> None:
    import torch

    from nasforge.data.base import DataSpec
    from nasforge.models.sequence import SequenceNetwork
    from nasforge.testing import check_space

    path = "myblocks.blocks:MaskedMix"
    space = sequence.SequenceSpace(max_depth=2, user_blocks=[path], blocks=[path, "gru_16", "conv3_16"])
    assert space.config()["user_blocks"] == [path] and space.vocabulary[len(sequence.BLOCK_VOCABULARY)] == path
    check_space(space, data=DataSpec("classification", input_shape=(9, 3), num_outputs=4), samples=30)
    net = SequenceNetwork([path, "gru_16"], steps=9, channels=2, outputs=4, pooling="mean")
    x = torch.randn(2, 9, 3)
    x[..., -1] = 1.0
    x[1, 5:, -1] = 0.0  # the second case has 5 real steps
    changed = x.clone()
    changed[1, 5:, :-1] = 100.0  # padding: must not reach the output through the user block's mean
    net.eval()
    assert torch.allclose(net(x), net(changed))
    mix = next(m for m in net.modules() if type(m).__name__ == "MaskedMix")
    assert mix.last_mask.tolist() == [[True] * 9, [True] * 5 + [False] * 4]
    with pytest.raises(ConfigError, match=r"block 'myblocks.blocks:EveryOther' .* with the steps it was given"):
        SequenceNetwork(["myblocks.blocks:EveryOther"], steps=8, channels=2, outputs=3)
