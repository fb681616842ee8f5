"""Memory: how much is available, when a recording is streamed from disk, and whether training fits.

Preprocessing (see docs/errors.md, "Resource limits"):

- `available_memory_bytes()`: what this process may still allocate: MemAvailable from
  /proc/meminfo, lowered to the cgroup limit minus usage where a cgroup (a cluster job, a
  container) sets one; `os.sysconf` free pages elsewhere.
- `in_memory_limit_bytes()`: readers keep a neural array in memory up to this size and hand out a
  `neurovox.io.LazyNeural` (read from disk by rows) above it. Default: the smaller of 2 GiB and a
  quarter of the available memory (in-memory offline high gamma peaks at about 3-4x the raw array,
  see `neurovox.preprocess.highgamma`); `NEUROVOX_MAX_IN_MEMORY_MB` overrides it.
- `chunk_bytes()`: the working memory one preprocessing chunk may use. Default: the smaller of
  256 MiB and 1/16 of the available memory; `NEUROVOX_CHUNK_MB` overrides it.

Training: `check_fits(model, example_batch, device, batch_size=...)` estimates the peak memory of
one optimisation step and raises `ResourceError` naming the estimate, the memory available and
what to reduce, before a run starts and dies half-way with an out-of-memory kill.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neurovox.errors import ConfigError, ResourceError

ENV_MAX_IN_MEMORY_MB = "NEUROVOX_MAX_IN_MEMORY_MB"
ENV_CHUNK_MB = "NEUROVOX_CHUNK_MB"
IN_MEMORY_CAP_BYTES = 2 << 30        # bytes, a neural array above this is always streamed from disk
IN_MEMORY_FRACTION = 0.25            # fraction of the available memory a neural array may take in memory
CHUNK_CAP_BYTES = 256 << 20          # bytes, default working memory of one preprocessing chunk
CHUNK_FRACTION = 1.0 / 16            # fraction of the available memory one chunk may take
MIN_CHUNK_BYTES = 1 << 10            # bytes, smallest chunk budget accepted (tiny ones are for tests)
MIB = float(1 << 20)


# ---------------------------------------------------------------------------------------- available memory
def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_headroom() -> int | None:
    """Limit minus usage of this process's memory cgroup (v2, else v1), or None when unlimited/unknown."""
    root = Path("/sys/fs/cgroup")
    try:
        v2, v1 = "", ""
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            parts = line.split(":", 2)
            if len(parts) == 3 and parts[0] == "0":
                v2 = parts[2].lstrip("/")
            elif len(parts) == 3 and "memory" in parts[1].split(","):
                v1 = parts[2].lstrip("/")
        candidates = [(root / v2 / "memory.max", root / v2 / "memory.current"),
                      (root / "memory" / v1 / "memory.limit_in_bytes", root / "memory" / v1 / "memory.usage_in_bytes")]
        for limit_path, usage_path in candidates:
            if limit_path.is_file() and usage_path.is_file():
                limit = limit_path.read_text().strip()
                if limit == "max" or int(limit) >= 1 << 60:  # v1 reports "no limit" as a huge number
                    continue
                return max(0, int(limit) - int(usage_path.read_text().strip()))
    except (OSError, ValueError):
        pass
    return None


def available_memory_bytes() -> int:
    """Bytes of RAM this process can still allocate (see the module docstring)."""
    avail = _meminfo_available()
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = 4 << 30  # unknown platform: assume a modest machine
    headroom = _cgroup_headroom()
    return int(min(avail, headroom) if headroom is not None else avail)


def _env_mb(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return None
    try:
        mb = float(value)
    except ValueError:
        raise ConfigError(f"{name} must be a number of MiB (e.g. {name}=512), got {value!r}.") from None
    if not mb > 0:
        raise ConfigError(f"{name} must be a positive number of MiB, got {value!r}.")
    return int(mb * MIB)


def in_memory_limit_bytes() -> int:
    """Largest neural array (bytes, as float) a reader keeps in memory; larger ones are streamed from disk."""
    env = _env_mb(ENV_MAX_IN_MEMORY_MB)
    if env is not None:
        return env
    return int(min(IN_MEMORY_CAP_BYTES, IN_MEMORY_FRACTION * available_memory_bytes()))


def chunk_bytes(chunk_mb: float | None = None) -> int:
    """Working memory (bytes) of one preprocessing chunk: `chunk_mb` if given, else `NEUROVOX_CHUNK_MB`, else
    min(256 MiB, available / 16)."""
    if chunk_mb is not None:
        if not chunk_mb > 0:
            raise ConfigError(f"chunk_mb must be a positive number of MiB, got {chunk_mb!r}.")
        return max(MIN_CHUNK_BYTES, int(chunk_mb * MIB))
    env = _env_mb(ENV_CHUNK_MB)
    if env is not None:
        return max(MIN_CHUNK_BYTES, env)
    return max(MIN_CHUNK_BYTES, int(min(CHUNK_CAP_BYTES, CHUNK_FRACTION * available_memory_bytes())))


def format_bytes(n_bytes: float) -> str:
    """'512.0 MiB', '3.21 GiB', ..."""
    n = float(n_bytes)
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= size:
            return f"{n / size:.3g} {unit}" if unit != "MiB" else f"{n / size:.1f} MiB"
    return f"{int(n)} B"


# ---------------------------------------------------------------------------------------- will a training step fit?
TRANSIENT_FACTOR = 2.0   # backward holds gradients of about the largest saved activations at once: 2x the largest
# Calibration on CPU (first training step, peak RSS, AdamW; batch 16 unless noted): saved tensors + transient
# vs measured peak was 0.76 (ResNet3D 8x8), 0.91 (Swin3D), 0.94 (unet2d prior), 1.0 (unet2d, batch 64),
# 1.17 (unet1d prior), 2.2 (LSTM): scaled by 1.25 the estimate errs on the safe side but for ResNet3D (-7 %).
ACTIVATION_FACTOR = 1.25
DEVICE_HEADROOM = 0.9    # use at most this fraction of the free memory (allocator fragmentation, CUDA workspaces)
ENV_NO_FIT_CHECK = "NEUROVOX_NO_FIT_CHECK"   # set to 1 to skip `check_fits` (the estimate is approximate)


@dataclass
class MemoryEstimate:
    """Estimated peak memory (bytes) of one optimisation step, and what is available on the device.

    weights_bytes: trainable parameters x (1 + gradient + optimiser slots) + frozen parameters + buffers;
    activations_bytes: tensors autograd saves for backward at `batch_size` (scaled linearly from the
    probe batch), plus `TRANSIENT_FACTOR` x the largest of them for the backward pass, times
    `ACTIVATION_FACTOR` (calibration).
    """

    weights_bytes: int
    activations_bytes: int
    batch_size: int
    device: str
    available_bytes: int
    method: str

    @property
    def peak_bytes(self) -> int:
        return self.weights_bytes + self.activations_bytes

    @property
    def fits(self) -> bool:
        return self.peak_bytes <= DEVICE_HEADROOM * self.available_bytes

    def __str__(self) -> str:
        return (f"~{format_bytes(self.peak_bytes)} at batch size {self.batch_size} (weights, gradients and optimiser "
                f"state {format_bytes(self.weights_bytes)}, activations {format_bytes(self.activations_bytes)}), "
                f"{format_bytes(self.available_bytes)} free on {self.device}")


def device_available_bytes(device: Any) -> tuple[str, int]:
    """(device name, free bytes): `torch.cuda.mem_get_info` on a GPU, `available_memory_bytes()` on CPU."""
    import torch

    dev = torch.device("cuda" if str(device) in ("gpu", "cuda") else device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} was asked for but no CUDA GPU is available; use cpu.")
        free, _total = torch.cuda.mem_get_info(dev)
        return f"{torch.cuda.get_device_name(dev)} ({dev})", int(free)
    return "CPU RAM", available_memory_bytes()


def _batch_size_of(batch: Any) -> int:
    import torch

    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.ndim else 1
    values = batch.values() if isinstance(batch, dict) else batch if isinstance(batch, (list, tuple)) else []
    for v in values:
        if hasattr(v, "shape") and len(v.shape):
            return int(v.shape[0])
    return 1


def _as_tensors(batch: Any) -> Any:
    import numpy as np
    import torch

    if isinstance(batch, np.ndarray):
        return torch.from_numpy(batch)
    if isinstance(batch, dict):
        return {k: _as_tensors(v) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_as_tensors(v) for v in batch)
    return batch


def _weights_bytes(models: Iterable[Any], optimizer_slots: int) -> int:
    seen: set[int] = set()
    total = 0
    for model in models:
        for p in model.parameters():
            if id(p) in seen:
                continue
            seen.add(id(p))
            n = p.numel() * p.element_size()
            total += n * (2 + optimizer_slots) if p.requires_grad else n
        for b in model.buffers():
            if id(b) not in seen:
                seen.add(id(b))
                total += b.numel() * b.element_size()
    return total


def estimate_training_memory(model: Any, example_batch: Any, *, batch_size: int,
                             loss_fn: Callable[[Any], Any] | None = None, optimizer_slots: int = 2,
                             extra_models: Iterable[Any] = ()) -> tuple[int, int, str]:
    """(weights bytes, activation bytes at `batch_size`, method) of one optimisation step.

    Runs one forward pass of `loss_fn(example_batch)` (default `model(example_batch)`) under
    `torch.autograd.graph.saved_tensors_hooks`, summing the distinct storages autograd saves for
    backward (parameters excluded), and scales them linearly from the probe's batch size to
    `batch_size`. No backward pass, no optimiser step; random generators and buffers (BatchNorm
    statistics) are restored, so training is unaffected. On the meta device nothing is allocated, so
    configurations far larger than memory can be checked.
    """
    import torch

    probe_batch = _batch_size_of(example_batch)
    example_batch = _as_tensors(example_batch)
    models = [model, *extra_models]
    weight_ids = {p.untyped_storage()._cdata for m in models for p in list(m.parameters()) + list(m.buffers())}
    saved: dict[int, int] = {}

    def pack(t: Any) -> Any:
        # one entry per storage (views of one activation count once), sized by the largest view saved: a
        # probe sliced from a bigger batch must not count the whole batch's storage
        storage = t.untyped_storage()
        if storage._cdata not in weight_ids:
            size = min(int(storage.nbytes()), t.numel() * t.element_size())
            saved[storage._cdata] = max(saved.get(storage._cdata, 0), size)
        return t

    buffers = [(b, b.detach().clone()) for m in models for b in m.buffers()]
    devices = [d for d in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = loss_fn(example_batch) if loss_fn is not None else model(example_batch)
        del out
    with torch.no_grad():
        for b, copy in buffers:
            b.copy_(copy)
    per_sample = ACTIVATION_FACTOR * (sum(saved.values()) + TRANSIENT_FACTOR * max(saved.values(), default=0)) \
        / max(1, probe_batch)
    method = f"the tensors a batch-{probe_batch} forward pass saves for backward, scaled to the batch size"
    return _weights_bytes(models, optimizer_slots), int(per_sample * batch_size), method


def check_fits(model: Any, example_batch: Any, device: Any = "cpu", *, batch_size: int,
               loss_fn: Callable[[Any], Any] | None = None, optimizer_slots: int = 2, what: str = "training",
               reduce: str = "batch_size", extra_models: Iterable[Any] = ()) -> MemoryEstimate:
    """Raise `ResourceError` when one optimisation step of `model` at `batch_size` will not fit on `device`.

    Parameters
    ----------
    model : torch.nn.Module
        Everything held during training (e.g. the LightningModule: decoder, its EMA copy and frozen
        parts); trainable parameters count with their gradient and `optimizer_slots` (AdamW: 2).
    example_batch : Tensor, ndarray or dict/list of them, leading dimension = a small batch (1 is enough)
        On the model's device; on the meta device nothing is allocated.
    device : "cpu", "cuda", "gpu" or torch.device
        Where training will run (whose free memory counts).
    batch_size : int
        The training batch size the estimate is scaled to.
    loss_fn : callable, optional
        batch -> loss, the training step's forward (default: ``model(batch)``).
    what, reduce : str
        For the message: what is being checked, and the settings that shrink it
        (e.g. "decoder.batch_size, decoder.n_target_frames or the model widths").

    Returns
    -------
    MemoryEstimate (when it fits, or when `NEUROVOX_NO_FIT_CHECK=1` skips the refusal).
    """
    weights, activations, method = estimate_training_memory(model, example_batch, batch_size=batch_size,
                                                            loss_fn=loss_fn, optimizer_slots=optimizer_slots,
                                                            extra_models=extra_models)
    name, available = device_available_bytes(device)
    est = MemoryEstimate(weights, activations, int(batch_size), name, available, method)
    if not est.fits and os.environ.get(ENV_NO_FIT_CHECK, "") not in ("1", "true", "yes"):
        per_sample = activations / max(1, batch_size)
        room = DEVICE_HEADROOM * available - weights
        hint = (f": a batch size of at most {int(room // per_sample)} would fit" if room > per_sample
                else ": even a batch of one does not fit, so shorten the window or narrow the model")
        raise ResourceError(
            f"{what} will not fit in memory: estimated peak {format_bytes(est.peak_bytes)} at batch size {batch_size} "
            f"(weights, gradients and optimiser state {format_bytes(weights)}, activations "
            f"{format_bytes(activations)}) but {format_bytes(available)} is free on {name}. Reduce {reduce}{hint}. "
            f"(Estimate from {method}; within about -25 %/+150 % on CPU; at most {DEVICE_HEADROOM:.0%} of the free "
            f"memory is planned for. Set {ENV_NO_FIT_CHECK}=1 to try anyway.)")
    return est
