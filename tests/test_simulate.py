"""Simulated participants: corpus, determinism, the LINEAR encoding model (lags, tunings, SNR, bad
channels), layouts, raw. The realistic model (the default) is tested in test_simulate_realistic.py."""

import numpy as np
import pytest
from scipy.signal import butter, hilbert, sosfiltfilt, welch

from neurovox.errors import ConfigError, DataError
from neurovox.io import Recording
from neurovox.simulate import (
    TASKS,
    GroundTruth,
    SimulateConfig,
    load_corpus,
    make_layout,
    simulate,
    simulate_participant,
    speech_feature,
)
from neurovox.simulate.corpus import corpus_dir


@pytest.fixture(scope="module")
def sim_lin_8x8():
    """The shared `sim_hg_8x8` participant (60 trials, 8x8, 0 dB, seed 0) with the linear encoding."""
    return simulate_participant(SimulateConfig(n_trials=60, layout="grid8x8", encoding="linear"), 0, kind="high_gamma")


@pytest.fixture(scope="module")
def sim_lin_raw():
    """The shared `sim_raw` participant (20 trials, 2 sEEG shafts, raw, seed 0) with the linear encoding."""
    cfg = SimulateConfig(n_trials=20, layout="seeg", n_seeg_shafts=2, line_freq_hz=60.0, encoding="linear")
    return simulate_participant(cfg, 0, kind="raw")


def xcorr_lags(x: np.ndarray, y: np.ndarray, max_lag: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """For each column of x (n, c): the lag L (frames) maximising corr(x(t), y(t - L)), and that corr."""
    x = (x - x.mean(0)) / x.std(0)
    y = (y - y.mean()) / y.std()
    n = len(y)
    lags = np.arange(-max_lag, max_lag + 1)
    c = np.stack([(x[L:] * y[: n - L, None]).mean(0) if L >= 0 else (x[: n + L] * y[-L:, None]).mean(0) for L in lags])
    return lags[c.argmax(0)], c.max(0)


# ------------------------------------------------------------------------------------ corpus
def test_corpus_is_shipped_small_and_varied():
    corpus = load_corpus()
    size_mb = sum(p.stat().st_size for p in corpus_dir().iterdir()) / 1e6
    assert size_mb < 5.0
    assert len(corpus.words) == 50 and len(set(corpus.words)) == 50
    assert len(corpus.voices) == 7
    assert set(corpus.voice_sex.values()) == {"M", "F"}
    assert sum(s == "F" for s in corpus.voice_sex.values()) >= 3
    assert len(corpus) == 50 * 7 and corpus.sample_rate_hz == 16000
    durs = np.array([len(u.audio) / 16000 for u in corpus.utterances])
    assert 0.15 < durs.min() and durs.max() < 1.5 and 0.35 < np.median(durs) < 0.8
    peaks = np.array([np.abs(u.audio).max() for u in corpus.utterances])
    np.testing.assert_allclose(peaks, 0.9, atol=2e-3)
    # trimmed: the first and last 10 ms are quiet relative to the word
    u = corpus.for_voice("flite_slt")["bottle"]
    assert np.sqrt(np.mean(u.audio[:160] ** 2)) < 0.1 * np.sqrt(np.mean(u.audio ** 2))
    with pytest.raises(DataError, match="Invalid voice.*flite_slt"):
        corpus.for_voice("flite_sl")


# ------------------------------------------------------------------------------------ determinism
def test_same_seed_identical_other_seed_different():
    cfg = SimulateConfig(n_trials=10)
    (a, ga), (b, gb) = simulate_participant(cfg, 7), simulate_participant(cfg, 7)
    np.testing.assert_array_equal(a.neural, b.neural)
    np.testing.assert_array_equal(a.audio, b.audio)
    np.testing.assert_array_equal(ga.envelope, gb.envelope)
    assert a.trials.equals(b.trials) and a.channels.equals(b.channels)
    c, _ = simulate_participant(cfg, 8)
    assert a.neural.shape[1] == c.neural.shape[1]
    assert not np.array_equal(a.neural[: min(a.n_samples, c.n_samples)], c.neural[: min(a.n_samples, c.n_samples)])
    # rendering raw as well leaves the high gamma bit-identical (independent child generators)
    recs, gboth = simulate(cfg, 7, ("high_gamma", "raw"))
    np.testing.assert_array_equal(recs["high_gamma"].neural, a.neural)
    np.testing.assert_array_equal(gboth.envelope, ga.envelope)
    # a Generator works too and the same state gives the same participant
    d, gd = simulate_participant(cfg, np.random.default_rng(3))
    e, _ = simulate_participant(cfg, np.random.default_rng(3))
    np.testing.assert_array_equal(d.neural, e.neural)
    assert gd.seed is None and ga.seed == 7


# ------------------------------------------------------------------------------------ speech timeline
def test_speech_timeline_is_natural(sim_hg_8x8):
    rec, gt = sim_hg_8x8
    assert isinstance(rec, Recording) and rec.neural_kind == "high_gamma"
    assert rec.neural_sfreq_hz == 125.0 and rec.audio_sfreq_hz == 16000.0
    assert rec.audio.shape[0] == rec.n_samples * 128
    assert rec.n_trials == 60
    counts = rec.trials["task"].value_counts()
    assert set(counts.index) == set(TASKS) and (counts == 12).all()
    # one block per task
    assert (rec.trials["task"] != rec.trials["task"].shift()).sum() == 5
    assert set(rec.trials["label"]) <= set(load_corpus().words)
    assert rec.meta.sex == gt.sex and gt.voice in load_corpus().voices
    dur = (rec.trials["offset_s"] - rec.trials["onset_s"]).to_numpy()
    assert 0.2 < dur.min() and dur.max() < 1.5
    gaps = rec.trials["onset_s"].to_numpy()[1:] - rec.trials["offset_s"].to_numpy()[:-1]
    assert 0.4 <= gaps.min() and gaps.max() < 3.0 and 1.2 < np.median(gaps) < 2.0
    # background noise in the pre-speech silence at the configured level (-50 dBFS)
    pre = rec.audio_segment(0.0, rec.trials["onset_s"].iloc[0] - 0.05)
    assert abs(20 * np.log10(np.sqrt(np.mean(pre ** 2))) - (-50.0)) < 1.0
    assert np.abs(rec.audio).max() < 0.95


# ------------------------------------------------------------------------------------ realism
def test_lags_recoverable_by_cross_correlation(sim_lin_8x8):
    rec, gt = sim_lin_8x8
    loudness = speech_feature(rec.audio).mean(axis=1)          # the simplest audio-derived feature
    lag, peak = xcorr_lags(rec.neural, loudness)
    good = gt.good_mask
    true = gt.lag_s * 125.0
    assert np.abs(lag[good] - true[good]).max() <= 1.5
    sm = gt.site_kind == "sensorimotor"
    assert 20 <= sm.sum() <= 44
    assert (lag[good & sm] < 0).all() and (lag[good & ~sm] > 0).all()      # lead vs follow
    assert (-0.2 - 1e-9 <= gt.lag_s[sm]).all() and (gt.lag_s[sm] <= -0.05 + 1e-9).all()
    assert abs(gt.lag_s[~sm].mean() - 0.1) < 0.02
    assert np.median(peak[good]) > 0.5                                      # 0 dB: r ~ 0.7 at best


def test_spectral_tuning_recoverable(sim_lin_8x8):
    rec, gt = sim_lin_8x8
    feat = speech_feature(rec.audio)
    z = (feat - feat.mean(0)) / (feat.std(0) + 1e-9)
    x = (rec.neural - rec.neural.mean(0)) / rec.neural.std(0)
    n = len(z)
    est = []
    good = np.flatnonzero(gt.good_mask)
    for ch in good:                       # correlation with every mel bin at the true lag L: x(t) vs z(t - L)
        L = int(round(gt.lag_s[ch] * 125.0))
        xc, zc = (x[L:, ch], z[: n - L]) if L >= 0 else (x[: n + L, ch], z[-L:])
        est.append(np.argmax(zc.T @ xc))
    err = np.asarray(est) - gt.tuning_centre_mel[good]
    assert np.corrcoef(est, gt.tuning_centre_mel[good])[0, 1] > 0.9
    assert np.median(np.abs(err)) < 4.0


def test_measured_snr_equals_stated(sim_lin_8x8):
    rec, gt = sim_lin_8x8
    good = gt.good_mask
    noise = rec.neural - gt.envelope
    measured = 10 * np.log10(gt.signal.var(0) / noise.var(0))
    np.testing.assert_allclose(measured[good], gt.snr_db, atol=0.01)
    # estimated without the noise: r^2 of data vs noiseless envelope -> SNR = r^2 / (1 - r^2)
    r = np.array([np.corrcoef(rec.neural[:, c], gt.envelope[:, c])[0, 1] for c in np.flatnonzero(good)])
    np.testing.assert_allclose(10 * np.log10(r ** 2 / (1 - r ** 2)), gt.snr_db, atol=1.0)
    # the knob: another SNR, with a per-channel spread
    r10, g10 = simulate_participant(SimulateConfig(n_trials=10, snr_db=10.0, snr_spread_db=3.0, encoding="linear"), 1)
    m10 = 10 * np.log10(g10.signal.var(0) / (r10.neural - g10.envelope).var(0))
    np.testing.assert_allclose(m10[g10.good_mask], g10.snr_db_per_channel[g10.good_mask], atol=0.01)
    assert np.all(np.abs(g10.snr_db_per_channel - 10.0) <= 3.0) and g10.snr_db_per_channel.std() > 1.0


def test_noise_is_pink_and_common(sim_lin_8x8):
    rec, gt = sim_lin_8x8
    good = gt.good_mask
    noise = (rec.neural - gt.envelope)[:, good]
    f, p = welch(noise, fs=125.0, nperseg=1024, axis=0)
    low, high = p[(f > 0.5) & (f < 2)].mean(), p[(f > 30) & (f < 60)].mean()
    assert low > 5 * high                                      # 1/f part dominates the slow end
    c = np.corrcoef(noise.T)
    off = c[~np.eye(len(c), dtype=bool)]
    assert 0.1 < np.median(off) < 0.5                          # common-mode share (25 % of the variance)


def test_bad_channels_are_the_flat_and_noisy_ones(sim_lin_8x8):
    rec, gt = sim_lin_8x8
    assert rec.bads == [gt.ch_names[i] for i in gt.bad_channels] and len(rec.bads) == 3
    sd = rec.neural.std(0)
    ratio = sd / np.median(sd)
    outliers = np.flatnonzero((ratio < 0.2) | (ratio > 5))
    np.testing.assert_array_equal(outliers, gt.bad_channels)
    for i, kind in zip(gt.bad_channels, gt.bad_kind):
        assert (ratio[i] < 0.05) if kind == "flat" else (ratio[i] > 10)


def test_tunings_spatially_smooth(sim_lin_8x8):
    _, gt = sim_lin_8x8
    rc = np.array([(i // 8, i % 8) for i in range(64)])
    d = np.abs(rc[:, None] - rc[None]).sum(-1)
    for prop in (gt.tuning_centre_mel, gt.tuning_width_mel, gt.amplitude):
        diff = np.abs(prop[:, None] - prop[None])
        assert diff[d == 1].mean() < 0.8 * diff[d > 4].mean()     # spatially random: ~1.0
    sm = (gt.site_kind == "sensorimotor").reshape(8, 8)
    assert sm[:2].mean() > 0.8 and sm[-2:].mean() < 0.2      # dorsal rows sensorimotor, ventral auditory


# ------------------------------------------------------------------------------------ layouts
@pytest.mark.parametrize("layout,n_channels", [("grid8x8", 64), ("hybrid128", 128), ("hybrid225", 225), ("seeg", None)])
def test_layouts(layout, n_channels):
    rec, gt = simulate_participant(SimulateConfig(n_trials=5, layout=layout, encoding="linear"), 2)
    ch = rec.channels
    if n_channels is not None:
        assert rec.n_channels == n_channels and set(ch["type"]) == {"ecog"}
        assert not ch[["row", "col"]].duplicated().any() and (ch["row"] >= 0).all()
        xy = ch[["x", "y"]].to_numpy()
        pitch_m = 0.010 if layout == "grid8x8" else 0.005
        np.testing.assert_allclose(xy, ch[["col", "row"]].to_numpy() * pitch_m)
        assert np.isfinite(ch[["x", "y", "z"]].to_numpy()).all()
    if layout == "grid8x8":
        assert ch["row"].max() == 7 and ch["col"].max() == 7
    if layout.startswith("hybrid"):
        macro = ch["group"] == "macro"
        assert macro.sum() == 64
        assert ((ch.loc[macro, "row"] % 2 == 0) & (ch.loc[macro, "col"] % 2 == 0)).all()
        assert ch["row"].max() == 14 and ch["col"].max() == 14 or layout == "hybrid128"
        assert rec.meta.grid_density == "hybrid"
    if layout == "hybrid128":
        micro = ch[ch["group"] == "micro"]
        assert len(micro) == 64 and ((micro["row"] + micro["col"]) % 2 == 1).all()
    if layout == "seeg":
        assert set(ch["type"]) == {"seeg"} and (ch["row"] == -1).all() and rec.meta.grid_density == "seeg"
        shafts = ch.groupby("group")
        assert len(shafts) == 6
        for name, g in shafts:
            assert 8 <= len(g) <= 16 and all(n.startswith(name) for n in g["name"])
            step = np.linalg.norm(np.diff(g[["x", "y", "z"]].to_numpy(), axis=0), axis=1)
            np.testing.assert_allclose(step, 0.0035, atol=1e-9)
        xyz = ch[["x", "y", "z"]].to_numpy()
        assert np.abs(xyz).max() < 0.1                      # metres, head-sized
        d = np.linalg.norm(xyz[:, None] - xyz[None], axis=-1)
        diff = np.abs(gt.tuning_centre_mel[:, None] - gt.tuning_centre_mel[None])
        assert diff[(d > 0) & (d < 0.005)].mean() < 0.6 * diff[d > 0.03].mean()
    assert gt.envelope.shape == (rec.n_samples, rec.n_channels)
    assert len(rec.bads) == max(1, round(0.04 * rec.n_channels))


def test_layout_and_config_errors():
    with pytest.raises(ConfigError, match="Invalid layout.*'grid8x8'.*got 'grid8x9'"):
        make_layout("grid8x9", np.random.default_rng(0))
    with pytest.raises(ConfigError, match="n_trials"):
        simulate_participant(SimulateConfig(n_trials=2), 0)
    with pytest.raises(ConfigError, match="simulate.voice.*flite_slt"):
        simulate_participant(SimulateConfig(n_trials=5, voice="flite_slx"), 0)
    with pytest.raises(ConfigError, match="pause_max_s"):
        simulate_participant(SimulateConfig(n_trials=5, pause_min_s=2.0, pause_max_s=1.0), 0)
    with pytest.raises(TypeError, match="rng must be"):
        simulate_participant(SimulateConfig(n_trials=5), "0")


def test_voice_sets_sex():
    rec, gt = simulate_participant(SimulateConfig(n_trials=5, voice="flite_slt"), 0)
    assert rec.meta.sex == "F" and gt.voice == "flite_slt"
    rec, gt = simulate_participant(SimulateConfig(n_trials=5, voice="flite_kal16"), 0)
    assert rec.meta.sex == "M"


# ------------------------------------------------------------------------------------ raw voltage
def _frame_means(x: np.ndarray, sfreq_hz: float, n_frames: int) -> np.ndarray:
    idx = np.minimum(np.round(np.arange(len(x)) / sfreq_hz * 125.0).astype(int), n_frames - 1)
    out = np.zeros((n_frames, x.shape[1]))
    np.add.at(out, idx, x)
    return out / np.bincount(idx, minlength=n_frames)[:, None]


def test_raw_high_gamma_follows_envelope_and_line_noise(sim_lin_raw):
    rec, gt = sim_lin_raw
    assert rec.neural_kind == "raw" and rec.neural_sfreq_hz == 1024.0 and rec.neural_unit == "V"
    assert rec.n_samples == round(rec.audio.shape[0] / 16000 * 1024)
    good = gt.good_mask
    x = rec.neural.astype(np.float64)
    sd_uv = x[:, good].std(0) * 1e6
    assert (10 < sd_uv).all() and (sd_uv < 100).all()                 # tens of microvolts
    f, p = welch(x[:, good], fs=1024.0, nperseg=2048, axis=0)
    pm = p.mean(1)
    at = lambda hz: pm[np.argmin(np.abs(f - hz))]                     # noqa: E731
    assert at(60) > 100 * at(55) and at(120) > 10 * at(115)             # 60 Hz line + harmonic
    assert at(50) < 2 * at(45)
    sos = butter(4, [72, 168], btype="band", fs=1024.0, output="sos")
    env = np.abs(hilbert(sosfiltfilt(sos, x, axis=0), axis=0))
    hg = _frame_means(env, 1024.0, gt.envelope.shape[0])
    r = np.array([np.corrcoef(hg[:, c], gt.envelope[:, c])[0, 1] for c in np.flatnonzero(good)])
    shifted = np.roll(gt.envelope, 500, axis=0)
    r0 = np.array([np.corrcoef(hg[:, c], shifted[:, c])[0, 1] for c in np.flatnonzero(good)])
    assert np.median(r) > 0.3 and np.median(r0) < 0.1
    flat = gt.bad_channels[[k == "flat" for k in gt.bad_kind]]
    assert (x[:, flat].std(0) < 1e-7).all()


def test_raw_line_frequency_is_a_knob():
    rec, gt = simulate_participant(SimulateConfig(n_trials=5, layout="seeg", n_seeg_shafts=1, line_freq_hz=50.0), 3,
                                   kind="raw")
    f, p = welch(rec.neural[:, gt.good_mask].astype(np.float64), fs=1024.0, nperseg=2048, axis=0)
    pm = p.mean(1)
    assert f[np.argmax(np.where(f > 20, pm, 0))] == 50.0 and gt.line_freq_hz == 50.0


# ------------------------------------------------------------------------------------ ground truth file
def test_ground_truth_round_trip(sim_lin_8x8, tmp_path):
    _, gt = sim_lin_8x8
    npz, js = gt.save(tmp_path)
    assert npz.name == "ground_truth.npz" and js.name == "ground_truth.json"
    back = GroundTruth.load(tmp_path)
    for k in GroundTruth._ARRAYS:
        np.testing.assert_array_equal(getattr(back, k), getattr(gt, k))
    assert list(back.site_kind) == list(gt.site_kind) and back.bad_kind == gt.bad_kind
    assert back.encoding == "linear" and back.model_arrays == {}
    assert back.config == gt.config and back.seed == 0 and back.snr_db == 0.0
    with pytest.raises(DataError, match="ground truth file .* missing"):
        GroundTruth.load(tmp_path / "nowhere")
