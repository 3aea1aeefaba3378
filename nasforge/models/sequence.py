"""The sequence space's network: blocks over (batch, steps, width) features, padding kept out of all of them.

The input's last channel is the provider's mask (1 on real steps). Padded steps are zeroed after every
block (so a convolution sees zeros there, as at the edges), a forward recurrence reads real steps first
(the provider pads at the end), the backward half of a bidirectional LSTM reads each case reversed within
its own length, attention ignores padded keys, and pooling averages or attends over real steps only or takes
the last real step. Everything is gathers and wheres, so the model traces to TorchScript and ONNX.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from nasforge.models.user_blocks import UserBlock, build_user_block, takes_mask
from nasforge.spaces.sequence import block_family


def real_steps(x: torch.Tensor) -> torch.Tensor:
    """Boolean (batch, steps) mask from the last channel; a case with no real step counts every step as real
    (no NaN from an empty softmax or mean)."""
    mask = x[..., -1] > 0.5
    return mask | ~mask.any(dim=1, keepdim=True)


def reverse_within_length(h: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Each case's first `length` steps reversed, the padding left where it is (its own inverse)."""
    steps = h.shape[1]
    t = torch.arange(steps, device=h.device).unsqueeze(0)
    last = (lengths - 1).unsqueeze(1)
    index = torch.where(t <= last, last - t, t)
    return h.gather(1, index.unsqueeze(-1).expand(-1, -1, h.shape[2]))


class Recurrent(nn.Module):
    def __init__(self, kind: str, width: int, hidden: int) -> None:
        super().__init__()
        cell = nn.GRU if kind == "gru" else nn.LSTM
        self.forward_rnn = cell(width, hidden, batch_first=True)
        self.backward_rnn = cell(width, hidden, batch_first=True) if kind == "bilstm" else None
        self.width = hidden * (2 if self.backward_rnn is not None else 1)

    def forward(self, h: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        out, _ = self.forward_rnn(h)
        if self.backward_rnn is None:
            return out
        back, _ = self.backward_rnn(reverse_within_length(h, lengths))
        return torch.cat([out, reverse_within_length(back, lengths)], dim=-1)


class Conv(nn.Module):
    """Conv1d 'same' padding, ReLU, LayerNorm per step (batch norm would count padded steps)."""

    def __init__(self, width: int, filters: int, kernel: int, dilation: int, residual: bool) -> None:
        super().__init__()
        self.conv = nn.Conv1d(width, filters, kernel, padding=dilation * (kernel - 1) // 2, dilation=dilation)
        self.norm = nn.LayerNorm(filters)
        self.project = (nn.Linear(width, filters) if width != filters else nn.Identity()) if residual else None
        self.width = filters

    def forward(self, h: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.conv(h.transpose(1, 2))).transpose(1, 2)
        if self.project is not None:
            y = y + self.project(h)
        return self.norm(y)


class MaskedBatchNorm(nn.Module):
    """Batch norm over (batch, steps, width) whose training statistics count real steps only, so padding never
    moves them; evaluation uses the running statistics, as nn.BatchNorm1d does."""

    running_mean: torch.Tensor
    running_var: torch.Tensor

    def __init__(self, width: int, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.bias = nn.Parameter(torch.zeros(width))
        self.register_buffer("running_mean", torch.zeros(width))
        self.register_buffer("running_var", torch.ones(width))
        self.momentum, self.eps = momentum, eps

    def forward(self, h: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        if self.training:
            count = keep.sum().clamp(min=1.0)
            mean = (h * keep).sum(dim=(0, 1)) / count
            var = (((h - mean) ** 2) * keep).sum(dim=(0, 1)) / count
            with torch.no_grad():
                unbiased = var * count / (count - 1.0).clamp(min=1.0)
                self.running_mean.mul_(1.0 - self.momentum).add_(self.momentum * mean)
                self.running_var.mul_(1.0 - self.momentum).add_(self.momentum * unbiased)
        else:
            mean, var = self.running_mean, self.running_var
        return (h - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias


class Inception(nn.Module):
    """InceptionTime's module (Ismail Fawaz et al., 2020): a 1x1 bottleneck, parallel convolutions of kernel
    9, 19 and 39 and a max-pool + 1x1 branch, concatenated (4 x filters), batch norm, ReLU, with a residual
    1x1 shortcut. Padded steps are zero on input and left out of the batch statistics."""

    KERNELS = (9, 19, 39)

    def __init__(self, width: int, filters: int) -> None:
        super().__init__()
        self.bottleneck = nn.Conv1d(width, filters, 1, bias=False) if width > 1 else None
        inner = filters if width > 1 else width
        self.convs = nn.ModuleList(nn.Conv1d(inner, filters, k, padding=k // 2, bias=False) for k in self.KERNELS)
        self.pool_conv = nn.Conv1d(width, filters, 1, bias=False)
        self.width = 4 * filters
        self.norm = MaskedBatchNorm(self.width)
        self.shortcut = nn.Conv1d(width, self.width, 1, bias=False) if width != self.width else None
        self.shortcut_norm = MaskedBatchNorm(self.width)

    def forward(self, h: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        keep = mask.unsqueeze(-1).to(h.dtype)
        x = h.transpose(1, 2)
        inner = self.bottleneck(x) if self.bottleneck is not None else x
        pooled = nn.functional.max_pool1d(x, 3, stride=1, padding=1)
        branches = [conv(inner) for conv in self.convs] + [self.pool_conv(pooled)]
        y = self.norm(torch.cat(branches, dim=1).transpose(1, 2), keep)
        short = h if self.shortcut is None else self.shortcut(x).transpose(1, 2)
        return torch.relu(torch.relu(y) + self.shortcut_norm(short, keep))


class Transformer(nn.Module):
    """A pre-norm encoder layer (feed-forward 2 x width); the first one in a stack adds the positions."""

    def __init__(self, width: int, model_width: int, heads: int, dropout: float, positional: str,
                 steps: int) -> None:
        super().__init__()
        self.project = nn.Linear(width, model_width) if width != model_width else nn.Identity()
        self.positions: torch.Tensor | None
        if positional == "learned":
            self.positions = nn.Parameter(torch.randn(steps, model_width) * 0.02)
        elif positional == "sinusoidal":
            self.register_buffer("positions", sinusoidal(steps, model_width))
        else:
            self.positions = None
        self.layer = nn.TransformerEncoderLayer(model_width, heads, 2 * model_width, dropout, batch_first=True,
                                                norm_first=True)
        self.width = model_width

    def forward(self, h: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        h = self.project(h)
        if self.positions is not None:
            h = h + self.positions[: h.shape[1]]
        out: torch.Tensor = self.layer(h, src_key_padding_mask=~mask)
        return out


class SequenceUserBlock(nn.Module):
    """A user block over (batch, steps, width) features; one whose forward takes `mask` also gets the
    (batch, steps) mask of real steps. The network zeroes padded steps after it, as after every block."""

    def __init__(self, block: UserBlock) -> None:
        super().__init__()
        self.block = block
        self.width = block.output_shape[-1]
        self.takes_mask = takes_mask(block.body)

    def forward(self, h: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.block.body(h, mask=mask) if self.takes_mask else self.block(h)
        return out


def sinusoidal(steps: int, width: int) -> torch.Tensor:
    position = torch.arange(steps, dtype=torch.float32).unsqueeze(1)
    scale = torch.exp(torch.arange(0, width, 2, dtype=torch.float32) * (-math.log(10_000.0) / width))
    table = torch.zeros(steps, width)
    table[:, 0::2] = torch.sin(position * scale)
    table[:, 1::2] = torch.cos(position * scale[: width // 2])
    return table


class SequenceNetwork(nn.Module):
    """Blocks named as in nasforge.spaces.sequence, then pooling and a linear classifier; with `per_step`, the
    classifier reads every step instead (batch, steps, outputs) and pooling is not used."""

    def __init__(self, blocks: list[str], steps: int, channels: int, outputs: int, pooling: str = "attention",
                 positional: str = "sinusoidal", dropout: float = 0.0, per_step: bool = False) -> None:
        super().__init__()
        self.per_step = per_step
        if pooling not in ("attention", "mean", "last"):
            raise ValueError(f"unknown pooling {pooling!r}")
        self.pooling = pooling
        self.blocks = nn.ModuleList()
        width = channels
        positioned = False
        for name in blocks:
            if name == "identity":
                continue
            family, parts = block_family(name), name.split("_")
            block: Recurrent | Conv | Inception | Transformer | SequenceUserBlock
            if family == "user":
                block = SequenceUserBlock(build_user_block(name, (steps, width), "sequence", same_leading=1))
            elif family in ("lstm", "bilstm", "gru"):
                block = Recurrent(family, width, int(parts[1]))
            elif family == "conv":
                residual = parts[0] == "res"
                spec = parts[1:] if residual else parts
                dilation = int(spec[1][3:]) if spec[1].startswith("dil") else 1
                block = Conv(width, int(spec[-1]), int(spec[0][4:]), dilation, residual)
            elif family == "inception":
                block = Inception(width, int(parts[1]))
            elif family == "transformer":
                model_width, heads = int(parts[1]), int(parts[2][1:])
                block = Transformer(width, model_width, heads, dropout, "none" if positioned else positional,
                                    steps)
                positioned = True
            else:
                raise ValueError(f"unknown sequence block {name!r}")
            self.blocks.append(block)
            width = block.width
        self.dropout = nn.Dropout(dropout)
        self.attention = nn.Linear(width, 1) if pooling == "attention" and not per_step else None
        self.head = nn.Linear(width, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = real_steps(x)
        keep = mask.unsqueeze(-1).to(x.dtype)
        lengths = mask.sum(dim=1)
        h = x[..., :-1] * keep
        for block in self.blocks:
            h = self.dropout(block(h, mask, lengths)) * keep
        if self.per_step:  # padded steps get an answer too; their PAD_LABEL keeps them out of loss and accuracy
            return self.head(self.dropout(h))
        return self.head(self.dropout(self.pool(h, mask, lengths)))

    def pool(self, h: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.pooling == "last":
            index = (lengths - 1).view(-1, 1, 1).expand(-1, 1, h.shape[2])
            return h.gather(1, index).squeeze(1)
        if self.attention is None:
            return (h * mask.unsqueeze(-1).to(h.dtype)).sum(dim=1) / lengths.unsqueeze(-1).to(h.dtype)
        scores = self.attention(h).squeeze(-1)
        scores = torch.where(mask, scores, torch.full_like(scores, -1e9))
        weights = torch.softmax(scores, dim=1).unsqueeze(-1)
        return (weights * h).sum(dim=1)
