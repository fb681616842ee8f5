"""Channel checks shared by every reader: non-finite samples and flat (dead) channels.

A `Recording` refuses NaN/Inf samples, so readers fix them *before* building one, according to
the `nonfinite` option of `neurovox.io.read_recording`:

- ``"raise"`` (default): raise `DataError` naming the channels (via Recording validation);
- ``"mark_bad"``: zero the non-finite samples and mark their channels bad, with a notice;
- ``"interpolate"``: linearly interpolate short gaps in time (<= `max_gap_fraction` of the
  channel), mark the rest bad and zero them, with a notice.

Flat channels (every sample equal, e.g. all zero: a disconnected contact) are always marked bad
with a notice; nothing is ever changed silently.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from neurovox.errors import DataError
from neurovox.utils.check import check_option

NONFINITE_OPTIONS = ("raise", "mark_bad", "interpolate")


def _names(channels: pd.DataFrame, idx: np.ndarray, limit: int = 8) -> str:
    names = channels["name"].to_numpy()[idx].tolist()
    return ", ".join(names[:limit]) + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


def mark_nonfinite_bad(neural: np.ndarray, channels: pd.DataFrame, *,
                       where: str = "recording") -> tuple[np.ndarray, pd.DataFrame, list[str]]:
    """Zero NaN/Inf samples and mark their channels bad.

    Parameters
    ----------
    neural : ndarray, shape (n_samples, n_channels)
    channels : DataFrame
        Channel table (see `make_channel_table`), one row per column of `neural`.
    where : str
        Where the data came from, for the notice.

    Returns
    -------
    neural : ndarray, shape (n_samples, n_channels)
        A copy with non-finite samples set to 0 (the input itself if all samples are finite).
    channels : DataFrame
        A copy with `bad` set for the affected channels.
    notices : list of str
        One notice per fix (empty if nothing was changed).
    """
    finite = np.isfinite(neural)
    if finite.all():
        return neural, channels, []
    bad_ch = np.flatnonzero(~finite.all(axis=0))
    neural = np.where(finite, neural, 0).astype(neural.dtype, copy=False)
    channels = channels.copy()
    channels.loc[channels.index[bad_ch], "bad"] = True
    n_bad = int((~finite).sum())
    return neural, channels, [
        f"{n_bad} NaN/Inf samples in {where} set to 0 and {len(bad_ch)} channels marked bad: "
        f"{_names(channels, bad_ch)}."
    ]


def interpolate_nonfinite(neural: np.ndarray, channels: pd.DataFrame, *, max_gap_fraction: float = 0.05,
                          where: str = "recording") -> tuple[np.ndarray, pd.DataFrame, list[str]]:
    """Linearly interpolate NaN/Inf samples in time; channels with too many are marked bad instead.

    Parameters
    ----------
    neural : ndarray, shape (n_samples, n_channels)
    channels : DataFrame
    max_gap_fraction : float
        A channel with more than this fraction of non-finite samples is zeroed there and marked
        bad rather than interpolated.
    where : str

    Returns
    -------
    neural, channels, notices
        As in `mark_nonfinite_bad`.
    """
    finite = np.isfinite(neural)
    if finite.all():
        return neural, channels, []
    neural = neural.copy()
    frac = 1.0 - finite.mean(axis=0)
    affected = np.flatnonzero(frac > 0)
    interp = [c for c in affected if frac[c] <= max_gap_fraction]
    t = np.arange(neural.shape[0])
    for c in interp:
        ok = finite[:, c]
        neural[~ok, c] = np.interp(t[~ok], t[ok], neural[ok, c])
    notices = []
    if interp:
        notices.append(f"{int((~finite[:, interp]).sum())} NaN/Inf samples in {where} interpolated linearly in "
                       f"{len(interp)} channels: {_names(channels, np.asarray(interp))}.")
    rest = np.asarray([c for c in affected if frac[c] > max_gap_fraction], dtype=int)
    if len(rest):
        sub = np.zeros_like(finite)
        sub[:, rest] = ~finite[:, rest]
        neural[sub] = 0
        channels = channels.copy()
        channels.loc[channels.index[rest], "bad"] = True
        notices.append(f"{len(rest)} channels in {where} have more than {max_gap_fraction:.0%} NaN/Inf samples: "
                       f"zeroed there and marked bad: {_names(channels, rest)}.")
    return neural, channels, notices


def mark_flat_bad(neural: np.ndarray, channels: pd.DataFrame, *,
                  where: str = "recording") -> tuple[pd.DataFrame, list[str]]:
    """Mark channels whose samples are all equal (flat or all zero) bad, with a notice.

    Returns
    -------
    channels : DataFrame
        A copy with the newly found flat channels marked bad (the input if none).
    notices : list of str
    """
    if neural.shape[0] == 0:
        return channels, []
    flat = np.flatnonzero(np.ptp(neural, axis=0) == 0)
    new = np.asarray([c for c in flat if not bool(channels["bad"].iloc[c])], dtype=int)
    if len(new) == 0:
        return channels, []
    channels = channels.copy()
    channels.loc[channels.index[new], "bad"] = True
    zero = [c for c in new if neural[0, c] == 0]
    kind = "all zero" if len(zero) == len(new) else "flat (constant)"
    return channels, [f"{len(new)} channels in {where} are {kind} and were marked bad: {_names(channels, new)}."]


def check_channels(neural: np.ndarray, channels: pd.DataFrame, *, nonfinite: str = "raise",
                   where: str = "recording") -> tuple[np.ndarray, pd.DataFrame, list[str]]:
    """Apply the `nonfinite` policy, then mark flat channels bad. Used by every reader.

    With ``nonfinite="raise"`` non-finite data raise `DataError` naming the channels.
    """
    check_option("nonfinite", nonfinite, NONFINITE_OPTIONS, error=DataError)
    notices: list[str] = []
    if nonfinite == "mark_bad":
        neural, channels, notices = mark_nonfinite_bad(neural, channels, where=where)
    elif nonfinite == "interpolate":
        neural, channels, notices = interpolate_nonfinite(neural, channels, where=where)
    else:
        finite = np.isfinite(neural)
        if not finite.all():
            bad_ch = np.flatnonzero(~finite.all(axis=0))
            first = int(np.argwhere(~finite)[0][0])
            raise DataError(
                f"neural data in {where} contains {int((~finite).sum())} NaN/Inf samples in {len(bad_ch)} channels "
                f"({_names(channels, bad_ch)}; first at sample {first}). Fix the file, or read it with "
                "nonfinite='mark_bad' (zero them and mark the channels bad) or nonfinite='interpolate' "
                "(CLI: --nonfinite mark_bad)."
            )
    channels, flat_notices = mark_flat_bad(neural, channels, where=where)
    return neural, channels, notices + flat_notices


def check_grid_positions(channels: pd.DataFrame, *, where: str = "recording") -> None:
    """Raise DataError if two channels of one group (grid) share a (row, col), or a position is half set."""
    rows, cols = channels["row"].to_numpy(int), channels["col"].to_numpy(int)
    half = np.flatnonzero((rows >= 0) != (cols >= 0))
    if len(half):
        raise DataError(f"channel {channels['name'].iloc[half[0]]!r} in {where} has grid row {rows[half[0]]} but col "
                        f"{cols[half[0]]}: set both (>= 0) or neither (-1).")
    placed = channels[(rows >= 0) & (cols >= 0)]
    dup = placed[placed.duplicated(["group", "row", "col"], keep=False)]
    if len(dup):
        first = dup.iloc[0]
        same = dup[(dup["group"] == first["group"]) & (dup["row"] == first["row"]) &
                   (dup["col"] == first["col"])]["name"].tolist()
        raise DataError(f"channels {same} in {where} share grid position (row {first['row']}, col {first['col']}); "
                        "each contact needs its own position. Fix the channel_row/channel_col entries.")


def trial_notices(trials: pd.DataFrame, *, where: str = "recording") -> list[str]:
    """Notices about trials that are legal but worth knowing: overlaps (sorted by onset)."""
    on = trials["onset_s"].to_numpy(float)
    off = trials["offset_s"].to_numpy(float)
    order = np.argsort(on, kind="stable")
    overlap = np.flatnonzero(on[order][1:] < off[order][:-1])
    if len(overlap) == 0:
        return []
    i, j = order[overlap[0]], order[overlap[0] + 1]
    return [f"{len(overlap)} trials in {where} overlap the previous one (first: trial {j} starts at {on[j]:.3f} s "
            f"before trial {i} ends at {off[i]:.3f} s); windows around them share frames."]
