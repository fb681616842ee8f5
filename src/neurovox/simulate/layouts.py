"""Electrode layouts of simulated participants: channel tables with grid coordinates and 3-D positions.

- `grid8x8`: 64 ECoG contacts, 8 x 8, 10 mm spacing (Flinker low density).
- `hybrid225`: 15 x 15 positions at 5 mm pitch in row-major order; the 64 macro contacts sit on the
  even (row, col) positions (10 mm apart) and 161 micro contacts on all the positions between them.
- `hybrid128`: the same grid with the 64 macro contacts (row-major) followed by 64 micro contacts:
  the 64 inter-macro midpoints (row + col odd, i.e. halfway between two neighbouring macro contacts)
  nearest the grid centre (7, 7), ties broken by row then column; other positions are empty.
Grid channel tables are exactly `neurovox.io.flinker_channel_table(n)` (the Flinker reader's
default for a file without channel keys: names G01.., M/m<row><col>, group grid/macro/micro).
- `seeg`: `n_shafts` depth shafts of 8-16 contacts 3.5 mm apart, straight lines entering from the
  lateral surface towards the insula/temporal region; named A1, A2, ... (group = shaft letter).

Positions are in metres (x lateral-medial, y posterior-anterior, z inferior-superior for sEEG; the
grid lies in the z = 0 plane with x along columns and y along rows).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from neurovox.io.flinker import flinker_channel_table
from neurovox.io.recording import make_channel_table
from neurovox.utils.check import check_option

from neurovox.simulate.config import LAYOUTS

GRID_SPACING_M = 0.010
HYBRID_PITCH_M = 0.005
SEEG_PITCH_M = 0.0035


@dataclass
class Layout:
    """Channel table plus what the encoding model needs from it."""

    name: str
    channels: pd.DataFrame        # make_channel_table columns
    xyz_m: np.ndarray             # (n_channels, 3) positions in metres
    grid_density: str             # RecordingMeta.grid_density
    is_micro: np.ndarray          # (n_channels,) bool, micro contacts of hybrid grids

    @property
    def n_channels(self) -> int:
        return len(self.channels)


def _grid(name: str, n_channels: int, pitch_m: float) -> Layout:
    """The Flinker reader's default table for this channel count, plus positions in metres."""
    table, density, _ = flinker_channel_table(n_channels)
    rows, cols = table["row"].to_numpy(float), table["col"].to_numpy(float)
    xyz = np.stack([cols * pitch_m, rows * pitch_m, np.zeros(len(rows))], axis=1)
    table[["x", "y", "z"]] = xyz
    return Layout(name, table, xyz, density, (table["group"] == "micro").to_numpy())


def make_layout(name: str, rng: np.random.Generator, n_seeg_shafts: int = 6) -> Layout:
    """Build one of LAYOUTS. `rng` is used for the sEEG trajectories only."""
    check_option("layout", name, LAYOUTS)
    if name == "grid8x8":
        return _grid(name, 64, GRID_SPACING_M)
    if name == "hybrid225":
        return _grid(name, 225, HYBRID_PITCH_M)
    if name == "hybrid128":
        return _grid(name, 128, HYBRID_PITCH_M)
    return _seeg(rng, n_seeg_shafts)


def _seeg(rng: np.random.Generator, n_shafts: int) -> Layout:
    names, groups, xyz = [], [], []
    for s in range(n_shafts):
        letter = chr(ord("A") + s)
        n_contacts = int(rng.integers(8, 17))
        # entry on the lateral surface (x ~ 65 mm), spread over a 6 x 5 cm patch around the sylvian region
        entry = np.array([0.065, rng.uniform(-0.03, 0.03), rng.uniform(-0.025, 0.025)])
        direction = np.array([-1.0, rng.normal(0, 0.25), rng.normal(0, 0.25)])
        direction /= np.linalg.norm(direction)
        for k in range(n_contacts):   # contact 1 is the deepest, as in clinical naming
            depth = (n_contacts - 1 - k) * SEEG_PITCH_M + 0.005
            xyz.append(entry + direction * depth)
            names.append(f"{letter}{k + 1}")
            groups.append(letter)
    xyz = np.asarray(xyz)
    table = make_channel_table(names, "seeg", xyz=xyz, group=groups)
    return Layout("seeg", table, xyz, "seeg", np.zeros(len(names), bool))
