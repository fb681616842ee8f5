"""Neural likelihood (encoding) model A: mel window -> predicted neural features, per frame.

Used as the measurement operator of DPS: the observation model is y = A(x0) + n with y the
z-scored high-gamma window (normalised exactly as in training, by the run's `Normalizer`).
A is a stack of non-causal dilated temporal convolutions (kernel 5, dilations 1, 2, 4, 8, ...),
so each predicted neural frame sees the mel frames both before AND after it: neural activity
leads the audio during production and follows it during perception, by up to ~200 ms. With the
defaults the receptive field is +-30 frames = +-240 ms (`receptive_field_frames`).

Optionally, features of a local Whisper encoder (`neurovox.diffusion.whisper`) are concatenated
to the mel input; gradients flow through the encoder so DPS guidance reaches the mel.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from neurovox.errors import DataError


@dataclass
class LikelihoodConfig:
    n_mels: int = 80                 # mel bins of the input, count
    hidden: int = 128                # conv channels, count
    n_blocks: int = 4                # residual dilated blocks (dilation 2**i), count
    kernel_frames: int = 5           # temporal kernel, frames (8 ms each)
    dropout: float = 0.1             # dropout probability, fraction
    whisper_dir: str = ""            # local Whisper checkpoint directory ("" = mel only), path
    whisper_dim: int = 64            # Whisper features projected to this width, count
    input_noise: float = 0.1         # std of Gaussian noise added to training inputs (unit scale),
                                     # so A behaves on the blurry x0 estimates DPS feeds it, unitless
    lr: float = 1e-3                 # AdamW learning rate, 1/step
    weight_decay: float = 1e-2       # AdamW weight decay, unitless
    batch_size: int = 32             # windows per step, count
    max_epochs: int = 60             # passes over the training windows, count
    patience_epochs: int = 10        # early stop after this many epochs without val improvement, count


class _Block(nn.Module):
    def __init__(self, ch: int, kernel: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.conv = nn.Conv1d(ch, ch, kernel, dilation=dilation, padding=dilation * (kernel // 2))
        self.mix = nn.Conv1d(ch, ch, 1)
        self.drop = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.mix(self.drop(F.gelu(self.conv(h))))


class LikelihoodModel(nn.Module):
    """A: unit-scale mel image -> z-scored neural prediction.

    forward(x0): Tensor (batch, 1, n_mels, n_frames) -> Tensor (batch, n_frames, n_channels)
    """

    def __init__(self, n_channels: int, cfg: LikelihoodConfig | None = None, whisper: nn.Module | None = None) -> None:
        super().__init__()
        cfg = cfg or LikelihoodConfig()
        if cfg.kernel_frames % 2 == 0:
            raise DataError(f"kernel_frames must be odd (centred kernels), got {cfg.kernel_frames}.")
        self.cfg = cfg
        self.n_channels = int(n_channels)
        self.whisper = whisper
        n_in = cfg.n_mels + (cfg.whisper_dim if whisper is not None else 0)
        self.inp = nn.Conv1d(n_in, cfg.hidden, 1)
        self.blocks = nn.ModuleList(
            _Block(cfg.hidden, cfg.kernel_frames, 2**i, cfg.dropout) for i in range(cfg.n_blocks))
        self.out = nn.Conv1d(cfg.hidden, self.n_channels, 1)

    @property
    def receptive_field_frames(self) -> int:
        """Frames on EACH side of an output frame that influence it."""
        return sum((self.cfg.kernel_frames // 2) * 2**i for i in range(self.cfg.n_blocks))

    def config(self) -> dict:
        return {"n_channels": self.n_channels, **asdict(self.cfg)}

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        if x0.ndim != 4 or x0.shape[1] != 1 or x0.shape[2] != self.cfg.n_mels:
            raise DataError(f"LikelihoodModel input must be (batch, 1, {self.cfg.n_mels}, n_frames), got {tuple(x0.shape)}.")
        h = rearrange(x0, "b 1 m t -> b m t")
        if self.whisper is not None:
            h = torch.cat([h, rearrange(self.whisper(x0), "b t d -> b d t")], dim=1)
        h = self.inp(h)
        for block in self.blocks:
            h = block(h)
        return rearrange(self.out(h), "b c t -> b t c")
