"""Tests of the channel checks and audio I/O (the io tests' shared builders, `make_recording` and
`assert_same_recording`, are in tests/conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest

from neurovox.errors import DataError, FormatError
from neurovox.io import (
    interpolate_nonfinite,
    load_wav,
    make_channel_table,
    mark_flat_bad,
    mark_nonfinite_bad,
    write_wav,
)
from tests.conftest import make_recording


# ------------------------------------------------------------------------------------ checks
def test_mark_nonfinite_bad_zeroes_and_names_channels():
    rec = make_recording(8)
    neural = rec.neural.copy()
    neural[10:20, 3] = np.nan
    neural[5, 6] = np.inf
    fixed, ch, notes = mark_nonfinite_bad(neural, rec.channels, where="x.h5")
    assert np.isfinite(fixed).all() and (fixed[10:20, 3] == 0).all() and fixed[5, 6] == 0
    assert ch["bad"].tolist() == [False, False, True, True, False, False, True, False]
    assert len(notes) == 1 and "11 NaN/Inf samples in x.h5" in notes[0] and "LA4" in notes[0] and "RB7" in notes[0]
    assert not rec.channels["bad"].iloc[3]   # input not modified


def test_interpolate_nonfinite_short_gap_and_long_gap():
    t = np.arange(1000, dtype=np.float64)
    neural = np.stack([t, t * 2, t * 3], axis=1)
    neural[100:110, 0] = np.nan            # 1 %: interpolated exactly (the signal is linear)
    neural[:200, 2] = np.nan               # 20 %: marked bad
    ch = make_channel_table(["a", "b", "c"])
    fixed, ch2, notes = interpolate_nonfinite(neural, ch, max_gap_fraction=0.05)
    np.testing.assert_allclose(fixed[:, 0], t)
    assert (fixed[:200, 2] == 0).all() and ch2["bad"].tolist() == [False, False, True]
    assert "interpolated linearly in 1 channels: a" in notes[0] and "marked bad: c" in notes[1]


def test_mark_flat_bad_reports_zero_and_constant():
    neural = np.random.default_rng(0).standard_normal((50, 4))
    neural[:, 1] = 0.0
    ch, notes = mark_flat_bad(neural, make_channel_table(list("abcd")))
    assert ch["bad"].tolist() == [False, True, False, False] and "all zero" in notes[0] and ": b." in notes[0]
    neural[:, 3] = 2.5
    ch, notes = mark_flat_bad(neural, make_channel_table(list("abcd")))
    assert ch["bad"].sum() == 2 and "flat (constant)" in notes[0]


# ------------------------------------------------------------------------------------ audio
def test_wav_roundtrip_exact_and_atomic(tmp_path):
    x = np.random.default_rng(1).uniform(-0.9, 0.9, 16000).astype(np.float32)
    path = write_wav(tmp_path / "a.wav", x, 16000)
    y, notes = load_wav(path)
    np.testing.assert_array_equal(x, y)
    assert notes == [] and sorted(p.name for p in tmp_path.iterdir()) == ["a.wav"]


def test_wav_stereo_and_rate_notices(tmp_path):
    import soundfile as sf

    t = np.arange(48000) / 48000
    left = 0.5 * np.sin(2 * np.pi * 440 * t)
    sf.write(tmp_path / "s.wav", np.stack([left, np.zeros_like(left)], axis=1), 48000, subtype="FLOAT")
    y, notes = load_wav(tmp_path / "s.wav", 16000)
    assert notes == ["s.wav: 2 audio channels mixed down to mono.", "s.wav: resampled from 48000 Hz to 16000 Hz."]
    assert y.shape == (16000,) and y.dtype == np.float32
    expect = 0.25 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)
    assert np.abs(y - expect)[200:-200].max() < 1e-3     # mixed (halved) and resampled faithfully


def test_wav_errors(tmp_path):
    (tmp_path / "x.wav").write_bytes(b"RIFF garbage")
    with pytest.raises(FormatError, match=r"cannot read .*x.wav as audio"):
        load_wav(tmp_path / "x.wav")
    with pytest.raises(DataError, match="mono audio of shape"):
        write_wav(tmp_path / "y.wav", np.zeros((10, 2)), 16000)
