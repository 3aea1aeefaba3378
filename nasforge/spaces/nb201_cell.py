"""NAS-Bench-201's cell: its op vocabulary, nodes and edges, shared by the space and the network it builds.

A leaf module (no torch, no space), so `models/nb201_net.py` takes the cell's shape from here and
`spaces/nb201.py` imports the network only when it builds one: no import cycle between the two.
"""

from __future__ import annotations

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
# (target node, source node) in the order the arch string lists them.
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
NODES = 4
