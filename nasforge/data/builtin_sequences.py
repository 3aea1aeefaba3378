"""Builtin sequence sets, generated from their formula with a fixed seed: no file, no download, no licence.

`cbf` is Saito's (1994) Cylinder-Bell-Funnel problem, the classic synthetic time-series set (also in the
UCR archive). Each case is 128 steps of one channel: a plateau (cylinder), a rising ramp (bell) or a
falling ramp (funnel) of height 6 + eta between a random start a and end b, plus N(0, 1) noise:

    cylinder: (6 + eta) * [a <= t <= b]                      + eps(t)
    bell:     (6 + eta) * [a <= t <= b] * (t - a) / (b - a)  + eps(t)
    funnel:   (6 + eta) * [a <= t <= b] * (b - t) / (b - a)  + eps(t)

with a ~ U{16..32}, b - a ~ U{32..96}, eta, eps ~ N(0, 1). numpy's legacy `RandomState` is used because
its stream is fixed across numpy versions, so every install generates the same cases.
"""

from __future__ import annotations

import numpy as np

from nasforge.data.sequence_files import RawSequences

CBF_CLASSES = ("cylinder", "bell", "funnel")
CBF_STEPS = 128
CBF_PER_CLASS = 100
CBF_SEED = 1994


def cbf(per_class: int = CBF_PER_CLASS, seed: int = CBF_SEED) -> RawSequences:
    """The Cylinder-Bell-Funnel cases, classes interleaved (cylinder, bell, funnel, cylinder, ...)."""
    rng = np.random.RandomState(seed)
    t = np.arange(1, CBF_STEPS + 1, dtype=np.float64)
    cases: list[np.ndarray] = []
    labels: list[str] = []
    for _ in range(per_class):
        for name in CBF_CLASSES:
            a = int(rng.randint(16, 33))
            b = a + int(rng.randint(32, 97))
            height = 6.0 + rng.standard_normal()
            inside = ((t >= a) & (t <= b)).astype(np.float64)
            shape = {"cylinder": inside, "bell": inside * (t - a) / (b - a),
                     "funnel": inside * (b - t) / (b - a)}[name]
            cases.append((height * shape + rng.standard_normal(CBF_STEPS))[:, None])
            labels.append(name)
    return RawSequences(cases, labels, CBF_CLASSES)


# name -> generator of the whole set (cases and labels); split by the builtin provider like any file
SEQUENCE_BUILTINS = {"cbf": cbf}
