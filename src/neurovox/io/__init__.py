"""Readers and writers; everything returns or takes a `Recording`.

- `read_recording(path)` detects the format (Flinker HDF5/MAT, SWPD NWB/iBIDS, BIDS-iEEG).
- `read_flinker_hdf5` / `write_flinker_hdf5`, `read_swpd` / `write_swpd`, `read_bids`.
- `load_wav` / `write_wav` (neurovox.io.audio).
- `mark_nonfinite_bad`, `interpolate_nonfinite`, `mark_flat_bad` (neurovox.io.checks).
- `LazyNeural`: a neural array left on disk (recordings larger than memory), `is_lazy`.
"""

from neurovox.io.audio import load_wav, resample_audio, to_mono, write_wav
from neurovox.io.bids import read_bids
from neurovox.io.checks import interpolate_nonfinite, mark_flat_bad, mark_nonfinite_bad
from neurovox.io.detect import detect_format, read_recording
from neurovox.io.flinker import flinker_channel_table, read_flinker_hdf5, write_flinker_hdf5
from neurovox.io.lazy import LazyNeural, is_lazy
from neurovox.io.recording import (
    Recording,
    RecordingMeta,
    make_channel_table,
    make_trial_table,
)
from neurovox.io.swpd import find_swpd_nwb, read_swpd, write_swpd

__all__ = [
    "Recording", "RecordingMeta", "make_channel_table", "make_trial_table",
    "read_recording", "detect_format",
    "read_flinker_hdf5", "write_flinker_hdf5", "flinker_channel_table",
    "read_swpd", "write_swpd", "find_swpd_nwb",
    "read_bids",
    "load_wav", "write_wav", "to_mono", "resample_audio",
    "mark_nonfinite_bad", "interpolate_nonfinite", "mark_flat_bad",
    "LazyNeural", "is_lazy",
]
