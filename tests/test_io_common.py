"""Shared builders for the io tests, plus tests of the channel checks and audio I/O."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neurovox.errors import DataError, FormatError
from neurovox.io import (
    Recording,
    RecordingMeta,
    flinker_channel_table,
    interpolate_nonfinite,
    load_wav,
    make_channel_table,
    make_trial_table,
    mark_flat_bad,
    mark_nonfinite_bad,
    write_wav,
)


def make_recording(n_channels: int = 16, *, duration_s: float = 20.0, neural_sfreq_hz: float = 125.0,
                   audio_sfreq_hz: float = 16000.0, kind: str = "high_gamma", n_trials: int = 10,
                   seed: int = 0, flinker_layout: bool = False, ch_type: str = "ecog") -> Recording:
    """A small random recording with trials every 2 s, 3 words, 5 tasks (2 trials each)."""
    rng = np.random.default_rng(seed)
    n = int(round(duration_s * neural_sfreq_hz))
    n_audio = int(round(duration_s * audio_sfreq_hz))
    scale = 1e-5 if kind == "raw" else 1.0
    neural = (rng.standard_normal((n, n_channels)) * scale).astype(np.float32)
    audio = (0.1 * rng.standard_normal(n_audio)).astype(np.float32)
    if flinker_layout:
        channels = flinker_channel_table(n_channels)[0]
    else:
        names = [f"{'LA' if i < n_channels // 2 else 'RB'}{i + 1}" for i in range(n_channels)]
        channels = make_channel_table(names, ch_type, bad=[i == 2 for i in range(n_channels)],
                                      xyz=rng.standard_normal((n_channels, 3)) * 0.01,
                                      group=[nm[:2] for nm in names])
    spacing_s = min(2.0, duration_s / n_trials)
    onsets = spacing_s * (0.25 + np.arange(n_trials)) + rng.uniform(0, 0.15, n_trials) * spacing_s
    trials = make_trial_table(onsets, onsets + spacing_s * (0.3 + rng.uniform(0, 0.2, n_trials)),
                              [("huis", "kat", "01")[i % 3] for i in range(n_trials)],
                              [f"task{i * 5 // n_trials + 1}" for i in range(n_trials)])
    meta = RecordingMeta(participant_id="P07", sex="F", hemisphere="left",
                         grid_density="low" if n_channels == 64 else "other")
    return Recording(neural=neural, neural_sfreq_hz=neural_sfreq_hz, neural_kind=kind, audio=audio,
                     audio_sfreq_hz=audio_sfreq_hz, channels=channels, trials=trials, meta=meta,
                     neural_unit="V" if kind == "raw" else "a.u.")


def assert_same_recording(a: Recording, b: Recording, *, extras: bool = True) -> None:
    """Exact equality of data, dtypes, tables and the metadata a round trip must keep."""
    assert a.neural.dtype == b.neural.dtype and a.audio.dtype == b.audio.dtype
    np.testing.assert_array_equal(a.neural, b.neural)
    np.testing.assert_array_equal(a.audio, b.audio)
    assert (a.neural_sfreq_hz, a.audio_sfreq_hz, a.neural_kind, a.neural_unit) == \
        (b.neural_sfreq_hz, b.audio_sfreq_hz, b.neural_kind, b.neural_unit)
    pd.testing.assert_frame_equal(a.channels, b.channels)
    pd.testing.assert_frame_equal(a.trials, b.trials)
    for field in ("participant_id", "sex", "hemisphere", "grid_density"):
        assert getattr(a.meta, field) == getattr(b.meta, field), field
    if extras:
        assert sorted(a.extras) == sorted(b.extras)
        for k in a.extras:
            np.testing.assert_array_equal(a.extras[k], b.extras[k])


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
