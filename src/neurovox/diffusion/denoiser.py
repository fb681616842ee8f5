"""U-Net denoisers over log-mel windows, shape (batch, 1, n_mels, n_frames).

The network maps (x_t, t) to the schedule's prediction (epsilon, v or x0); it knows nothing of
the schedule itself (see `schedule.py`), only the integer timestep, which it embeds with
sinusoids (Vaswani et al. 2017) and an MLP, as in DDPM (Ho et al. 2020, appendix B).
Architecture: residual blocks (GroupNorm, SiLU, 3-wide conv, timestep added as a per-channel
shift), 2x down/up-sampling, skip connections, and one self-attention block at the lowest
resolution. Two variants share that body:

- `MelUNet` ("unet2d"): the window is a 1-channel image; 2-D convolutions, both axes down-sampled.
- `TemporalUNet` ("unet1d"): the 80 mel bins are the channels of 1-D convolutions over time; ~50x
  cheaper at equal width, which is what makes a prior trainable in minutes on two CPU cores (the
  `--quick` setting). Only time is down-sampled.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from neurovox.errors import DataError


@dataclass
class DenoiserConfig:
    arch: str = "unet2d"                   # "unet2d" (MelUNet: 2-D image) or "unet1d" (TemporalUNet: mel bins as channels)
    n_mels: int = 80                       # mel bins (image height), count
    channels: tuple[int, ...] = (32, 64, 128)  # feature channels per resolution level, count
    n_res_blocks: int = 2                  # residual blocks per level, count
    attention: bool = True                 # self-attention at the lowest resolution
    n_heads: int = 4                       # attention heads, count
    dropout: float = 0.0                   # dropout probability in residual blocks, fraction
    time_dim: int = 128                    # timestep-embedding width, count


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps, (batch,) -> (batch, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def build_denoiser(cfg: DenoiserConfig) -> nn.Module:
    """The denoiser named by `cfg.arch`."""
    from neurovox.utils.check import check_option

    check_option("denoiser.arch", cfg.arch, ("unet2d", "unet1d"))
    return TemporalUNet(cfg) if cfg.arch == "unet1d" else MelUNet(cfg)


def _norm(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, ch), ch)


def _conv(dims: int) -> type[nn.Module]:
    return nn.Conv1d if dims == 1 else nn.Conv2d


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, the timestep embedding added as a per-channel shift in between.

    forward(x (b, c_in, *spatial), emb (b, time_dim)) -> (b, c_out, *spatial); `dims` spatial axes.
    """

    def __init__(self, c_in: int, c_out: int, time_dim: int, dropout: float, dims: int = 2) -> None:
        super().__init__()
        conv = _conv(dims)
        self.norm1 = _norm(c_in)
        self.conv1 = conv(c_in, c_out, 3, padding=1)
        self.time = nn.Linear(time_dim, c_out)
        self.norm2 = _norm(c_out)
        self.drop = nn.Dropout(dropout)
        self.conv2 = conv(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # each block starts as its skip path
        nn.init.zeros_(self.conv2.bias)
        self.skip = conv(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        shift = self.time(emb).reshape(*emb.shape[:1], -1, *([1] * (x.ndim - 2)))
        h = self.conv1(F.silu(self.norm1(x))) + shift
        return self.skip(x) + self.conv2(self.drop(F.silu(self.norm2(h))))


class AttentionBlock(nn.Module):
    """Residual multi-head self-attention over every spatial position, (b, c, *spatial) -> same."""

    def __init__(self, ch: int, n_heads: int) -> None:
        super().__init__()
        self.norm = _norm(ch)
        self.attn = nn.MultiheadAttention(ch, n_heads, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.norm(x).flatten(2).transpose(1, 2)          # (b, positions, c)
        out, _ = self.attn(tokens, tokens, tokens, need_weights=False)
        return x + out.transpose(1, 2).reshape(x.shape)


class _UNetBody(nn.Module):
    """Stem, down path, middle (res-attention-res), up path with skips; ends before the output layer.

    features(x (b, in_ch, *spatial), emb) -> (b, channels[0], *spatial); each spatial axis that is
    down-sampled must be divisible by `factor`. 1-D down-sampling halves time; 2-D halves both axes.
    """

    def __init__(self, cfg: DenoiserConfig, dims: int, in_ch: int) -> None:
        super().__init__()
        self.cfg = cfg
        conv = _conv(dims)
        ch = list(cfg.channels)
        self.time_mlp = nn.Sequential(nn.Linear(cfg.time_dim, cfg.time_dim * 2), nn.SiLU(),
                                      nn.Linear(cfg.time_dim * 2, cfg.time_dim))
        self.stem = conv(in_ch, ch[0], 3, padding=1)
        self.down_blocks, self.downs = nn.ModuleList(), nn.ModuleList()
        skips, c = [ch[0]], ch[0]
        for level, c_out in enumerate(ch):
            blocks = nn.ModuleList()
            for _ in range(cfg.n_res_blocks):
                blocks.append(ResBlock(c, c_out, cfg.time_dim, cfg.dropout, dims))
                c = c_out
                skips.append(c)
            self.down_blocks.append(blocks)
            last = level == len(ch) - 1
            self.downs.append(nn.Identity() if last else conv(c, c, 3, stride=2, padding=1))
            if not last:
                skips.append(c)
        self.mid1 = ResBlock(c, c, cfg.time_dim, cfg.dropout, dims)
        self.mid_attn = AttentionBlock(c, cfg.n_heads) if cfg.attention else nn.Identity()
        self.mid2 = ResBlock(c, c, cfg.time_dim, cfg.dropout, dims)
        self.up_blocks, self.ups = nn.ModuleList(), nn.ModuleList()
        for level, c_out in reversed(list(enumerate(ch))):
            blocks = nn.ModuleList()
            for _ in range(cfg.n_res_blocks + 1):
                blocks.append(ResBlock(c + skips.pop(), c_out, cfg.time_dim, cfg.dropout, dims))
                c = c_out
            self.up_blocks.append(blocks)
            self.ups.append(conv(c, c, 3, padding=1) if level > 0 else nn.Identity())
        self.out_norm = _norm(c)
        self.out_channels = c
        self.factor = 2 ** (len(ch) - 1)

    def config(self) -> dict:
        return asdict(self.cfg)

    def features(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, device=x.device).long().reshape(-1).expand(x.shape[0])
        emb = self.time_mlp(timestep_embedding(t, self.cfg.time_dim))
        h = self.stem(x)
        hs = [h]
        n_levels = len(self.down_blocks)
        for level, (blocks, down) in enumerate(zip(self.down_blocks, self.downs)):
            for block in blocks:
                h = block(h, emb)
                hs.append(h)
            if level < n_levels - 1:
                h = down(h)
                hs.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        for i, (blocks, up) in enumerate(zip(self.up_blocks, self.ups)):
            for block in blocks:
                h = block(torch.cat([h, hs.pop()], dim=1), emb)
            if i < n_levels - 1:
                h = up(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return F.silu(self.out_norm(h))


class MelUNet(_UNetBody):
    """2-D U-Net over the mel window as a 1-channel image.

    forward(x, t): x Tensor (batch, 1, n_mels, n_frames), t LongTensor (batch,) -> same shape as x.
    n_mels and n_frames must be divisible by 2 ** (len(channels) - 1).
    """

    def __init__(self, cfg: DenoiserConfig | None = None) -> None:
        super().__init__(cfg or DenoiserConfig(), dims=2, in_ch=1)
        self.out = nn.Conv2d(self.out_channels, 1, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 1 or x.shape[2] % self.factor or x.shape[3] % self.factor:
            raise DataError(
                f"MelUNet input must have shape (batch, 1, n_mels, n_frames) with n_mels and n_frames "
                f"divisible by {self.factor}, got {tuple(x.shape)}. Crop or pad the mel window."
            )
        return self.out(self.features(x, t))


class TemporalUNet(_UNetBody):
    """1-D U-Net over time with the mel bins as channels.

    forward(x, t): x Tensor (batch, 1, n_mels, n_frames), t LongTensor (batch,) -> same shape as x.
    n_frames must be divisible by 2 ** (len(channels) - 1).
    """

    def __init__(self, cfg: DenoiserConfig | None = None) -> None:
        cfg = cfg or DenoiserConfig(arch="unet1d")
        super().__init__(cfg, dims=1, in_ch=cfg.n_mels)
        c = self.out_channels
        # The input is concatenated to the last layer: with mel bins as channels, a first level
        # narrower than n_mels could not carry the per-bin noise (the identity part of eps at
        # large t) through the network.
        self.out = nn.Conv1d(c + cfg.n_mels, cfg.n_mels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        with torch.no_grad():  # start as eps_hat = x_t (exact at t = T-1 under epsilon prediction)
            self.out.weight[:, c:, 1].copy_(torch.eye(cfg.n_mels))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 1 or x.shape[2] != self.cfg.n_mels or x.shape[3] % self.factor:
            raise DataError(
                f"TemporalUNet input must have shape (batch, 1, {self.cfg.n_mels}, n_frames) with n_frames "
                f"divisible by {self.factor}, got {tuple(x.shape)}. Crop or pad the mel window."
            )
        x_in = rearrange(x, "b 1 m t -> b m t")
        h = torch.cat([self.features(x_in, t), x_in], dim=1)
        return rearrange(self.out(h), "b m t -> b 1 m t")
