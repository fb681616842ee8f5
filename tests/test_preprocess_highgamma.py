"""High-gamma extraction: accuracy against ground truth, reference, causality, chunking, notch, CLI."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from neurovox.errors import ConfigError, DataError
from neurovox.io.recording import make_channel_table
from neurovox.preprocess import CausalHighGamma, HighGammaConfig, extract_high_gamma, make_reference
from neurovox.preprocess.reference import detect_line_noise_hz, frame_average, frame_starts
from tests.conftest import make_raw_recording


@functools.lru_cache(maxsize=None)
def _synthetic(duration_s: float = 30.0, n_channels: int = 16, bad: int = 3, line_hz: float = 60.0):
    return make_raw_recording(duration_s, n_channels, seed=0, bad=bad, line_hz=line_hz)


def _median_r(x: np.ndarray, gt: np.ndarray, good: np.ndarray) -> float:
    n = min(len(x), len(gt))
    return float(np.median([np.corrcoef(x[:n, c], gt[:n, c])[0, 1] for c in np.flatnonzero(good)]))


def test_offline_and_causal_track_ground_truth_envelope():
    rec, gt_env = _synthetic()
    gt = frame_average(gt_env, frame_starts(rec.n_samples, rec.neural_sfreq_hz, 125.0))
    off = extract_high_gamma(rec, HighGammaConfig(band_high_hz=170.0, zscore="none"))
    cau = extract_high_gamma(rec, HighGammaConfig(band_high_hz=170.0, zscore="none", causal=True))
    r_off, r_cau = _median_r(off.neural, gt, rec.good_mask), _median_r(cau.neural, gt, rec.good_mask)
    assert r_off >= 0.9, r_off
    assert r_cau >= 0.8, r_cau
    assert off.neural_kind == "high_gamma" and off.neural_sfreq_hz == 125.0
    assert off.neural.shape == (30 * 125, 16) and off.audio.shape == (30 * 125 * 128,)
    assert "notch 60 Hz" in off.meta.notes[-1]


def test_bad_channel_does_not_leak_into_common_reference():
    rec, _ = _synthetic()
    cfg = HighGammaConfig(zscore="none", line_noise_hz=60.0)
    quiet = rec.neural.copy()
    quiet[:, 3] = 0.0  # the bad channel's content must not matter to any good channel
    a = extract_high_gamma(rec, cfg).neural
    b = extract_high_gamma(rec.replace(neural=quiet), cfg).neural
    good = rec.good_mask
    assert np.array_equal(a[:, good], b[:, good])
    assert extract_high_gamma(rec, cfg).bads == ["E3"]  # kept, still flagged
    # the same channel NOT flagged bad would swamp every good channel through the average
    unflagged = rec.replace(channels=make_channel_table(rec.ch_names, "ecog"))
    c = extract_high_gamma(unflagged, cfg).neural
    assert np.median(c[:, good] / a[:, good]) > 10


def _stream(hg: CausalHighGamma, x: np.ndarray, sizes) -> np.ndarray:
    hg.reset()
    out, i = [], 0
    for s in sizes:
        out.append(hg.process(x[i: i + s]))
        i += s
    out.append(hg.process(x[i:]))
    return np.concatenate(out, axis=0)


def test_causal_chunked_equals_whole_bit_for_bit():
    rec, _ = _synthetic()
    x = rec.neural[: 10 * 1024]
    hg = CausalHighGamma(1024.0, make_reference(rec.channels), HighGammaConfig(causal=True), line_hz=60.0)
    whole = _stream(hg, x, [])
    rng = np.random.default_rng(1)
    for sizes in ([1] * 50 + [0, 7, 9, 8], list(rng.integers(0, 700, 40)), [5000, 1, 3]):
        assert np.array_equal(_stream(hg, x, sizes), whole)
    assert whole.shape == (10 * 125, 16) and whole.dtype == np.float32


def test_causal_future_perturbation_leaves_past_frames_unchanged():
    rec, _ = _synthetic()
    x = rec.neural[: 8 * 1024].copy()
    ref = make_reference(rec.channels)
    cfg = HighGammaConfig(causal=True, log_envelope=True)
    hg = CausalHighGamma(1024.0, ref, cfg, line_hz=60.0, mean=np.zeros(16), std=np.ones(16))
    base = _stream(hg, x, [333] * 20)
    starts = frame_starts(len(x), 1024.0, 125.0)
    for t in (1000, 3333, 5000):
        y = x.copy()
        y[t:] += np.random.default_rng(t).standard_normal(y[t:].shape).astype(np.float32) * 1e-3
        pert = _stream(hg, y, [517] * 13)
        done = np.flatnonzero(starts[1:] <= t)          # frames whose last sample precedes t
        assert len(done) > 0 and np.array_equal(pert[done], base[done])
        assert not np.array_equal(pert[done[-1] + 1:], base[done[-1] + 1:])  # later frames do change


def test_line_noise_detection_and_notch_choice():
    for line in (50.0, 60.0):
        rec, _ = make_raw_recording(12.0, 4, seed=2, bad=None, line_hz=line)
        f0, peak_db = detect_line_noise_hz(rec.neural.astype(float), 1024.0)
        assert f0 == line and peak_db > 10
    rng = np.random.default_rng(0)
    assert detect_line_noise_hz(rng.standard_normal((20 * 1024, 3)), 1024.0)[0] == 0.0


def test_frame_rates_baseline_zscore_and_clip():
    rec, _ = _synthetic()
    out = extract_high_gamma(rec, HighGammaConfig(frame_rate_hz=100.0, clip_sd=3.0))
    assert out.neural.shape == (3000, 16) and out.audio.shape == (3000 * 160,)
    assert out.neural_unit == "z (baseline)" and np.abs(out.neural).max() <= 3.0
    from neurovox.preprocess.highgamma import baseline_frame_mask, training_baseline_mask

    mask = baseline_frame_mask(rec.trials, 3000, 100.0, -0.25, -0.05)
    assert mask.sum() >= 15 * 18
    # statistics from the baselines of the trials outside the flinker test set (default), or of all trials
    train_mask, _ = training_baseline_mask(rec.trials, 3000, HighGammaConfig(frame_rate_hz=100.0))
    assert 0 < train_mask.sum() < mask.sum() and not (train_mask & ~mask).any()
    for split, m in (("flinker", train_mask), ("all", mask)):
        z = extract_high_gamma(rec, HighGammaConfig(frame_rate_hz=100.0, clip_sd=0.0, baseline_split=split)).neural[m]
        np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-4)
        np.testing.assert_allclose(z.std(axis=0), 1.0, atol=1e-4)
    one = extract_high_gamma(rec, HighGammaConfig(zscore="none", n_jobs=1, block_channels=5)).neural
    assert np.array_equal(one, extract_high_gamma(rec, HighGammaConfig(zscore="none", n_jobs=2)).neural)
    st = frame_starts(1024, 1024.0, 125.0)
    assert len(st) == 126 and set(np.diff(st)) == {8, 9}


def test_seeg_shaft_and_bipolar_references():
    rec, _ = make_raw_recording(6.0, 6, seed=3, bad=1)
    ch = make_channel_table(rec.ch_names, "seeg", bad=[False, True, False, False, False, False],
                            group=["A", "A", "A", "B", "B", "B"])
    seeg = rec.replace(channels=ch)
    shaft = make_reference(ch, seeg_reference="shaft_average")
    x = seeg.neural.astype(np.float64)
    y = shaft.apply(seeg.neural)
    np.testing.assert_allclose(y[:, 0], x[:, 0] - (x[:, 0] + x[:, 2]) / 2, rtol=1e-12)   # bad contact 1 left out
    np.testing.assert_allclose(y[:, 4], x[:, 4] - x[:, 3:6].mean(axis=1), rtol=1e-12)
    bip = extract_high_gamma(seeg, HighGammaConfig(seeg_reference="bipolar", zscore="none"))
    assert bip.ch_names == ["E0-E1", "E1-E2", "E3-E4", "E4-E5"] and bip.bads == ["E0-E1", "E1-E2"]


def test_errors_name_the_problem():
    rec, _ = _synthetic()
    hg = extract_high_gamma(rec, HighGammaConfig(zscore="none"))
    with pytest.raises(DataError, match="needs raw voltage"):
        extract_high_gamma(hg)
    with pytest.raises(ConfigError, match="band_high_hz"):
        HighGammaConfig(band_low_hz=150.0, band_high_hz=70.0)
    with pytest.raises(ConfigError, match="line_noise_hz"):
        HighGammaConfig(line_noise_hz=55.0)
    stream = CausalHighGamma(1024.0, make_reference(rec.channels), HighGammaConfig(causal=True))
    with pytest.raises(DataError, match="chunk has 3 channels but the stream was set up for 16"):
        stream.process(np.zeros((10, 3)))
    low = rec.replace(neural=rec.neural[::4], neural_sfreq_hz=256.0, audio=rec.audio, audio_sfreq_hz=16000.0)
    with pytest.raises(DataError, match="too low"):
        extract_high_gamma(low)


def test_preprocess_cli_round_trip(tmp_path, capsys):
    from neurovox.cli import main
    from neurovox.io import read_recording, write_flinker_hdf5

    rec, _ = make_raw_recording(6.0, 4, seed=4, bad=None)
    src = write_flinker_hdf5(rec, tmp_path / "raw.h5")
    out = tmp_path / "hg.h5"
    assert main(["preprocess", "--data", str(src), "--out", str(out), "--causal", "--frame-rate-hz", "100"]) == 0
    back = read_recording(out)
    assert back.neural_kind == "high_gamma" and back.neural_sfreq_hz == 100.0 and back.neural.shape == (600, 4)
    assert (tmp_path / "hg.config.yaml").read_text().count("causal: true") == 1
    assert main(["preprocess", "--data", str(src), "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err


@functools.lru_cache(maxsize=None)
def _simulated(clean: bool):
    from neurovox.simulate import SimulateConfig, simulate

    extra = dict(raw_background_uv=0.0, raw_white_uv=0.0, line_noise_uv=0.0) if clean else {}
    # linear encoding: every contact carries speech-driven high gamma, so every contact has a correlation to score
    recs, gt = simulate(SimulateConfig(n_trials=10, snr_db=30.0, layout="grid8x8", encoding="linear", **extra), 0,
                        ("raw",))
    return recs["raw"], gt


def test_simulated_raw_participant_reaches_the_carrier_limit():
    """On the simulator's raw participant, background, mains, common noise and bad channels cost
    < 8% of the correlation that the same pipeline reaches on the noise-free carrier.

    The simulator's envelope modulates a 70-170 Hz noise carrier by only 1-3x its baseline at
    speech peaks, so the carrier's own (Rayleigh) envelope fluctuation caps the per-frame
    correlation with `GroundTruth.envelope` well below 0.9 even without any noise (about 0.75
    offline); the 0.9 / 0.8 thresholds are asserted on the deeper-modulated synthetic recording
    above. Numbers here: median over good channels at 125 Hz, sampled frame i <-> GT frame i.
    """
    rec, gt = _simulated(False)
    clean, gt_clean = _simulated(True)
    assert np.array_equal(gt.envelope, gt_clean.envelope)
    good = rec.good_mask
    r = {}
    for causal in (False, True):
        cfg = HighGammaConfig(band_high_hz=170.0, zscore="none", causal=causal)
        r[causal] = (_median_r(extract_high_gamma(rec, cfg).neural, gt.envelope, good),
                     _median_r(extract_high_gamma(clean, cfg).neural, gt.envelope, good))
    assert r[False][0] >= 0.92 * r[False][1] and r[False][0] >= 0.65, r
    assert r[True][0] >= 0.92 * r[True][1] and r[True][0] >= 0.55, r
