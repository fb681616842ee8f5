"""Frame-by-frame decoding for closed-loop use: a causal decoder fed one neural frame at a time.

`StreamingDecoder` wraps a causal `RecurrentDecoder` (carries the LSTM/GRU hidden state) or a causal
`ResNet3D` (carries, for every temporal convolution, a buffer of its last (k - 1) * dilation input
frames). Each `push` costs one frame of computation: nothing of the window is recomputed. Its outputs
equal the whole-window `forward_frames` of the same model (to float32 rounding: the convolutions sum
the same products in a different order).

    stream = StreamingDecoder(model)
    for frame in neural:                 # (n_channels,) normalised high gamma, one per 8 ms
        out = stream.push(frame)         # (n_out,) this frame's output: raw synthesizer controls (target
                                         # formant) or standardised mel bins (target mel)
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from neurovox.decoders.base import NeuralDecoder
from neurovox.errors import ConfigError, DataError


class StreamingDecoder:
    """Stateful one-frame-at-a-time wrapper of a causal decoder.

    Parameters
    ----------
    model : NeuralDecoder
        A causal model with `init_state(frame)` and `step(frame, state)` (ResNet3D, RecurrentDecoder).
    batch : int
        Parallel streams (1 for one participant).
    """

    def __init__(self, model: NeuralDecoder, batch: int = 1):
        if not getattr(model, "causal", False):
            raise ConfigError(f"Streaming needs a causal decoder, but this {model.name} model was trained with "
                              "causal=False; train it with --causal.")
        if not hasattr(model, "step"):
            raise ConfigError(f"The {model.name} model has no streaming implementation; stream a causal resnet, "
                              "lstm or gru model.")
        self.model = model.eval()
        self.batch = batch
        self.state: Any = None
        self.n_frames = 0

    def reset(self) -> None:
        """Forget the past (start of a new stream)."""
        self.state = None
        self.n_frames = 0

    @torch.no_grad()
    def push(self, frame: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Feed one frame, shape (n_channels,) or (batch, n_channels); return raw controls (batch?, n_out)."""
        x = torch.as_tensor(frame, dtype=torch.float32)
        squeeze = x.ndim == 1
        if squeeze:
            x = x[None]
        if x.ndim != 2 or x.shape[0] != self.batch:
            raise DataError(f"push() expects one frame of shape (n_channels,) or ({self.batch}, n_channels), "
                            f"got {tuple(x.shape)}.")
        if self.state is None:
            self.state = self.model.init_state(x)
        out, self.state = self.model.step(x, self.state)
        self.n_frames += 1
        return out[0] if squeeze else out

    @torch.no_grad()
    def run(self, neural: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Stream a whole sequence (batch, n_frames, n_channels) frame by frame -> (batch, n_frames, n_out)."""
        x = torch.as_tensor(neural, dtype=torch.float32)
        return torch.stack([self.push(x[:, i]) for i in range(x.shape[1])], dim=1)


def measure_latency(model: NeuralDecoder, n_channels: int, n_frames: int = 300, n_warmup: int = 20,
                    generator: torch.Generator | None = None) -> dict[str, float]:
    """Per-frame latency of streaming `model` on the current thread settings.

    Returns
    -------
    stats : dict
        median_ms, p99_ms, mean_ms, max_ms over `n_frames` pushes (after `n_warmup`).
    """
    stream = StreamingDecoder(model)
    frames = torch.randn(n_warmup + n_frames, n_channels, generator=generator)
    times = []
    for i, f in enumerate(frames):
        t0 = time.perf_counter()
        stream.push(f)
        if i >= n_warmup:
            times.append(time.perf_counter() - t0)
    ms = np.asarray(times) * 1e3
    return {"median_ms": float(np.median(ms)), "p99_ms": float(np.percentile(ms, 99)),
            "mean_ms": float(ms.mean()), "max_ms": float(ms.max())}
