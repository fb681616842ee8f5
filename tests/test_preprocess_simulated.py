"""High-gamma extraction scored on the simulator's raw participant (issue 3, first "Done when" point).

Ground truth. The raw simulator writes `raw_hg_uv * carrier * env + background + white + line`,
where `carrier` is 70-170 Hz Gaussian noise. `GroundTruth.envelope` (baseline + signal) is what
DECODERS should recover; it cannot score PREPROCESSING, because the envelope-level noise and the
carrier's own Rayleigh amplitude fluctuation are really in the voltage and no extractor can remove
them. Preprocessing is scored against `GroundTruth.raw_hg_envelope`: the frame-averaged Hilbert
amplitude of the noiseless high-gamma component (before 1/f background, common mode, white and
line noise), frame i = [i / 125, (i + 1) / 125) s, the framing of `extract_high_gamma`.

Scoring: Pearson r per good channel over ALL frames of the recording (no trial mask, no fitted
gain), median over good channels; offline output frame i <-> ground-truth frame i; causal output at
its fixed filter latency (the lag, 0-4 frames, where it peaks; asserted to be 3 frames = 24 ms).

Measured with DEFAULT settings (70-150 Hz, 20 Hz envelope low-pass, shaft-average reference) on
`sim_raw` (24 sEEG contacts, 20 trials, snr_db 0, seed 0): offline r = 0.735 (per channel
0.53-0.85), causal r = 0.744 (0.55-0.86) at 24 ms latency (0.37 at lag 0). Against
`GroundTruth.envelope`: offline 0.585, causal 0.571 at the same latency.

The issue's r >= 0.9 / 0.8 is NOT reached, and no setting reaches it on this participant. Offline
median r against `raw_hg_envelope` (same seed; "clean" = the same simulation without 1/f background,
white and line noise):

    band 70-150, low-pass 20 Hz (default): 0.735   clean 0.804
    band 70-150, no low-pass             : 0.789   clean 0.883
    band 70-170, low-pass 20 Hz          : 0.775   clean 0.834
    band 70-170, no low-pass             : 0.852   clean 0.939

Per 8 ms frame the ground truth holds the carrier's fast (up to ~100 Hz) amplitude fluctuation: the
70-150 Hz band sees only part of the 65-175 Hz carrier and the low-pass removes that fluctuation
(it carries no speech information, see HighGammaConfig), the shaft average adds the other
contacts' high gamma / n, and the simulator's 1/f background (30 uV RMS; an estimated ~2.4 uV of it
per channel in band once the reference removes the common part, against a 4 uV carrier at
baseline) is inseparable from high gamma by any band-pass extractor. With the background lowered to
5 uV the defaults still give only 0.784 (0.860 without low-pass): at default settings the band and
the low-pass, not the noise, set the limit.
"""

from __future__ import annotations

import numpy as np

from neurovox.io.recording import make_channel_table
from neurovox.preprocess import HighGammaConfig, extract_high_gamma
from neurovox.simulate import SimulateConfig, simulate_participant
from neurovox.simulate.neural import analytic_amplitude, frame_index

CAUSAL_LATENCY_FRAMES = 3


def _r(x: np.ndarray, gt: np.ndarray, good: np.ndarray, lag: int = 0) -> np.ndarray:
    """Per-good-channel r of x[i + lag] with gt[i], over all common frames."""
    n = min(len(x), len(gt))
    x, gt = x[lag:n], gt[: n - lag]
    return np.array([np.corrcoef(x[:, c], gt[:, c])[0, 1] for c in np.flatnonzero(good)])




def test_raw_hg_envelope_is_the_hilbert_amplitude_of_the_high_gamma_component():
    """Without background / white / line noise the raw voltage IS the high-gamma component, so the
    ground truth must equal its frame-averaged Hilbert amplitude (checks definition, framing, units)."""
    kw = dict(n_trials=5, layout="seeg", n_seeg_shafts=1)
    clean, gt = simulate_participant(SimulateConfig(raw_background_uv=0.0, raw_white_uv=0.0, line_noise_uv=0.0, **kw),
                                     1, kind="raw")
    n_frames, n_ch = gt.envelope.shape
    assert gt.raw_hg_envelope.shape == (n_frames, n_ch) and gt.raw_hg_envelope.dtype == np.float32
    idx = frame_index(clean.n_samples, 1024.0, 125.0, n_frames)
    assert idx[7] == 0 and idx[8] == 0 and idx[9] == 1 and idx[-1] == n_frames - 1   # 1024/125 = 8.192
    amp = analytic_amplitude(clean.neural.astype(np.float64))
    want = np.stack([np.bincount(idx, amp[:, c]) for c in range(n_ch)], 1) / np.bincount(idx)[:, None]
    good = gt.good_mask
    np.testing.assert_allclose(gt.raw_hg_envelope[:, good], want[:, good], rtol=1e-4, atol=1e-10)
    flat = gt.bad_channels[[k == "flat" for k in gt.bad_kind]]
    assert (gt.raw_hg_envelope[:, flat] == 0).all()
    # volts; a Gaussian carrier of RMS 4 uV has mean Hilbert amplitude sqrt(pi / 2) * 4 uV ~ 5 uV at baseline
    silent = gt.envelope[:, good].max(axis=1) < 1.001
    assert 3.5e-6 < np.median(gt.raw_hg_envelope[silent][:, good]) < 6.5e-6
    # the ground truth does not depend on the contamination levels (same seed, same carrier and envelope)
    noisy, gt_noisy = simulate_participant(SimulateConfig(**kw), 1, kind="raw")
    np.testing.assert_array_equal(gt_noisy.raw_hg_envelope[:, good], gt.raw_hg_envelope[:, good])


def test_ground_truth_round_trip_with_raw_hg_envelope(sim_raw, sim_hg_8x8, tmp_path):
    from neurovox.simulate import GroundTruth

    _, gt = sim_raw
    gt.save(tmp_path / "raw")
    back = GroundTruth.load(tmp_path / "raw")
    np.testing.assert_array_equal(back.raw_hg_envelope, gt.raw_hg_envelope)
    np.testing.assert_array_equal(back.envelope, gt.envelope)
    assert sim_hg_8x8[1].raw_hg_envelope is None          # high-gamma-only simulations have none
    sim_hg_8x8[1].save(tmp_path / "hg")
    assert GroundTruth.load(tmp_path / "hg").raw_hg_envelope is None


def test_default_extraction_tracks_the_simulated_high_gamma(sim_raw):
    rec, gt = sim_raw
    good = gt.good_mask
    off = extract_high_gamma(rec, HighGammaConfig(zscore="none")).neural
    cau = extract_high_gamma(rec, HighGammaConfig(zscore="none", causal=True)).neural
    r_off = _r(off, gt.raw_hg_envelope, good)
    r_cau = {lag: _r(cau, gt.raw_hg_envelope, good, lag) for lag in range(5)}
    best = max(r_cau, key=lambda lag: np.median(r_cau[lag]))
    assert np.median(r_off) >= 0.70 and r_off.min() >= 0.45, r_off               # measured 0.735 (0.53-0.85)
    assert best == CAUSAL_LATENCY_FRAMES, {k: np.median(v) for k, v in r_cau.items()}
    assert np.median(r_cau[best]) >= 0.70, np.median(r_cau[best])                # measured 0.744
    # information for decoders: the envelope they should recover (measured 0.585 / 0.577)
    assert np.median(_r(off, gt.envelope, good)) >= 0.5
    assert np.median(_r(cau, gt.envelope, good, best)) >= 0.5


def test_noisy_bad_channel_does_not_leak_through_the_shaft_reference(sim_raw):
    rec, gt = sim_raw
    bad = int(gt.bad_channels[0])
    noisy = rec.neural.copy()
    noisy[:, bad] = 5e-3 * np.random.default_rng(0).standard_normal(rec.n_samples)  # 5 mV: ~100x the data
    quiet = rec.neural.copy()
    quiet[:, bad] = 0.0
    cfg = HighGammaConfig(zscore="none")
    a = extract_high_gamma(rec.replace(neural=noisy), cfg)
    b = extract_high_gamma(rec.replace(neural=quiet), cfg)
    good = gt.good_mask
    assert np.array_equal(a.neural[:, good], b.neural[:, good]) and a.bads == [gt.ch_names[bad]]
    r_ok = _r(a.neural, gt.raw_hg_envelope, good)
    # the same channel NOT flagged bad swamps every contact of its shaft through the average
    ch = rec.channels
    unflagged = rec.replace(neural=noisy, channels=make_channel_table(
        ch["name"].tolist(), "seeg", group=ch["group"].tolist()))
    c = extract_high_gamma(unflagged, cfg).neural
    shaft = (ch["group"] == ch["group"].iloc[bad]).to_numpy() & good
    r_leak = _r(c, gt.raw_hg_envelope, shaft)
    assert np.median(r_leak) < 0.2 < np.median(r_ok) - 0.4, (np.median(r_leak), np.median(r_ok))
