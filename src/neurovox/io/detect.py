"""`read_recording`: open any supported recording by looking at what the path is."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from neurovox.errors import FormatError
from neurovox.io._common import file_kind
from neurovox.io.recording import Recording

FLINKER_SUFFIXES = (".h5", ".hdf5", ".hdf", ".mat")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
RAW_SUFFIXES = (".vhdr", ".edf", ".bdf", ".set", ".fif")


def detect_format(path: str | os.PathLike) -> str:
    """Name the format of `path`: "flinker", "swpd" or "bids"; FormatError when it is none of them."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(2, "No such file or directory", str(path))
    if path.is_dir():
        if path.name.startswith("sub-") or path.name == "ieeg":
            if any(any(path.glob(g)) for g in ("*_ieeg.nwb", "ieeg/*_ieeg.nwb", "ses-*/ieeg/*_ieeg.nwb")):
                return "swpd"
            raise FormatError(f"subject directory {path} holds no *_ieeg.nwb file; for other BIDS-iEEG formats "
                              "pass the BIDS root (the directory with dataset_description.json) and the subject.")
        if not (path / "dataset_description.json").exists():
            raise FormatError(f"directory is not BIDS: no dataset_description.json in {path}. Pass a BIDS root, "
                              "a sub-XX directory, a .nwb file or a Flinker .h5/.mat file.")
        if any(path.glob("sub-*/ieeg/*_ieeg.nwb")) or any(path.glob("sub-*/ses-*/ieeg/*_ieeg.nwb")):
            return "swpd"
        return "bids"
    suffix = path.suffix.lower()
    if suffix in AUDIO_SUFFIXES:
        raise FormatError(f"{path} is an audio file: a recording needs neural data too. Pass the recording "
                          "(.h5/.mat/.nwb or a BIDS directory); load audio alone with neurovox.io.audio.load_wav.")
    if suffix in RAW_SUFFIXES:
        raise FormatError(f"{path} is a raw {suffix} file: neurovox reads such files through their BIDS dataset "
                          "(events, channels, audio). Pass the BIDS root and the subject, or convert it with "
                          "mne_bids.write_raw_bids first.")
    kind = file_kind(path)
    if kind == "empty":
        raise FormatError(f"{path} is empty (0 bytes); the copy or download was probably interrupted.")
    if kind == "mat5":
        return "flinker"
    if kind != "hdf5":
        raise FormatError(f"{path} is not HDF5 (no HDF5 signature) and not a BIDS directory: neurovox reads "
                          "Flinker .h5/.hdf5/.mat (v7.3 or v5), SWPD .nwb, and BIDS-iEEG directories.")
    if suffix == ".nwb":
        return "swpd"
    if suffix in FLINKER_SUFFIXES:
        return "flinker"
    try:
        import h5py

        with h5py.File(path, "r") as f:
            return "swpd" if "acquisition" in f and "ecog_alldataset" not in f else "flinker"
    except OSError as exc:
        raise FormatError(f"cannot open {path} as HDF5 ({exc}); the file is probably truncated.") from exc


def read_recording(path: str | os.PathLike, *, nonfinite: str = "raise", subject: str | None = None,
                   **kwargs: Any) -> Recording:
    """Read a recording, detecting its format.

    Parameters
    ----------
    path : path-like
        A Flinker .h5/.hdf5/.mat file, an SWPD .nwb file or sub-XX directory, or a BIDS root
        (SWPD NWB layout, or any BIDS-iEEG raw format through MNE-BIDS).
    nonfinite : {"raise", "mark_bad", "interpolate"}
        What to do with NaN/Inf neural samples: raise (default, naming the channels), zero them
        and mark their channels bad, or interpolate short gaps (see `neurovox.io.checks`).
    subject : str, optional
        BIDS subject label, needed when a BIDS root holds several subjects.
    **kwargs
        Passed to the format's reader (`read_flinker_hdf5`, `read_swpd`, `read_bids`).

    Returns
    -------
    rec : Recording
    """
    fmt = detect_format(path)
    if fmt == "flinker":
        from neurovox.io.flinker import read_flinker_hdf5

        return read_flinker_hdf5(path, nonfinite=nonfinite, **kwargs)
    if fmt == "swpd":
        from neurovox.io.swpd import read_swpd

        return read_swpd(path, subject, nonfinite=nonfinite, **kwargs)
    from neurovox.io.bids import read_bids

    return read_bids(path, subject, nonfinite=nonfinite, **kwargs)
