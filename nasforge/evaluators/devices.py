"""Where and in what precision the train evaluator computes: the device checked before anything is stored,
channels-last image batches, bfloat16 autocast where the hardware has native bfloat16."""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn

from nasforge.core.errors import ConfigError

# Channels-last image batches on the CPU: 1.4-2.3x faster training steps for the nb201, darts and
# enas_macro networks and 1.1-1.5x for plain CNNs on a 2-core CPU (bench/results/train_speed.md); only
# tiny networks of a few ms per step lose (up to 25%), to the layout conversions.
CHANNELS_LAST_ON_CPU = True
# "bf16": training forward passes and losses under bfloat16 autocast (weights, gradients, optimizer state
# and all scoring stay float32): 1.4-1.6x faster steps than float32 on a CPU with AVX512-BF16
# (bench/results/train_speed.md). "auto" (the default) picks it where the hardware computes bfloat16
# natively (AVX512-BF16 or AMX CPUs, GPUs with bf16), else float32 (emulated bf16 would be slower).
PRECISIONS = ("auto", "fp32", "bf16")

def resolve_device(device: str) -> torch.device:
    """'auto' means CUDA when present; anything else is passed to torch as is, once checked to exist here
    (a ConfigError naming it, instead of every trial failing inside torch)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"--device {device!r} is not a device; use cpu, cuda, cuda:N or auto") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device}: CUDA is not available on this machine "
                              f"(torch {torch.__version__}); use --device cpu, or auto to take a GPU when there is one")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ConfigError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"--device {device}: MPS is not available on this machine; use --device cpu")
    elif resolved.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"--device {device}: nasforge trains on cpu, cuda or mps")
    return resolved

def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes in bfloat16 natively (emulated bf16 is slower than float32)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
        return any(bool(check()) for check in checks if callable(check))
    return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """"auto" made concrete for a device: "bf16" with native bfloat16, else "fp32"."""
    if precision != "auto":
        return precision
    return "bf16" if native_bf16(device) else "fp32"


def autocast(model: nn.Module, precision: str) -> contextlib.AbstractContextManager[Any]:
    """bfloat16 autocast on the model's device for precision "bf16"; nothing for "fp32"."""
    if precision != "bf16":
        return contextlib.nullcontext()
    param = next(model.parameters(), None)
    device = param.device.type if param is not None else "cpu"
    return torch.autocast(device, dtype=torch.bfloat16)
