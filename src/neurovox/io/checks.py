"""Channel checks shared by every reader: non-finite samples and flat (dead) channels.

A `Recording` refuses NaN/Inf samples, so readers fix them *before* building one, according to
the `nonfinite` option of `neurovox.io.read_recording`:

- ``"raise"`` (default): raise `DataError` naming the channels (via Recording validation);
- ``"mark_bad"``: zero the non-finite samples and mark their channels bad, with a notice;
- ``"interpolate"``: linearly interpolate short gaps in time (<= `max_gap_fraction` of the
  channel), mark the rest bad and zero them, with a notice.

Flat channels (every sample equal, e.g. all zero: a disconnected contact) are always marked bad
with a notice; nothing is ever changed silently.

A `LazyNeural` (a recording larger than memory, left on disk) gets the same checks, decisions and
notices from one pass over its rows (`scan_channels`); the fixes are recorded in the lazy array and
applied to every later read, giving the same samples as the in-memory functions, bit for bit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from neurovox.errors import DataError
from neurovox.io.lazy import Fixes, Gaps, LazyNeural, is_lazy
from neurovox.utils.check import check_option
from neurovox.utils.memory import chunk_bytes

NONFINITE_OPTIONS = ("raise", "mark_bad", "interpolate")
MAX_GAP_FRACTION = 0.05   # channels with more non-finite samples than this are zeroed and marked bad, not interpolated


def _names(channels: pd.DataFrame, idx: np.ndarray, limit: int = 8) -> str:
    names = channels["name"].to_numpy()[idx].tolist()
    return ", ".join(names[:limit]) + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


def _mark_bad_notice(n_bad: int, channels: pd.DataFrame, bad_ch: np.ndarray, where: str) -> str:
    return (f"{n_bad} NaN/Inf samples in {where} set to 0 and {len(bad_ch)} channels marked bad: "
            f"{_names(channels, bad_ch)}.")


def _interp_notice(n_interp: int, channels: pd.DataFrame, interp: np.ndarray, where: str) -> str:
    return (f"{n_interp} NaN/Inf samples in {where} interpolated linearly in "
            f"{len(interp)} channels: {_names(channels, interp)}.")


def _too_many_notice(channels: pd.DataFrame, rest: np.ndarray, max_gap_fraction: float, where: str) -> str:
    return (f"{len(rest)} channels in {where} have more than {max_gap_fraction:.0%} NaN/Inf samples: "
            f"zeroed there and marked bad: {_names(channels, rest)}.")


def _flat_notice(channels: pd.DataFrame, new: np.ndarray, all_zero: bool, where: str) -> str:
    kind = "all zero" if all_zero else "flat (constant)"
    return f"{len(new)} channels in {where} are {kind} and were marked bad: {_names(channels, new)}."


def _nonfinite_error(n_bad: int, channels: pd.DataFrame, bad_ch: np.ndarray, first: int, where: str) -> DataError:
    return DataError(
        f"neural data in {where} contains {n_bad} NaN/Inf samples in {len(bad_ch)} channels "
        f"({_names(channels, bad_ch)}; first at sample {first}). Fix the file, or read it with "
        "nonfinite='mark_bad' (zero them and mark the channels bad) or nonfinite='interpolate' "
        "(CLI: --nonfinite mark_bad)."
    )


def _mark_bad(channels: pd.DataFrame, idx: np.ndarray) -> pd.DataFrame:
    channels = channels.copy()
    channels.loc[channels.index[idx], "bad"] = True
    return channels


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
    channels = _mark_bad(channels, bad_ch)
    return neural, channels, [_mark_bad_notice(int((~finite).sum()), channels, bad_ch, where)]


def interpolate_nonfinite(neural: np.ndarray, channels: pd.DataFrame, *, max_gap_fraction: float = MAX_GAP_FRACTION,
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
        notices.append(_interp_notice(int((~finite[:, interp]).sum()), channels, np.asarray(interp), where))
    rest = np.asarray([c for c in affected if frac[c] > max_gap_fraction], dtype=int)
    if len(rest):
        sub = np.zeros_like(finite)
        sub[:, rest] = ~finite[:, rest]
        neural[sub] = 0
        channels = _mark_bad(channels, rest)
        notices.append(_too_many_notice(channels, rest, max_gap_fraction, where))
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
    channels = _mark_bad(channels, new)
    zero = [c for c in new if neural[0, c] == 0]
    return channels, [_flat_notice(channels, new, len(zero) == len(new), where)]


def check_channels(neural: np.ndarray, channels: pd.DataFrame, *, nonfinite: str = "raise",
                   where: str = "recording") -> tuple[np.ndarray, pd.DataFrame, list[str]]:
    """Apply the `nonfinite` policy, then mark flat channels bad. Used by every reader.

    With ``nonfinite="raise"`` non-finite data raise `DataError` naming the channels. A `LazyNeural` is
    checked in one pass over its rows and returned with the fixes attached (`check_lazy_channels`).
    """
    check_option("nonfinite", nonfinite, NONFINITE_OPTIONS, error=DataError)
    if is_lazy(neural):
        return check_lazy_channels(neural, channels, nonfinite=nonfinite, where=where)
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
            raise _nonfinite_error(int((~finite).sum()), channels, bad_ch, first, where)
    channels, flat_notices = mark_flat_bad(neural, channels, where=where)
    return neural, channels, notices + flat_notices


# ------------------------------------------------------------------------------------ lazy (on-disk) arrays
class ChannelScan:
    """Per-channel statistics of a LazyNeural from one pass over its rows (`scan_channels`).

    n_nonfinite : (n_channels,) int64; first_bad_sample : int (-1 if none);
    finite_min, finite_max : (n_channels,) float64 over the finite samples (+inf / -inf if none);
    gaps : channel -> Gaps, the runs of non-finite samples of the channels with at most
    `max_gap_fraction` of them (only when collected).
    """

    def __init__(self, n_channels: int) -> None:
        self.n_nonfinite = np.zeros(n_channels, dtype=np.int64)
        self.first_bad_sample = -1
        self.finite_min = np.full(n_channels, np.inf)
        self.finite_max = np.full(n_channels, -np.inf)
        self.gaps: dict[int, Gaps] = {}


def scan_channels(neural: LazyNeural, *, n_rows: int | None = None,
                  gap_fraction: float | None = None) -> ChannelScan:
    """One pass over `neural` (blocks of `n_rows` rows, default from `neurovox.utils.memory.chunk_bytes`).

    With `gap_fraction`, also collect the runs of non-finite samples (and their finite neighbours) of
    every channel with at most that fraction of them, for `Gaps` interpolation.
    """
    n, n_ch = neural.shape
    scan = ChannelScan(n_ch)
    n_rows = n_rows or neural.rows_for_bytes(chunk_bytes())
    max_count = np.inf if gap_fraction is None else gap_fraction * n + 1
    runs: dict[int, list[tuple[int, int, int, float, int, float]]] = {}
    open_runs: dict[int, tuple[int, int, float]] = {}   # runs reaching the end of the previous block
    too_many: set[int] = set()
    prev_last: np.ndarray | None = None
    for a, x in neural.iter_rows(n_rows):
        bad = ~np.isfinite(x)
        bad_cols = bad.any(axis=0)
        if bad_cols.any():
            scan.n_nonfinite += bad.sum(axis=0)
            if scan.first_bad_sample < 0:
                scan.first_bad_sample = a + int(np.flatnonzero(bad.any(axis=1))[0])
            masked = np.where(bad, np.inf, x)
            np.minimum(scan.finite_min, masked.min(axis=0), out=scan.finite_min)
            masked[bad] = -np.inf
            np.maximum(scan.finite_max, masked.max(axis=0), out=scan.finite_max)
            del masked
        else:
            np.minimum(scan.finite_min, x.min(axis=0), out=scan.finite_min)
            np.maximum(scan.finite_max, x.max(axis=0), out=scan.finite_max)
        if gap_fraction is not None:
            for ch in sorted(set(np.flatnonzero(bad_cols).tolist()) | set(open_runs)):
                if ch in too_many:
                    continue
                if scan.n_nonfinite[ch] > max_count:   # will not be interpolated: stop collecting
                    too_many.add(ch)
                    runs.pop(ch, None)
                    open_runs.pop(ch, None)
                    continue
                _collect_runs(ch, a, x, bad[:, ch], prev_last, runs, open_runs)
        prev_last = x[-1].copy()
    for ch, (start, li, lv) in open_runs.items():
        runs.setdefault(ch, []).append((start, n, li, lv, -1, np.nan))
    for ch, r in runs.items():
        start, stop, left_idx, left_val, right_idx, right_val = (np.asarray(col) for col in zip(*r))
        scan.gaps[ch] = Gaps(start.astype(np.int64), stop.astype(np.int64), left_idx.astype(np.int64),
                             left_val.astype(np.float64), right_idx.astype(np.int64), right_val.astype(np.float64))
    return scan


def _collect_runs(ch: int, a: int, x: np.ndarray, col_bad: np.ndarray, prev_last: np.ndarray | None,
                  runs: dict, open_runs: dict) -> None:
    """Append the runs of non-finite samples of channel `ch` in block `x` (first row `a`) to `runs`."""
    pending = open_runs.pop(ch, None)
    if pending is not None and not col_bad[0]:        # the open run ended at the previous block's end
        runs.setdefault(ch, []).append((pending[0], a, pending[1], pending[2], a, float(x[0, ch])))
        pending = None
    if not col_bad.any():
        return
    edges = np.diff(col_bad.astype(np.int8), prepend=np.int8(0), append=np.int8(0))
    for s, e in zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()):
        if s == 0 and pending is not None:            # continues the open run
            start, li, lv = pending
        elif s > 0:
            start, li, lv = a + s, a + s - 1, float(x[s - 1, ch])
        elif prev_last is not None:
            start, li, lv = a, a - 1, float(prev_last[ch])
        else:
            start, li, lv = a, -1, np.nan
        if e < len(col_bad):
            runs.setdefault(ch, []).append((start, a + e, li, lv, a + e, float(x[e, ch])))
        else:
            open_runs[ch] = (start, li, lv)


def check_lazy_channels(neural: LazyNeural, channels: pd.DataFrame, *, nonfinite: str = "raise",
                        where: str = "recording") -> tuple[LazyNeural, pd.DataFrame, list[str]]:
    """`check_channels` for an on-disk array: the same errors, notices and (on every read) the same samples."""
    check_option("nonfinite", nonfinite, NONFINITE_OPTIONS, error=DataError)
    n = neural.shape[0]
    scan = scan_channels(neural, gap_fraction=MAX_GAP_FRACTION if nonfinite == "interpolate" else None)
    affected = np.flatnonzero(scan.n_nonfinite > 0)
    fixes = Fixes()
    notices: list[str] = []
    if len(affected) and nonfinite == "raise":
        raise _nonfinite_error(int(scan.n_nonfinite.sum()), channels, affected, scan.first_bad_sample, where)
    if len(affected) and nonfinite == "mark_bad":
        fixes.zero_nonfinite = True
        channels = _mark_bad(channels, affected)
        notices.append(_mark_bad_notice(int(scan.n_nonfinite.sum()), channels, affected, where))
    elif len(affected):
        frac = 1.0 - (n - scan.n_nonfinite) / n            # as interpolate_nonfinite computes it
        interp = np.asarray([c for c in affected if frac[c] <= MAX_GAP_FRACTION], dtype=int)
        rest = np.asarray([c for c in affected if frac[c] > MAX_GAP_FRACTION], dtype=int)
        fixes.gaps = {int(c): scan.gaps[int(c)] for c in interp}
        fixes.zero_nonfinite = bool(len(rest))
        if len(interp):
            notices.append(_interp_notice(int(scan.n_nonfinite[interp].sum()), channels, interp, where))
        if len(rest):
            channels = _mark_bad(channels, rest)
            notices.append(_too_many_notice(channels, rest, MAX_GAP_FRACTION, where))
    neural = neural.with_fixes(fixes, finite=True)
    # flat after the fixes: interpolated values lie between finite neighbours, so min/max are the finite ones
    bad_now = channels["bad"].to_numpy(bool)
    new = np.flatnonzero((scan.finite_min == scan.finite_max) & ~bad_now) if n else np.zeros(0, int)
    if len(new):
        channels = _mark_bad(channels, new)
        notices.append(_flat_notice(channels, new, bool((scan.finite_min[new] == 0).all()), where))
    return neural, channels, notices


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


def check_contents(neural, channels: pd.DataFrame, trials: pd.DataFrame, *, nonfinite: str = "raise",
                   where: str = "recording"):
    """The checks every reader ends with: channel fixes (`check_channels`), grid positions, trial notices.

    Returns (neural, channels, notes); raises DataError where the contents cannot be used.
    """
    neural, channels, notes = check_channels(neural, channels, nonfinite=nonfinite, where=where)
    check_grid_positions(channels, where=where)
    return neural, channels, notes + trial_notices(trials, where=where)
