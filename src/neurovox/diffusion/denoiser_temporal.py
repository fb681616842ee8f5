"""Temporal U-Net denoiser: the 80 mel bins are the input channels of 1-D convolutions over time.

Same contract as `MelUNet` (x (batch, 1, n_mels, n_frames), t (batch,) -> same shape as x) and the
same building blocks (residual blocks with GroupNorm, SiLU, a timestep shift; skip connections;
self-attention at the lowest resolution), but ~50x cheaper than the 2-D U-Net at equal width,
which is what makes a prior trainable in minutes on two CPU cores (the `--quick` setting).
Only the time axis is down-sampled; n_frames must be divisible by 2 ** (len(channels) - 1).
"""

from __future__ import annotations

from dataclasses import asdict

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from neurovox.diffusion.denoiser import DenoiserConfig, timestep_embedding
from neurovox.errors import DataError


def _norm(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, ch), ch)


class ResBlock1d(nn.Module):
    def __init__(self, c_in: int, c_out: int, time_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = _norm(c_in)
        self.conv1 = nn.Conv1d(c_in, c_out, 3, padding=1)
        self.time = nn.Linear(time_dim, c_out)
        self.norm2 = _norm(c_out)
        self.drop = nn.Dropout(dropout)
        self.conv2 = nn.Conv1d(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x))) + rearrange(self.time(emb), "b c -> b c 1")
        return self.skip(x) + self.conv2(self.drop(F.silu(self.norm2(h))))


class Attention1d(nn.Module):
    def __init__(self, ch: int, n_heads: int) -> None:
        super().__init__()
        self.norm = _norm(ch)
        self.attn = nn.MultiheadAttention(ch, n_heads, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = rearrange(self.norm(x), "b c t -> b t c")
        out, _ = self.attn(tokens, tokens, tokens, need_weights=False)
        return x + rearrange(out, "b t c -> b c t")


class TemporalUNet(nn.Module):
    """1-D U-Net over time with mel bins as channels; forward(x (b, 1, n_mels, n_frames), t (b,))."""

    def __init__(self, cfg: DenoiserConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or DenoiserConfig(arch="unet1d")
        self.cfg = cfg
        ch = list(cfg.channels)
        self.time_mlp = nn.Sequential(nn.Linear(cfg.time_dim, cfg.time_dim * 2), nn.SiLU(),
                                      nn.Linear(cfg.time_dim * 2, cfg.time_dim))
        self.stem = nn.Conv1d(cfg.n_mels, ch[0], 3, padding=1)
        self.down_blocks, self.downs = nn.ModuleList(), nn.ModuleList()
        skips, c = [ch[0]], ch[0]
        for level, c_out in enumerate(ch):
            blocks = nn.ModuleList()
            for _ in range(cfg.n_res_blocks):
                blocks.append(ResBlock1d(c, c_out, cfg.time_dim, cfg.dropout))
                c = c_out
                skips.append(c)
            self.down_blocks.append(blocks)
            last = level == len(ch) - 1
            self.downs.append(nn.Identity() if last else nn.Conv1d(c, c, 3, stride=2, padding=1))
            if not last:
                skips.append(c)
        self.mid1 = ResBlock1d(c, c, cfg.time_dim, cfg.dropout)
        self.mid_attn = Attention1d(c, cfg.n_heads) if cfg.attention else nn.Identity()
        self.mid2 = ResBlock1d(c, c, cfg.time_dim, cfg.dropout)
        self.up_blocks, self.ups = nn.ModuleList(), nn.ModuleList()
        for level, c_out in reversed(list(enumerate(ch))):
            blocks = nn.ModuleList()
            for _ in range(cfg.n_res_blocks + 1):
                blocks.append(ResBlock1d(c + skips.pop(), c_out, cfg.time_dim, cfg.dropout))
                c = c_out
            self.up_blocks.append(blocks)
            self.ups.append(nn.Conv1d(c, c, 3, padding=1) if level > 0 else nn.Identity())
        self.out_norm = _norm(c)
        # The input is concatenated to the last layer: with mel bins as channels, a first level
        # narrower than n_mels could not carry the per-bin noise (the identity part of eps at
        # large t) through the network.
        self.out = nn.Conv1d(c + cfg.n_mels, cfg.n_mels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        with torch.no_grad():  # start as eps_hat = x_t (exact at t = T-1 under epsilon prediction)
            self.out.weight[:, c:, 1].copy_(torch.eye(cfg.n_mels))
        self.factor = 2 ** (len(ch) - 1)

    def config(self) -> dict:
        return asdict(self.cfg)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 1 or x.shape[2] != self.cfg.n_mels or x.shape[3] % self.factor:
            raise DataError(
                f"TemporalUNet input must have shape (batch, 1, {self.cfg.n_mels}, n_frames) with n_frames "
                f"divisible by {self.factor}, got {tuple(x.shape)}. Crop or pad the mel window."
            )
        t = torch.as_tensor(t, device=x.device).long().reshape(-1).expand(x.shape[0])
        emb = self.time_mlp(timestep_embedding(t, self.cfg.time_dim))
        x_in = rearrange(x, "b 1 m t -> b m t")
        h = self.stem(x_in)
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
        h = torch.cat([F.silu(self.out_norm(h)), x_in], dim=1)
        return rearrange(self.out(h), "b m t -> b 1 m t")
