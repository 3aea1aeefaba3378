"""The resource penalty of the one-shot searches: what each candidate op of each mixed edge costs.

ProxylessNAS and FBNet add the expected cost of the relaxed network to DARTS's architecture loss, so α
is pushed toward cheaper ops in proportion to how much they save: `E[cost] = Σ_edges Σ_ops softmax(α)_k ·
cost_k`, which is differentiable in α. `ResourceTable` measures `cost_k` for every candidate module of
every `MixedOp` of a supernet at the shape its input really has in the supernet (one forward pass with
hooks records the shapes): its parameter count, its FLOPs (`nasforge.models.flops.count_flops`, the
conv and linear multiply-adds every space reports) or its latency (`measure_latency`, the method
`--max-latency-ms` uses, at batch 1; FBNet's lookup table). Costs are normalised by the cost of the most
expensive choice on every edge, so a cost is a share in [0, 1] and the penalty weight λ means the same
on every supernet and resource.

Only the choices are costed: the stem, the cell pre-processing and the classifier are the same for every
architecture, so they would add a constant. ENAS uses the same table for the discrete architecture it
samples (`path_cost`: the costs of the candidate ops its one-path forward runs).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from nasforge.core.errors import ConfigError
from nasforge.core.types import Architecture

RESOURCES = ("flops", "params", "latency_ms")


def check_options(owner: str, penalty: Any, resource: Any) -> tuple[float, str]:
    """`resource_penalty` (a number >= 0; 0 is off) and `resource` (one of RESOURCES), validated."""
    if isinstance(penalty, bool) or not isinstance(penalty, int | float) or not penalty >= 0:
        raise ConfigError(f"{owner}: resource_penalty must be a number >= 0 (0: off), got {penalty!r}")
    if resource not in RESOURCES:
        raise ConfigError(f"{owner}: resource must be one of {', '.join(RESOURCES)}, got {resource!r}")
    return float(penalty), str(resource)


@dataclass
class ResourceTable:
    """Per α tensor, the summed cost of each (row, column) choice; per candidate module, its own cost."""

    resource: str
    costs: dict[int, torch.Tensor]  # α index -> (rows, columns) costs, summed over the cells sharing that α
    candidate_costs: dict[int, float] = field(default_factory=dict)  # id(candidate module) -> cost
    full: float = 0.0  # the most expensive choice on every edge, summed: the normaliser

    def expected(self, net: nn.Module) -> torch.Tensor:
        """Σ softmax(α) · cost over every mixed edge, as a share of `full`; differentiable in α."""
        alphas = net.arch_parameters()  # type: ignore[operator]
        total = alphas[0].new_zeros(())
        for index, cost in self.costs.items():
            total = total + (torch.softmax(alphas[index], dim=-1) * cost.to(alphas[index])).sum()
        return total / self.full if self.full > 0 else total * 0.0

    def path_cost(self, net: nn.Module, arch: Architecture, example: torch.Tensor) -> float:
        """The cost share of one architecture: the candidate ops its one-path forward runs (an op run twice
        counts twice, as in the network it stands for)."""
        if self.full <= 0:
            return 0.0
        spent = 0.0

        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            nonlocal spent
            spent += self.candidate_costs[id(module)]

        handles = [m.register_forward_hook(hook) for m in _candidates(net)]
        try:
            with _eval(net), torch.no_grad():
                net(example, arch)
        finally:
            for h in handles:
                h.remove()
        return spent / self.full


def build_table(net: nn.Module, example: torch.Tensor, resource: str) -> ResourceTable:
    """The costs of every candidate op of `net` (a supernet with `mixed_edges`), each measured at the shape
    its input has when `example` (one batch) goes through the supernet's mixture."""
    edges = getattr(net, "mixed_edges", None)
    if not callable(edges):
        raise ConfigError(f"resource_penalty: the {type(net).__name__} has no costed mixed edges (the resource "
                          "penalty covers the CNN supernets: darts, nasnet, nb201, enas_macro)")
    mixed = list(edges())
    shapes: dict[int, tuple[int, ...]] = {}

    def record(module: nn.Module, inputs: Any) -> None:
        shapes.setdefault(id(module), tuple(inputs[0].shape[1:]))

    handles = [m.register_forward_pre_hook(record) for _, _, m in mixed]
    try:
        with _eval(net), torch.no_grad():
            net(example)
    finally:
        for h in handles:
            h.remove()
    alphas = net.arch_parameters()  # type: ignore[operator]
    costs = {index: torch.zeros_like(alphas[index], dtype=torch.float64) for index in {a for a, _, _ in mixed}}
    table = ResourceTable(resource, {})
    memo: dict[tuple[str, tuple[int, ...]], float] = {}
    for index, row, edge in mixed:
        shape = shapes[id(edge)]
        values = []
        for column, op in enumerate(edge.candidates):
            key = (repr(op), shape)
            if key not in memo:  # equal modules at equal shapes cost the same (and are timed once)
                memo[key] = _op_cost(op, shape, resource, example.device)
            table.candidate_costs[id(op)] = memo[key]
            costs[index][row, column] += memo[key]
            values.append(memo[key])
        table.full += max(values, default=0.0)
    table.costs = {index: c.float() for index, c in costs.items()}
    return table


def _op_cost(op: nn.Module, shape: tuple[int, ...], resource: str, device: torch.device) -> float:
    if resource == "params":
        return float(sum(p.numel() for p in op.parameters()))
    if resource == "flops":
        from nasforge.models.flops import count_flops

        return float(count_flops(op, shape))
    from nasforge.objectives.latency import LatencySettings, measure_latency

    was_training = op.training
    try:
        return measure_latency(op, torch.zeros(1, *shape, device=device), LatencySettings(), device).median_ms
    finally:
        op.train(was_training)


def _candidates(net: nn.Module) -> Iterator[nn.Module]:
    for _, _, edge in net.mixed_edges():  # type: ignore[operator]
        yield from edge.candidates


class _eval:
    """Eval mode for a measurement pass (batch norm's running statistics untouched), then the mode back."""

    def __init__(self, net: nn.Module) -> None:
        self.net, self.was_training = net, net.training

    def __enter__(self) -> None:
        self.net.eval()

    def __exit__(self, *exc: Any) -> None:
        self.net.train(self.was_training)


__all__ = ["RESOURCES", "ResourceTable", "build_table", "check_options"]
