"""Small helpers shared by the readers: file sniffing and string decoding."""

from __future__ import annotations

import os
from pathlib import Path

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
