"""Shipping a found model: one file (TorchScript or ONNX) that takes raw inputs and embeds its metadata.

`exporter` (needs torch) builds and checks the file; `runtime` (NumPy only, plus onnxruntime for `.onnx`)
reads it back and predicts. This package's `__init__` imports nothing, so `nasforge.export.runtime`
loads without torch.
"""

from __future__ import annotations
