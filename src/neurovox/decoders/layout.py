"""Electrode layouts: from a channel table to a spatial grid for the grid models (ResNet3D, Swin3D).

A `GridLayout` places each channel at one cell of an (n_rows x n_cols) grid. It is derived from the
channel table's integer `row`/`col` columns when they are set, otherwise from the `x`/`y` contact
positions (snapped to the distinct coordinate values along each axis, so a regular grid with pitch p
becomes consecutive rows and columns, and an interleaved hybrid grid whose micro contacts sit between
the macro contacts becomes a 15 x 15 grid). Cells without a contact and cells of bad contacts are
masked: `to_grid` writes zeros there and adds a mask plane (1 = good contact), so the network can
tell "no signal" from "signal at its mean".

The number of channels is never assumed to be a square: 8 x 8 (64), 15 x 15 with 128 or 225
channels, 4 x 16 and any other rectangle work the same way. Channels without any grid coordinates
(sEEG depth electrodes) cannot be laid out; `layout_from_channels` raises a DataError that points to
the layout-free model (`--model lstm`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from neurovox.errors import DataError

LAYOUT_FREE_HINT = "use --model lstm (the layout-free recurrent decoder), which needs no grid"


@dataclass(frozen=True)
class GridLayout:
    """Where each channel sits on a rectangular grid.

    Parameters
    ----------
    n_rows, n_cols : int
        Grid size.
    rows, cols : tuple of int, length n_channels
        Grid cell of each channel (0-based).
    good : tuple of bool, length n_channels
        False for bad contacts (masked like empty cells).
    """

    n_rows: int
    n_cols: int
    rows: tuple[int, ...]
    cols: tuple[int, ...]
    good: tuple[bool, ...]

    def __post_init__(self) -> None:
        n = len(self.rows)
        if len(self.cols) != n or len(self.good) != n:
            raise DataError(f"GridLayout: rows ({n}), cols ({len(self.cols)}) and good ({len(self.good)}) "
                            "must have one entry per channel.")
        cells = list(zip(self.rows, self.cols))
        if any(not (0 <= r < self.n_rows and 0 <= c < self.n_cols) for r, c in cells):
            raise DataError(f"GridLayout: a channel lies outside the {self.n_rows} x {self.n_cols} grid.")
        if len(set(cells)) != n:
            dup = pd.Series(cells).duplicated(keep=False)
            raise DataError(f"GridLayout: channels {np.flatnonzero(dup.to_numpy())[:10].tolist()} share a grid cell; "
                            "fix the row/col columns of the channel table.")

    @property
    def n_channels(self) -> int:
        return len(self.rows)

    @property
    def mask(self) -> np.ndarray:
        """(n_rows, n_cols) float32, 1 where a good contact sits."""
        m = np.zeros((self.n_rows, self.n_cols), dtype=np.float32)
        good = np.asarray(self.good, dtype=bool)
        m[np.asarray(self.rows)[good], np.asarray(self.cols)[good]] = 1.0
        return m

    def to_dict(self) -> dict[str, Any]:
        return {"n_rows": self.n_rows, "n_cols": self.n_cols, "rows": list(self.rows),
                "cols": list(self.cols), "good": [bool(g) for g in self.good]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "GridLayout":
        return cls(int(d["n_rows"]), int(d["n_cols"]), tuple(int(r) for r in d["rows"]),
                   tuple(int(c) for c in d["cols"]), tuple(bool(g) for g in d["good"]))

    def __repr__(self) -> str:
        return (f"<GridLayout {self.n_rows} x {self.n_cols}, {self.n_channels} channels, "
                f"{int(self.mask.sum())} good cells>")


def rectangular_layout(n_rows: int, n_cols: int, bad: Any = None) -> GridLayout:
    """Row-major layout of n_rows * n_cols channels (channel k at row k // n_cols, col k % n_cols)."""
    n = n_rows * n_cols
    idx = np.arange(n)
    good = np.ones(n, bool) if bad is None else ~np.asarray(bad, dtype=bool)
    return GridLayout(n_rows, n_cols, tuple((idx // n_cols).tolist()), tuple((idx % n_cols).tolist()),
                      tuple(good.tolist()))


def _snap(values: np.ndarray) -> np.ndarray:
    """Index of each value among the distinct values (merged within 1/4 of the smallest spacing)."""
    order = np.sort(np.unique(values))
    if len(order) == 1:
        return np.zeros(len(values), dtype=int)
    gaps = np.diff(order)
    spacing = np.median(gaps[gaps > 0])
    tol = 0.25 * spacing
    levels = [order[0]]
    for v in order[1:]:
        if v - levels[-1] > tol:
            levels.append(v)
    levels = np.asarray(levels)
    # Map onto a regular lattice of the smallest spacing so empty rows/cols stay empty.
    step = np.min(np.diff(levels)) if len(levels) > 1 else 1.0
    return np.rint((values - levels[0]) / step).astype(int)


def layout_from_channels(channels: pd.DataFrame, *, model: str = "grid") -> GridLayout:
    """Derive the grid layout of a channel table.

    Parameters
    ----------
    channels : DataFrame
        The Recording's channel table (columns name, type, bad, row, col, x, y, ...), one row per channel.
    model : str
        Name of the model that needs the grid (for the error message).

    Returns
    -------
    layout : GridLayout

    Raises
    ------
    DataError
        If the channels are sEEG or have neither row/col nor x/y positions.
    """
    n = len(channels)
    if n == 0:
        raise DataError("The channel table is empty; a grid layout needs at least one channel.")
    types = channels["type"].astype(str).to_numpy() if "type" in channels else np.array(["ecog"] * n)
    bad = channels["bad"].astype(bool).to_numpy() if "bad" in channels else np.zeros(n, bool)
    if (types == "seeg").any():
        raise DataError(f"The {model} model needs a 2-D electrode grid, but {int((types == 'seeg').sum())} of "
                        f"{n} channels are sEEG depth contacts with no grid position; {LAYOUT_FREE_HINT}.")
    row = channels["row"].to_numpy() if "row" in channels else np.full(n, -1)
    col = channels["col"].to_numpy() if "col" in channels else np.full(n, -1)
    row = np.where(pd.isna(row), -1, row).astype(int)
    col = np.where(pd.isna(col), -1, col).astype(int)
    if (row >= 0).all() and (col >= 0).all():
        r0, c0 = row.min(), col.min()
        rows, cols = row - r0, col - c0
    else:
        xy = np.stack([channels[k].to_numpy(dtype=float) if k in channels else np.full(n, np.nan)
                       for k in ("x", "y")], axis=1)
        if not np.isfinite(xy).all():
            missing = np.flatnonzero(~np.isfinite(xy).all(1) & ((row < 0) | (col < 0)))
            names = channels["name"].astype(str).to_numpy()[missing[:5]].tolist() if "name" in channels else missing[:5]
            raise DataError(f"The {model} model needs a grid position for every channel, but {len(missing)} of {n} "
                            f"channels (e.g. {names}) have neither row/col nor x/y coordinates. Set the row/col "
                            f"columns of the channel table, or {LAYOUT_FREE_HINT}.")
        # y grows upwards in electrode coordinates; rows grow downwards.
        rows = _snap(-xy[:, 1])
        cols = _snap(xy[:, 0])
    n_rows, n_cols = int(rows.max()) + 1, int(cols.max()) + 1
    if n_rows * n_cols > 64 * n:
        raise DataError(f"The channel positions give a {n_rows} x {n_cols} grid for only {n} channels; they do not "
                        f"look like a regular grid. Set the row/col columns of the channel table, or {LAYOUT_FREE_HINT}.")
    return GridLayout(n_rows, n_cols, tuple(rows.tolist()), tuple(cols.tolist()), tuple((~bad).tolist()))


class GridMapper(torch.nn.Module):
    """Scatter (batch, n_frames, n_channels) into (batch, 2, n_frames, n_rows, n_cols): values + mask plane.

    Bad contacts and empty cells are zero in the value plane and 0 in the mask plane. Purely per frame,
    so it never mixes time steps.
    """

    def __init__(self, layout: GridLayout):
        super().__init__()
        self.layout = layout
        flat = torch.as_tensor(np.asarray(layout.rows) * layout.n_cols + np.asarray(layout.cols), dtype=torch.long)
        good = torch.as_tensor(np.asarray(layout.good, dtype=np.float32))
        self.register_buffer("flat_index", flat, persistent=False)
        self.register_buffer("good", good, persistent=False)
        self.register_buffer("mask", torch.as_tensor(layout.mask), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        if c != self.layout.n_channels:
            raise DataError(f"The neural input has {c} channels but the decoder's layout has "
                            f"{self.layout.n_channels}; decode with data from the recording the model was trained on.")
        cells = self.layout.n_rows * self.layout.n_cols
        vals = x * self.good
        grid = x.new_zeros(b, t, cells).index_copy(2, self.flat_index, vals)
        grid = grid.reshape(b, 1, t, self.layout.n_rows, self.layout.n_cols)
        mask = self.mask.to(x.dtype).expand(b, 1, t, -1, -1)
        return torch.cat([grid, mask], dim=1)
