"""`LazyNeural`: a neural array left on disk and read by rows, for recordings larger than memory.

Readers hand one out instead of an ndarray when the neural array is larger than
`neurovox.utils.memory.in_memory_limit_bytes()` (or when asked with ``lazy=True``). It acts as a
read-only 2-D array where neurovox needs one: `shape`, `ndim`, `dtype`, `nbytes`, ``x[a:b]`` and
``x[a:b, cols]`` (ndarrays), `iter_rows(n_rows)`; ``np.asarray(x)`` reads all of it (avoid that for
a large one). The fixes a reader decides (NaN/Inf samples zeroed or interpolated, see
`neurovox.io.checks`) are applied to every read, so every consumer sees the same samples as the
in-memory path would, bit for bit.

Sources: an HDF5 dataset (Flinker ``ecog_alldataset``, NWB ``acquisition/iEEG/data``; reopened by
path on every read, so no file handle stays open) or an MNE raw object opened without preloading
(BIDS-iEEG formats).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neurovox.errors import DataError, FormatError
from neurovox.utils.memory import chunk_bytes


def is_lazy(array: Any) -> bool:
    return isinstance(array, LazyNeural)


def processing_dtype(stored: np.dtype) -> np.dtype:
    """The dtype neurovox holds a stored neural dtype in: floats as stored, integers/bools as float32."""
    stored = np.dtype(stored)
    return stored if stored.kind == "f" else np.dtype(np.float32)


# ------------------------------------------------------------------------------------ sources
class Hdf5Source:
    """Rows of a 2-D HDF5 dataset, optionally stored transposed (channels x samples, as MATLAB writes)."""

    def __init__(self, path: str, key: str, *, transposed: bool = False) -> None:
        import h5py

        self.path, self.key, self.transposed = str(path), str(key), bool(transposed)
        with h5py.File(self.path, "r") as f:
            ds = f[self.key]
            stored_shape, self.stored_dtype = tuple(ds.shape), ds.dtype
        if len(stored_shape) != 2:
            raise FormatError(f"{self.key} in {self.path} must be 2-D, got shape {stored_shape}.")
        self.shape = stored_shape[::-1] if self.transposed else stored_shape
        self.dtype = processing_dtype(self.stored_dtype)

    def transpose(self) -> "Hdf5Source":
        return Hdf5Source(self.path, self.key, transposed=not self.transposed)

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop), shape (stop - start, n_channels), `self.dtype`, C-contiguous."""
        import h5py

        from neurovox.io._common import describe_hdf5_error

        try:
            with h5py.File(self.path, "r") as f:
                ds = f[self.key]
                x = ds[:, start:stop].T if self.transposed else ds[start:stop]
        except Exception as exc:  # the file changed or broke after it was opened
            raise FormatError(describe_hdf5_error(exc, self.path, f"HDF5 (reading {self.key} rows {start}-{stop})")) \
                from exc
        return np.ascontiguousarray(x, dtype=self.dtype)

    def describe(self) -> str:
        return f"{self.path}:{self.key}" + (" (transposed)" if self.transposed else "")


class MneSource:
    """Rows of the picked channels of an MNE raw object opened with preload=False (volts, float32)."""

    def __init__(self, raw: Any, picks: list[int], description: str = "") -> None:
        self.raw, self.picks = raw, list(picks)
        self.shape = (int(raw.n_times), len(self.picks))
        self.dtype = np.dtype(np.float32)
        self._description = description or str(raw.filenames[0] if raw.filenames else "MNE raw")

    def read(self, start: int, stop: int) -> np.ndarray:
        x = self.raw.get_data(picks=self.picks, start=start, stop=stop)
        return np.ascontiguousarray(x.T, dtype=np.float32)

    def describe(self) -> str:
        return self._description


# ------------------------------------------------------------------------------------ fixes
@dataclass
class Gaps:
    """Runs of non-finite samples of one channel to fill by linear interpolation between their finite
    neighbours (constant before the first / after the last finite sample), as `np.interp` does.

    Arrays of shape (n_gaps,): `start`, `stop` (samples, stop exclusive), `left_idx`/`right_idx`
    (the finite neighbours, -1 where none), `left_val`/`right_val` (their values).
    """

    start: np.ndarray
    stop: np.ndarray
    left_idx: np.ndarray
    left_val: np.ndarray
    right_idx: np.ndarray
    right_val: np.ndarray

    def fill(self, x: np.ndarray, col: int, row0: int) -> None:
        """Write the interpolated values into column `col` of `x`, whose first row is sample `row0`."""
        row1 = row0 + x.shape[0]
        for g in np.flatnonzero((self.start < row1) & (self.stop > row0)):
            a, b = max(int(self.start[g]), row0), min(int(self.stop[g]), row1)
            t = np.arange(a, b, dtype=np.float64)
            li, ri = int(self.left_idx[g]), int(self.right_idx[g])
            if li >= 0 and ri >= 0:
                values = np.interp(t, [float(li), float(ri)], [self.left_val[g], self.right_val[g]])
            else:
                values = np.full(len(t), self.left_val[g] if li >= 0 else self.right_val[g])
            x[a - row0: b - row0, col] = values


@dataclass
class Fixes:
    """What every read applies: interpolate `gaps` (channel index -> Gaps), then zero what is still non-finite."""

    zero_nonfinite: bool = False
    gaps: dict[int, Gaps] = field(default_factory=dict)

    def apply(self, x: np.ndarray, row0: int) -> np.ndarray:
        for col, gaps in self.gaps.items():
            gaps.fill(x, col, row0)
        if self.zero_nonfinite:
            bad = ~np.isfinite(x)
            if bad.any():
                x[bad] = 0
        return x


# ------------------------------------------------------------------------------------ the array
class LazyNeural:
    """Neural samples on disk, shape (n_samples, n_channels); see the module docstring.

    Parameters
    ----------
    source : Hdf5Source or MneSource
    n_samples : int, optional
        Use only the first `n_samples` rows of the source (trimming to the audio's span).
    fixes : Fixes, optional
        Applied to every read.
    finite : bool
        True once a full scan (`neurovox.io.checks`) proved every sample finite after `fixes`;
        `Recording` validation then skips its own scan.
    """

    def __init__(self, source: Any, n_samples: int | None = None, *, fixes: Fixes | None = None,
                 finite: bool = False) -> None:
        self.source = source
        full = int(source.shape[0])
        self._n = full if n_samples is None else min(int(n_samples), full)
        self.fixes = fixes or Fixes()
        self.finite = bool(finite)

    # ---- array-like attributes
    @property
    def shape(self) -> tuple[int, int]:
        return (self._n, int(self.source.shape[1]))

    @property
    def ndim(self) -> int:
        return 2

    @property
    def dtype(self) -> np.dtype:
        return self.source.dtype

    @property
    def size(self) -> int:
        return self.shape[0] * self.shape[1]

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def __len__(self) -> int:
        return self._n

    def __repr__(self) -> str:
        return (f"<LazyNeural {self.shape[0]} x {self.shape[1]} {self.dtype} ({self.nbytes / 2 ** 20:.1f} MiB) "
                f"from {self.source.describe()}>")

    # ---- derived views (no data read)
    def with_fixes(self, fixes: Fixes, *, finite: bool) -> "LazyNeural":
        return LazyNeural(self.source, self._n, fixes=fixes, finite=finite)

    def head(self, n_samples: int) -> "LazyNeural":
        """The first `n_samples` rows (a view: nothing is read)."""
        return LazyNeural(self.source, min(int(n_samples), self._n), fixes=self.fixes, finite=self.finite)

    @property
    def T(self) -> "LazyNeural":  # noqa: N802 - numpy's name
        """The transposed dataset (only for HDF5 sources, before any trimming or fixes)."""
        if not isinstance(self.source, Hdf5Source) or self._n != self.source.shape[0] or self.fixes.gaps \
                or self.fixes.zero_nonfinite:
            raise TypeError("only an untrimmed, unfixed HDF5-backed LazyNeural can be transposed")
        return LazyNeural(self.source.transpose())

    # ---- reading
    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) (clipped to the array) with the fixes applied, shape (n_rows, n_channels)."""
        start, stop = max(0, int(start)), min(self._n, int(stop))
        if stop <= start:
            return np.zeros((0, self.shape[1]), dtype=self.dtype)
        return self.fixes.apply(self.source.read(start, stop), start)

    def iter_rows(self, n_rows: int, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, rows) for consecutive blocks of at most `n_rows` rows of [start, stop)."""
        stop = self._n if stop is None else min(int(stop), self._n)
        n_rows = max(1, int(n_rows))
        for s in range(int(start), stop, n_rows):
            yield s, self.read(s, min(s + n_rows, stop))

    def rows_for_bytes(self, n_bytes: float, bytes_per_value: int = 8) -> int:
        """Rows whose values, at `bytes_per_value` each, take about `n_bytes` (at least 1)."""
        return max(1, int(n_bytes // (max(1, self.shape[1]) * bytes_per_value)))

    def __getitem__(self, key: Any) -> np.ndarray:
        cols: Any = slice(None)
        if isinstance(key, tuple):
            if len(key) != 2:
                raise IndexError(f"LazyNeural takes [rows] or [rows, cols], got {len(key)} indices")
            key, cols = key
        if isinstance(key, (int, np.integer)):
            i = int(key) + (self._n if key < 0 else 0)
            if not 0 <= i < self._n:
                raise IndexError(f"row {key} out of range for {self._n} rows")
            return self.read(i, i + 1)[0][cols]
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise IndexError("LazyNeural rows are read by contiguous slices (x[a:b]); got " + repr(key))
        start, stop, _ = key.indices(self._n)
        if isinstance(cols, slice) and cols == slice(None):
            return self.read(start, max(start, stop))
        # a few columns of many rows: read by blocks of rows so the full rows are never all in memory
        out = self.read(start, start)[:, cols]
        out = np.empty((max(0, stop - start), out.shape[1]), dtype=self.dtype)
        for s, x in self.iter_rows(self.rows_for_bytes(chunk_bytes(), self.dtype.itemsize), start, max(start, stop)):
            out[s - start: s - start + len(x)] = x[:, cols]
        return out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        x = self.read(0, self._n)
        return x if dtype is None else x.astype(dtype, copy=False)

    def check_finite(self, name: str, *, where: str = "", hint: str = "") -> None:
        """Raise DataError naming the first non-finite sample and the channels (one pass over the rows, fixes
        applied), as `neurovox.utils.check.check_finite` does for an ndarray; remember success."""
        if self.finite:
            return
        n_bad, first, cols = 0, None, set()
        for s, x in self.iter_rows(self.rows_for_bytes(chunk_bytes())):
            bad = ~np.isfinite(x)
            if bad.any():
                n_bad += int(bad.sum())
                cols.update(np.flatnonzero(bad.any(axis=0)).tolist())
                if first is None:
                    first = s + int(np.flatnonzero(bad.any(axis=1))[0])
        if n_bad:
            cols_txt = sorted(cols)
            loc = f" in {where}" if where else ""
            raise DataError(f"{name}{loc} contains {n_bad} NaN/Inf values (first at sample {first}, channels "
                            f"{cols_txt[:10]}{'...' if len(cols_txt) > 10 else ''}).{(' ' + hint) if hint else ''}")
        self.finite = True
