"""Latency and peak memory of a built model, measured on the device it will run on.

CPU: the thread count is set for the measurement (and restored), then `warmup` untimed calls and
`repeats` timed ones; the median is the latency. CUDA: the same, with the device synchronised before
the clock starts and before it stops (kernels are asynchronous). `runtime="onnxruntime"` exports the
model to ONNX and times an onnxruntime session with the same threads instead. The spread of the
repeats is kept, so the timing method's own noise can be reported (bench/latency_noise.py).
"""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nasforge.core.errors import ConfigError

RUNTIMES = ("torch", "onnxruntime")


@dataclass(frozen=True)
class LatencySettings:
    """How latency is measured. `device` None: the evaluator's device (what the model will be trained on)."""

    device: str | None = None
    threads: int = 1
    batch_size: int = 1
    warmup: int = 10
    repeats: int = 30
    runtime: str = "torch"

    @staticmethod
    def from_options(options: Mapping[str, Any] | None) -> LatencySettings:
        """Validated settings from `--latency-option KEY=VALUE` pairs."""
        options = dict(options or {})
        known = set(LatencySettings.__dataclass_fields__)
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(f"unknown latency option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        for name, low in (("threads", 1), ("batch_size", 1), ("warmup", 0), ("repeats", 3)):
            if name in options:
                value = options[name]
                if isinstance(value, bool) or not isinstance(value, int) or value < low:
                    raise ConfigError(f"latency option {name} must be an integer >= {low} (got {value!r})")
        runtime = options.get("runtime", "torch")
        if runtime not in RUNTIMES:
            raise ConfigError(f"latency option runtime must be one of {', '.join(RUNTIMES)} (got {runtime!r})")
        if runtime == "onnxruntime":
            try:
                import onnxruntime  # noqa: F401
            except ImportError:
                raise ConfigError("latency runtime onnxruntime needs the export extra: "
                                  "pip install 'nasforge[export]'") from None
        device = options.get("device")
        if device is not None and not (device in ("cpu", "cuda", "auto") or str(device).startswith("cuda:")):
            raise ConfigError(f"latency option device must be cpu, cuda, cuda:N or auto (got {device!r})")
        return LatencySettings(**options)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Timing:
    """Repeated timings of one model (milliseconds per call of `batch_size` inputs)."""

    times_ms: list[float] = field(default_factory=list)

    @property
    def median_ms(self) -> float:
        return float(statistics.median(self.times_ms))

    @property
    def spread(self) -> float:
        """Interquartile range over the median: the timing's own relative noise."""
        if len(self.times_ms) < 4:
            return 0.0
        q = statistics.quantiles(self.times_ms, n=4)
        return float((q[2] - q[0]) / self.median_ms) if self.median_ms > 0 else 0.0


def time_calls(run: Callable[[], Any], warmup: int, repeats: int,
               sync: Callable[[], None] | None = None) -> Timing:
    """`warmup` untimed calls, then `repeats` timed ones; `sync` (CUDA) runs before each clock read."""
    for _ in range(warmup):
        run()
    if sync is not None:
        sync()
    timing = Timing()
    for _ in range(repeats):
        if sync is not None:
            sync()
        start = time.perf_counter()
        run()
        if sync is not None:
            sync()
        timing.times_ms.append((time.perf_counter() - start) * 1000.0)
    return timing


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    before = torch.get_num_threads()
    if before != threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def resolve(device: str | None, fallback: str = "cpu") -> torch.device:
    name = device or fallback
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"latency device {name!r}: this machine has no CUDA device")
    return dev


def batch_of(example: torch.Tensor, batch_size: int) -> torch.Tensor:
    """`example` (batch 1) repeated to `batch_size` rows."""
    return example.expand(batch_size, *example.shape[1:]).contiguous()


def measure_latency(model: nn.Module, example: torch.Tensor, settings: LatencySettings,
                    device: torch.device) -> Timing:
    """Timings of eval-mode forward passes of `settings.batch_size` inputs like `example`."""
    model = model.eval().to(device)
    x = batch_of(example, settings.batch_size).to(device)
    if settings.runtime == "onnxruntime":
        return _onnxruntime_timing(model, x, settings, device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else None
    with torch_threads(settings.threads), torch.inference_mode():
        return time_calls(lambda: model(x), settings.warmup, settings.repeats, sync)


def _onnxruntime_timing(model: nn.Module, x: torch.Tensor, settings: LatencySettings,
                        device: torch.device) -> Timing:
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="nasforge-latency-") as tmp:
        path = Path(tmp) / "model.onnx"
        with torch.no_grad():
            torch.onnx.export(model.cpu(), (x.cpu(),), str(path), input_names=["x"], dynamo=False,
                              opset_version=17)
        options = ort.SessionOptions()
        options.intra_op_num_threads = settings.threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        providers = ["CUDAExecutionProvider"] if device.type == "cuda" else ["CPUExecutionProvider"]
        session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    feed = {"x": x.cpu().numpy()}
    return time_calls(lambda: session.run(None, feed), settings.warmup, settings.repeats)


def peak_memory_mb(model: nn.Module, example: torch.Tensor, batch_size: int, device: torch.device) -> float:
    """Parameters and buffers plus the peak of tensors allocated during one forward pass, in MiB.

    CUDA: the allocator's peak. CPU: the profiler's allocation events (allocations and frees in order),
    so activations freed along the way do not count twice."""
    model = model.eval().to(device)
    x = batch_of(example, batch_size).to(device)
    weights = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        with torch.inference_mode():
            model(x)
        torch.cuda.synchronize(device)
        return float(weights + torch.cuda.max_memory_allocated(device) - base) / 2**20
    from torch.profiler import ProfilerActivity, profile

    with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        model(x)
    events = sorted((e.time_range.start, e.self_cpu_memory_usage) for e in prof.events() if e.self_cpu_memory_usage)
    live = peak = 0
    for _, change in events:
        live += change
        peak = max(peak, live)
    return float(weights + peak) / 2**20


def device_descriptor(device: torch.device, settings: LatencySettings) -> dict[str, Any]:
    """What a latency measurement depends on besides the model: the cache key's machine part."""
    out: dict[str, Any] = {"type": device.type, "torch": torch.__version__,
                           **{k: v for k, v in settings.to_json().items() if k != "device"}}
    if device.type == "cuda":
        out["name"] = torch.cuda.get_device_name(device)
    else:
        out["name"] = cpu_name()
        out["cores"] = os.cpu_count()
    if settings.runtime == "onnxruntime":
        import onnxruntime

        out["onnxruntime"] = onnxruntime.__version__
    return out


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
