"""U-Net denoiser over log-mel images, shape (batch, 1, n_mels, n_frames).

The network maps (x_t, t) to the schedule's prediction (epsilon, v or x0); it knows nothing of
the schedule itself (see `schedule.py`), only the integer timestep, which it embeds with
sinusoids (Vaswani et al. 2017) and an MLP, as in DDPM (Ho et al. 2020, appendix B).
Architecture: residual blocks (GroupNorm, SiLU, 3x3 conv, timestep added as a per-channel
shift), 2x down/up-sampling on both axes, skip connections, and one self-attention block at the
lowest resolution.
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
    arch: str = "unet2d"                   # "unet2d" (this file) or "unet1d" (denoiser_temporal.py: mel bins as channels)
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
    if cfg.arch == "unet1d":
        from neurovox.diffusion.denoiser_temporal import TemporalUNet

        return TemporalUNet(cfg)
    return MelUNet(cfg)


def _norm(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, ch), ch)


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, time_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = _norm(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.time = nn.Linear(time_dim, c_out)
        self.norm2 = _norm(c_out)
        self.drop = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + rearrange(self.time(emb), "b c -> b c 1 1")
        h = self.conv2(self.drop(F.silu(self.norm2(h))))
        return self.skip(x) + h


class AttentionBlock(nn.Module):
    def __init__(self, ch: int, n_heads: int) -> None:
        super().__init__()
        self.norm = _norm(ch)
        self.attn = nn.MultiheadAttention(ch, n_heads, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = rearrange(self.norm(x), "b c h w -> b (h w) c")
        out, _ = self.attn(tokens, tokens, tokens, need_weights=False)
        return x + rearrange(out, "b (h w) c -> b c h w", h=h, w=w)


class MelUNet(nn.Module):
    """U-Net epsilon/v/x0 predictor for log-mel images.

    forward(x, t): x Tensor (batch, 1, n_mels, n_frames), t LongTensor (batch,) -> same shape as x.
    n_mels and n_frames must be divisible by 2 ** (len(channels) - 1).
    """

    def __init__(self, cfg: DenoiserConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or DenoiserConfig()
        self.cfg = cfg
        ch = list(cfg.channels)
        self.time_mlp = nn.Sequential(nn.Linear(cfg.time_dim, cfg.time_dim * 2), nn.SiLU(),
                                      nn.Linear(cfg.time_dim * 2, cfg.time_dim))
        self.stem = nn.Conv2d(1, ch[0], 3, padding=1)
        self.down = nn.ModuleList()
        skips = [ch[0]]
        c = ch[0]
        for level, c_out in enumerate(ch):
            blocks = nn.ModuleList()
            for _ in range(cfg.n_res_blocks):
                blocks.append(ResBlock(c, c_out, cfg.time_dim, cfg.dropout))
                c = c_out
                skips.append(c)
            down = nn.Conv2d(c, c, 3, stride=2, padding=1) if level < len(ch) - 1 else None
            if down is not None:
                skips.append(c)
            self.down.append(nn.ModuleDict({"blocks": blocks, **({"down": down} if down is not None else {})}))
        self.mid1 = ResBlock(c, c, cfg.time_dim, cfg.dropout)
        self.mid_attn = AttentionBlock(c, cfg.n_heads) if cfg.attention else nn.Identity()
        self.mid2 = ResBlock(c, c, cfg.time_dim, cfg.dropout)
        self.up = nn.ModuleList()
        for level, c_out in reversed(list(enumerate(ch))):
            blocks = nn.ModuleList()
            for _ in range(cfg.n_res_blocks + 1):
                blocks.append(ResBlock(c + skips.pop(), c_out, cfg.time_dim, cfg.dropout))
                c = c_out
            up = nn.Conv2d(c, c, 3, padding=1) if level > 0 else None
            self.up.append(nn.ModuleDict({"blocks": blocks, **({"up": up} if up is not None else {})}))
        self.out_norm = _norm(c)
        self.out = nn.Conv2d(c, 1, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.factor = 2 ** (len(ch) - 1)

    def config(self) -> dict:
        return asdict(self.cfg)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 1 or x.shape[2] % self.factor or x.shape[3] % self.factor:
            raise DataError(
                f"MelUNet input must have shape (batch, 1, n_mels, n_frames) with n_mels and n_frames "
                f"divisible by {self.factor}, got {tuple(x.shape)}. Crop or pad the mel window."
            )
        t = torch.as_tensor(t, device=x.device).long().reshape(-1).expand(x.shape[0])
        emb = self.time_mlp(timestep_embedding(t, self.cfg.time_dim))
        h = self.stem(x)
        hs = [h]
        for level in self.down:
            for block in level["blocks"]:
                h = block(h, emb)
                hs.append(h)
            if "down" in level:
                h = level["down"](h)
                hs.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        for level in self.up:
            for block in level["blocks"]:
                h = block(torch.cat([h, hs.pop()], dim=1), emb)
            if "up" in level:
                h = level["up"](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.out(F.silu(self.out_norm(h)))
