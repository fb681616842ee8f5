"""Small helpers shared by the readers: file sniffing and string decoding."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from neurovox.errors import FormatError

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
MAT5_PREFIX = b"MATLAB 5.0 MAT-file"


def file_kind(path: str | os.PathLike) -> str:
    """Sniff a file: "hdf5" (plain HDF5 or a MAT v7.3 file), "mat5", "empty" or "other".

    HDF5 puts its signature at byte 0 or, after a user block (MAT v7.3 uses 512 bytes), at
    512, 1024, 2048, ...
    """
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        return "empty"
    with open(path, "rb") as fh:
        head = fh.read(128)
        if head.startswith(HDF5_SIGNATURE):
            return "hdf5"
        offset = 512
        while offset + 8 <= size:
            fh.seek(offset)
            if fh.read(8) == HDF5_SIGNATURE:
                return "hdf5"
            offset *= 2
    if head.startswith(MAT5_PREFIX):
        return "mat5"
    return "other"


def decode_strings(values: np.ndarray, *, matlab_char: bool = False) -> list[str]:
    """Turn an array of labels (str, bytes, numbers, or a MATLAB char matrix) into a list of str.

    Parameters
    ----------
    values : ndarray
        1-D (or (n, 1) / (1, n)) array of str/bytes/numbers, or, with `matlab_char`, a 2-D
        uint16 char matrix as HDF5 stores it (one column per string).
    """
    arr = np.asarray(values)
    if matlab_char and arr.dtype.kind in "ui":
        arr2 = arr.reshape(arr.shape[0], -1) if arr.ndim >= 1 else arr.reshape(1, 1)
        return ["".join(chr(int(c)) for c in col if int(c) != 0).strip() for col in arr2.T]
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise FormatError(f"labels must be a 1-D array of strings, got shape {arr.shape}.")
    out = []
    for v in arr.tolist():
        if isinstance(v, bytes):
            v = v.decode("utf-8", errors="replace")
        elif isinstance(v, float) and v.is_integer():
            v = int(v)
        elif isinstance(v, np.ndarray):
            v = "".join(str(x) for x in v.reshape(-1).tolist())
        out.append(str(v).strip())
    return out


def describe_hdf5_error(exc: BaseException, where: str, what: str) -> str:
    """A user-facing message for an exception raised while reading an HDF5-based file."""
    import re

    text = str(exc)
    m = re.search(r"truncated file: eof = (\d+).*stored_eof = (\d+)", text)
    if m:
        have, want = int(m.group(1)), int(m.group(2))
        return (f"{where} is truncated: it has {have} bytes but its HDF5 header says {want} "
                f"({100 * have / max(want, 1):.0f} % present). The copy or download was interrupted: copy it again.")
    first = text.splitlines()[0][:200] if text else ""
    return (f"cannot read {where} as {what} ({type(exc).__name__}: {first}). "
            "The file is probably truncated or corrupted: copy it again.")


def trim_to_common_span(neural: Any, neural_sfreq_hz: float, audio: np.ndarray, audio_sfreq_hz: float,
                        *, max_trim_s: float, where: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Trim the longer of two streams that start together to the common span, if they differ by <= `max_trim_s`.

    Larger differences are left for `Recording` validation to report (they mean a wrong rate or
    a wrong file, not a few trailing samples).
    """
    dur_n = neural.shape[0] / neural_sfreq_hz
    dur_a = audio.shape[0] / audio_sfreq_hz
    diff_s = dur_n - dur_a
    if abs(diff_s) <= 1.0 / neural_sfreq_hz or abs(diff_s) > max_trim_s:
        return neural, audio, []
    if diff_s > 0:
        n = int(np.ceil(dur_a * neural_sfreq_hz - 1e-9))
        neural = neural.head(n) if hasattr(neural, "head") else neural[:n]   # a LazyNeural stays on disk
        what = f"neural data trimmed from {dur_n:.4f} s to {n / neural_sfreq_hz:.4f} s"
    else:
        n = int(round(dur_n * audio_sfreq_hz))
        audio = audio[:n]
        what = f"audio trimmed from {dur_a:.4f} s to {n / audio_sfreq_hz:.4f} s"
    return neural, audio, [f"audio and neural data in {where} differ by {abs(diff_s) * 1e3:.1f} ms: {what} "
                           "(the common span)."]
