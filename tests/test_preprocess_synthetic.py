"""The synthetic raw (1024 Hz) ECoG participant of the preprocessing tests (`make_raw_recording`, in
tests/conftest.py) is a valid Recording."""

from __future__ import annotations

from tests.conftest import make_raw_recording


def test_synthetic_recording_is_valid():
    rec, gt = make_raw_recording(duration_s=8.0, n_channels=4, bad=1)
    assert rec.n_samples == 8 * 1024 and gt.shape == (8 * 1024, 4)
    assert rec.bads == ["E1"] and rec.n_trials >= 3
