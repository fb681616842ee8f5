"""3-D ResNet decoder over (time x grid rows x grid cols), causal or centred.

Structure (after Chen et al. 2024, with strict causality by construction):

    neural (batch, n_frames, n_channels)
      -> GridMapper: (batch, 2, n_frames, n_rows, n_cols)   values + good-contact mask
      -> stem TimeConv3d + FrameNorm + GELU
      -> stages of ResBlock3d; each stage halves the grid (spatial stride 2) and doubles the
         features, with temporal dilation 1, 2, 4, ... (receptive field grows without temporal stride)
      -> mean over the grid cells -> (batch, features, n_frames)
      -> TimeConv1d + GELU -> Linear -> (batch, n_frames, n_out)

Time is never strided or pooled and normalisation is per frame, so in causal mode (left-only
temporal padding) output frame t sees only input frames <= t; `init_state`/`step` run it one frame
at a time for streaming.
"""

from __future__ import annotations

from typing import Any

import torch
from einops import rearrange
from torch import nn
from torch.nn import functional as F

from neurovox.decoders.base import NeuralDecoder
from neurovox.decoders.blocks import FrameNorm, ResBlock3d, TimeConv1d, TimeConv3d, init_output_layer
from neurovox.decoders.layout import GridLayout, GridMapper


class ResNet3D(NeuralDecoder):
    """3-D ResNet neural decoder.

    Parameters
    ----------
    layout : GridLayout
        Electrode grid.
    n_out : int
        Outputs per frame: the synthesizer's raw controls (target formant) or standardised mel bins (target mel).
    causal : bool
        Strictly causal (left-only temporal padding).
    widths : tuple of int
        Features of each stage (default (16, 32, 64)); the stem has widths[0].
    blocks_per_stage : int
        Residual blocks per stage.
    kernel_t : int
        Temporal kernel size (odd).
    dropout : float
        Dropout inside the residual blocks.

    Receptive field: 1 + (kernel_t - 1) * (1 + 2 * blocks_per_stage * sum(2**i) + 1) frames.
    """

    name = "resnet"

    def __init__(self, layout: GridLayout, n_out: int, causal: bool = True, widths: tuple[int, ...] = (16, 32, 64),
                 blocks_per_stage: int = 1, kernel_t: int = 3, dropout: float = 0.1):
        super().__init__()
        widths = tuple(int(w) for w in widths)
        self.model_args: dict[str, Any] = {"layout": layout.to_dict(), "n_out": n_out, "causal": causal,
                                           "widths": list(widths), "blocks_per_stage": blocks_per_stage,
                                           "kernel_t": kernel_t, "dropout": dropout}
        self.causal = causal
        self.mapper = GridMapper(layout)
        self.stem = TimeConv3d(2, widths[0], kernel_t, 3, causal=causal)
        self.stem_norm = FrameNorm(widths[0])
        blocks = []
        n_in = widths[0]
        rows, cols = layout.n_rows, layout.n_cols
        for i, w in enumerate(widths):
            for j in range(blocks_per_stage):
                stride = 2 if (j == 0 and i > 0 and max(rows, cols) > 1) else 1
                if stride == 2:
                    rows, cols = (rows + 1) // 2, (cols + 1) // 2
                blocks.append(ResBlock3d(n_in, w, dilation_t=2 ** i, stride_s=stride, causal=causal,
                                         kernel_t=kernel_t, dropout=dropout))
                n_in = w
        self.blocks = nn.ModuleList(blocks)
        self.head_conv = TimeConv1d(n_in, n_in, kernel_t, causal=causal)
        self.out = nn.Linear(n_in, n_out)
        init_output_layer(self.out)

    def forward_frames(self, neural: torch.Tensor) -> torch.Tensor:
        """(batch, n_frames, n_channels) -> (batch, n_frames, n_out)."""
        x = self.mapper(neural)                     # (b, 2, t, r, c)
        x = F.gelu(self.stem_norm(self.stem(x)))    # (b, w0, t, r, c)
        for block in self.blocks:
            x = block(x)
        x = x.mean(dim=(3, 4))                      # (b, w, t)
        x = F.gelu(self.head_conv(x))
        return self.out(rearrange(x, "b w t -> b t w"))

    # Streaming ---------------------------------------------------------------------------------

    @torch.no_grad()
    def init_state(self, neural_frame: torch.Tensor) -> list[Any]:
        """Zero ring buffers for every temporal layer, for input frames of shape (batch, n_channels)."""
        if not self.causal:
            raise RuntimeError("streaming needs a causal ResNet3D (causal=True)")
        x = self.mapper(neural_frame[:, None])      # (b, 2, 1, r, c)
        state: list[Any] = [self.stem.init_state(x)]
        x = F.gelu(self.stem_norm(self.stem.conv(torch.cat([state[0], x], 2))))
        for block in self.blocks:
            s = block.init_state(x)
            state.append(s)
            x, _ = block.step(x, s)
        state.append(self.head_conv.init_state(x.mean(dim=(3, 4))))
        return state

    @torch.no_grad()
    def step(self, neural_frame: torch.Tensor, state: list[Any]) -> tuple[torch.Tensor, list[Any]]:
        """One frame: (batch, n_channels) -> outputs (batch, n_out) and the new state."""
        x = self.mapper(neural_frame[:, None])
        x, b0 = self.stem.step(x, state[0])
        x = F.gelu(self.stem_norm(x))
        new_state: list[Any] = [b0]
        for block, s in zip(self.blocks, state[1:-1]):
            x, s = block.step(x, s)
            new_state.append(s)
        x, bh = self.head_conv.step(x.mean(dim=(3, 4)), state[-1])
        new_state.append(bh)
        return self.out(F.gelu(x[:, :, 0])), new_state
