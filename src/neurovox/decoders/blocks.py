"""Building blocks shared by the neural decoders, each safe for strict causality.

Rules every block follows so that a causal model's output frame t depends only on input frames <= t:

- Temporal convolutions pad on the left only ((k - 1) * dilation frames) in causal mode, and
  symmetrically (centred context) otherwise. No temporal stride: every layer keeps the frame clock,
  so no upsampling or strided path has to be re-aligned.
- Normalisation never pools over time: `FrameNorm` normalises each frame over channels and space
  (GroupNorm with one group, applied per time step).
- Every block with temporal context can run one frame at a time (`step`) from a buffer of its last
  (k - 1) * dilation input frames, which is what `neurovox.decoders.streaming` uses.

Tensor layout for grid models: (batch, n_features, n_frames, n_rows, n_cols).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class FrameNorm(nn.Module):
    """LayerNorm over (features, rows, cols) of each frame separately; never mixes time steps.

    Input (batch, n_features, n_frames, n_rows, n_cols) or (batch, n_features, n_frames).
    """

    def __init__(self, n_features: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n_features))
        self.bias = nn.Parameter(torch.zeros(n_features))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = [1] + list(range(3, x.ndim))  # features and space, not time (dim 2)
        mean = x.mean(dim=dims, keepdim=True)
        var = x.var(dim=dims, keepdim=True, unbiased=False)
        x = (x - mean) * torch.rsqrt(var + self.eps)
        shape = [1, -1] + [1] * (x.ndim - 2)
        return x * self.weight.view(shape) + self.bias.view(shape)


class TimeConv3d(nn.Module):
    """Conv3d over (time, rows, cols) with causal (left-only) or centred temporal padding.

    Parameters
    ----------
    n_in, n_out : int
        Input and output features.
    kernel_t, kernel_s : int
        Temporal and spatial kernel sizes (spatial padding kernel_s // 2, "same").
    dilation_t : int
        Temporal dilation.
    stride_s : int
        Spatial stride (time is never strided).
    causal : bool
        Left-only temporal padding.
    """

    def __init__(self, n_in: int, n_out: int, kernel_t: int = 3, kernel_s: int = 3, *, dilation_t: int = 1,
                 stride_s: int = 1, causal: bool = True, bias: bool = True):
        super().__init__()
        self.causal = causal
        self.context = (kernel_t - 1) * dilation_t  # past frames a step needs
        if not causal and self.context % 2:
            raise ValueError("a non-causal TimeConv3d needs an even (kernel_t - 1) * dilation_t for centred context")
        self.conv = nn.Conv3d(n_in, n_out, (kernel_t, kernel_s, kernel_s), stride=(1, stride_s, stride_s),
                              padding=(0, kernel_s // 2, kernel_s // 2), dilation=(dilation_t, 1, 1), bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, n_in, n_frames, R, C) -> (batch, n_out, n_frames, R', C')."""
        if self.context:
            left = self.context if self.causal else self.context // 2
            right = 0 if self.causal else self.context // 2
            x = F.pad(x, (0, 0, 0, 0, left, right))
        return self.conv(x)

    def init_state(self, x_frame: torch.Tensor) -> torch.Tensor:
        """Zero buffer of past inputs, (batch, n_in, context, R, C), matching the zero left padding."""
        b, c, _, r, w = x_frame.shape
        return x_frame.new_zeros(b, c, self.context, r, w)

    def step(self, x_frame: torch.Tensor, buffer: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One causal step: x_frame (batch, n_in, 1, R, C) -> output (batch, n_out, 1, R', C'), new buffer."""
        if not self.causal:
            raise RuntimeError("step() needs a causal layer")
        window = torch.cat([buffer, x_frame], dim=2) if self.context else x_frame
        return self.conv(window), window[:, :, 1:]


class TimeConv1d(nn.Module):
    """Conv1d over time with causal or centred padding; (batch, n_in, n_frames) -> (batch, n_out, n_frames)."""

    def __init__(self, n_in: int, n_out: int, kernel_t: int = 3, *, dilation_t: int = 1, causal: bool = True,
                 groups: int = 1):
        super().__init__()
        self.causal = causal
        self.context = (kernel_t - 1) * dilation_t
        if not causal and self.context % 2:
            raise ValueError("a non-causal TimeConv1d needs an even (kernel_t - 1) * dilation_t")
        self.conv = nn.Conv1d(n_in, n_out, kernel_t, dilation=dilation_t, groups=groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.context:
            left = self.context if self.causal else self.context // 2
            x = F.pad(x, (left, self.context - left))
        return self.conv(x)

    def init_state(self, x_frame: torch.Tensor) -> torch.Tensor:
        return x_frame.new_zeros(x_frame.shape[0], x_frame.shape[1], self.context)

    def step(self, x_frame: torch.Tensor, buffer: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x_frame (batch, n_in, 1) -> (batch, n_out, 1), new buffer (batch, n_in, context)."""
        window = torch.cat([buffer, x_frame], dim=2) if self.context else x_frame
        return self.conv(window), window[:, :, 1:]


class ResBlock3d(nn.Module):
    """Pre-activation-free residual block: conv-norm-GELU-conv-norm + shortcut, then GELU.

    The first conv may stride space (stride_s); both convs share the temporal dilation.
    """

    def __init__(self, n_in: int, n_out: int, *, dilation_t: int = 1, stride_s: int = 1, causal: bool = True,
                 kernel_t: int = 3, dropout: float = 0.0):
        super().__init__()
        self.conv1 = TimeConv3d(n_in, n_out, kernel_t, 3, dilation_t=dilation_t, stride_s=stride_s, causal=causal)
        self.norm1 = FrameNorm(n_out)
        self.conv2 = TimeConv3d(n_out, n_out, kernel_t, 3, dilation_t=dilation_t, causal=causal)
        self.norm2 = FrameNorm(n_out)
        self.drop = nn.Dropout(dropout)
        self.shortcut = (nn.Identity() if n_in == n_out and stride_s == 1 else
                         nn.Conv3d(n_in, n_out, 1, stride=(1, stride_s, stride_s), bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.gelu(self.norm1(self.conv1(x)))
        y = self.norm2(self.conv2(self.drop(y)))
        return F.gelu(y + self.shortcut(x))

    def init_state(self, x_frame: torch.Tensor) -> list[torch.Tensor]:
        y = F.gelu(self.norm1(self.conv1.conv(torch.cat([self.conv1.init_state(x_frame), x_frame], 2))))
        return [self.conv1.init_state(x_frame), self.conv2.init_state(y)]

    def step(self, x_frame: torch.Tensor, state: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        y, b1 = self.conv1.step(x_frame, state[0])
        y = F.gelu(self.norm1(y))
        y, b2 = self.conv2.step(y, state[1])
        y = self.norm2(y)
        return F.gelu(y + self.shortcut(x_frame)), [b1, b2]


def init_output_layer(layer: nn.Linear, scale: float = 0.01) -> None:
    """Small weights and zero bias, so an untrained decoder outputs mid-range synthesizer controls."""
    nn.init.normal_(layer.weight, std=scale)
    nn.init.zeros_(layer.bias)
