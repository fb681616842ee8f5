"""3-D Swin Transformer decoder over (time x grid rows x grid cols), causal or not.

    neural (batch, n_frames, n_channels)
      -> GridMapper (values + good-contact mask) -> patch embedding per frame (spatial patches,
         temporal patch size 1 so the frame clock is kept) + learned grid-position embedding
         + depthwise temporal convolution (causal or centred) as the time-position signal
      -> stages of Swin blocks: multi-head self-attention inside 3-D windows
         (window_t frames x window_s x window_s tokens), every second block with shifted windows,
         then a per-token MLP; patch merging (2 x 2 -> 1) between stages
      -> LayerNorm, mean over the grid tokens -> Linear -> (batch, n_frames, n_out)

Strict causality: attention inside each window is masked so a query at time t attends only to keys
at times <= t (the original, unshifted times, so the cyclic shift of shifted windows cannot carry
the future into the past; wrapped tokens are also separated by the usual region mask). LayerNorm is
per token and no layer strides or pools time. Windows are padded at the end of time; padded keys are
masked out.
"""

from __future__ import annotations

from typing import Any

import torch
from einops import rearrange
from torch import nn
from torch.nn import functional as F

from neurovox.decoders.base import NeuralDecoder
from neurovox.decoders.blocks import init_output_layer
from neurovox.decoders.layout import GridLayout, GridMapper


def _window_mask(t: int, h: int, w: int, n_t: int, n_h: int, n_w: int, window: tuple[int, int, int],
                 shift: tuple[int, int, int], causal: bool, device: torch.device) -> torch.Tensor:
    """Boolean mask (n_windows, L, L) of allowed (query, key) pairs for padded sizes (n_t, n_h, n_w).

    t, h, w are the real (unpadded) sizes; shift is the cyclic shift applied before partitioning.
    """
    coords = []
    for n, real, s in ((n_t, t, shift[0]), (n_h, h, shift[1]), (n_w, w, shift[2])):
        orig = (torch.arange(n, device=device) + s) % n   # original index of each position after the roll
        region = (orig < s).long() if s else torch.zeros(n, dtype=torch.long, device=device)
        coords.append((orig, region, orig < real))
    (ot, rt, vt), (_, rh, vh), (_, rw, vw) = coords
    time = ot[:, None, None].expand(n_t, n_h, n_w)
    region = (rt[:, None, None] * 4 + rh[None, :, None] * 2 + rw[None, None, :]).expand(n_t, n_h, n_w)
    valid = (vt[:, None, None] & vh[None, :, None] & vw[None, None, :]).expand(n_t, n_h, n_w)

    def part(x: torch.Tensor) -> torch.Tensor:
        return rearrange(x, "(nt wt) (nh wh) (nw ww) -> (nt nh nw) (wt wh ww)", wt=window[0], wh=window[1], ww=window[2])

    time, region, valid = part(time), part(region), part(valid)
    allowed = (region[:, :, None] == region[:, None, :]) & valid[:, None, :]
    if causal:
        allowed &= time[:, None, :] <= time[:, :, None]
    eye = torch.eye(allowed.shape[-1], dtype=torch.bool, device=device)
    return allowed | eye  # every query keeps itself, so no row is empty (padded queries are discarded)


class WindowAttention(nn.Module):
    def __init__(self, dim: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """x (batch * n_windows, L, dim), allowed (n_windows, L, L) bool."""
        bw, length, dim = x.shape
        n_win = allowed.shape[0]
        q, k, v = rearrange(self.qkv(x), "b l (three h d) -> three b h l d", three=3, h=self.n_heads)
        scores = (q @ k.transpose(-1, -2)) * (q.shape[-1] ** -0.5)          # (bw, h, L, L)
        scores = scores.view(bw // n_win, n_win, self.n_heads, length, length)
        scores = scores.masked_fill(~allowed[None, :, None], float("-inf"))
        attn = scores.softmax(dim=-1).view(bw, self.n_heads, length, length)
        y = rearrange(attn @ v, "b h l d -> b l (h d)")
        return self.proj(y)


class SwinBlock(nn.Module):
    def __init__(self, dim: int, n_heads: int, window: tuple[int, int, int], shift: tuple[int, int, int],
                 causal: bool, mlp_ratio: float = 2.0, dropout: float = 0.0):
        super().__init__()
        self.window, self.shift, self.causal = window, shift, causal
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, n_heads)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (batch, n_frames, h, w, dim) -> same shape."""
        b, t, h, w, d = x.shape
        wt, wh, ww = self.window
        wh, ww = min(wh, h), min(ww, w)
        st = self.shift[0] if t > wt else 0
        sh = self.shift[1] if h > wh else 0
        sw = self.shift[2] if w > ww else 0
        n_t, n_h, n_w = -(-t // wt) * wt, -(-h // wh) * wh, -(-w // ww) * ww
        y = F.pad(self.norm1(x), (0, 0, 0, n_w - w, 0, n_h - h, 0, n_t - t))
        if st or sh or sw:
            y = torch.roll(y, shifts=(-st, -sh, -sw), dims=(1, 2, 3))
        allowed = _window_mask(t, h, w, n_t, n_h, n_w, (wt, wh, ww), (st, sh, sw), self.causal, x.device)
        y = rearrange(y, "b (nt wt) (nh wh) (nw ww) d -> (b nt nh nw) (wt wh ww) d", wt=wt, wh=wh, ww=ww)
        y = self.attn(y, allowed)
        y = rearrange(y, "(b nt nh nw) (wt wh ww) d -> b (nt wt) (nh wh) (nw ww) d",
                      b=b, nt=n_t // wt, nh=n_h // wh, wt=wt, wh=wh, ww=ww)
        if st or sh or sw:
            y = torch.roll(y, shifts=(st, sh, sw), dims=(1, 2, 3))
        x = x + self.drop(y[:, :t, :h, :w])
        return x + self.drop(self.mlp(self.norm2(x)))


class PatchMerge(nn.Module):
    """Merge 2 x 2 neighbouring grid tokens (per frame): (b, t, h, w, d) -> (b, t, ceil(h/2), ceil(w/2), 2d)."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduce = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2], x.shape[3]
        x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
        x = rearrange(x, "b t (h p) (w q) d -> b t h w (p q d)", p=2, q=2)
        return self.reduce(self.norm(x))


class Swin3D(NeuralDecoder):
    """3-D Swin Transformer neural decoder.

    Parameters
    ----------
    layout : GridLayout
        Electrode grid.
    n_out : int
        Raw controls per frame.
    causal : bool
        Causal attention masks and left-only temporal convolution.
    dim : int
        Token features of the first stage (doubled at each patch merge).
    depths : tuple of int
        Swin blocks per stage (pairs of regular + shifted windows work best).
    n_heads : int
        Attention heads (dim must divide by it).
    patch : int
        Spatial patch size in grid cells.
    window_t, window_s : int
        Attention window in frames and in grid tokens.
    dropout : float
        Dropout in attention outputs and MLPs.
    """

    name = "swin"

    def __init__(self, layout: GridLayout, n_out: int, causal: bool = True, dim: int = 32,
                 depths: tuple[int, ...] = (2, 2), n_heads: int = 4, patch: int = 2, window_t: int = 16,
                 window_s: int = 4, dropout: float = 0.1):
        super().__init__()
        depths = tuple(int(d) for d in depths)
        self.model_args: dict[str, Any] = {"layout": layout.to_dict(), "n_out": n_out, "causal": causal, "dim": dim,
                                           "depths": list(depths), "n_heads": n_heads, "patch": patch,
                                           "window_t": window_t, "window_s": window_s, "dropout": dropout}
        self.causal = causal
        self.patch = patch
        self.mapper = GridMapper(layout)
        self.embed = nn.Conv3d(2, dim, (1, patch, patch), stride=(1, patch, patch))
        h, w = -(-layout.n_rows // patch), -(-layout.n_cols // patch)
        self.pos = nn.Parameter(torch.zeros(1, 1, h, w, dim))
        nn.init.normal_(self.pos, std=0.02)
        self.time_kernel = 5
        self.time_conv = nn.Conv1d(dim, dim, self.time_kernel, groups=dim)
        stages = []
        for i, depth in enumerate(depths):
            d = dim * 2 ** i
            blocks: list[nn.Module] = []
            if i > 0:
                blocks.append(PatchMerge(d // 2))
            for j in range(depth):
                shift = (window_t // 2, window_s // 2, window_s // 2) if j % 2 else (0, 0, 0)
                blocks.append(SwinBlock(d, n_heads, (window_t, window_s, window_s), shift, causal, dropout=dropout))
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        d_last = dim * 2 ** (len(depths) - 1)
        self.norm = nn.LayerNorm(d_last)
        self.out = nn.Linear(d_last, n_out)
        init_output_layer(self.out)

    def forward_frames(self, neural: torch.Tensor) -> torch.Tensor:
        """(batch, n_frames, n_channels) -> (batch, n_frames, n_out)."""
        x = self.mapper(neural)                                      # (b, 2, t, r, c)
        r, c = x.shape[-2:]
        x = F.pad(x, (0, (-c) % self.patch, 0, (-r) % self.patch))
        x = rearrange(self.embed(x), "b d t h w -> b t h w d") + self.pos
        b, t, h, w, d = x.shape
        # Depthwise temporal convolution per grid token: the position-in-time signal.
        y = rearrange(x, "b t h w d -> (b h w) d t")
        k = self.time_kernel - 1
        y = F.pad(y, (k, 0) if self.causal else (k // 2, k - k // 2))
        x = x + rearrange(self.time_conv(y), "(b h w) d t -> b t h w d", b=b, h=h, w=w)
        for stage in self.stages:
            x = stage(x)
        x = self.norm(x).mean(dim=(2, 3))                            # (b, t, d)
        return self.out(x)
