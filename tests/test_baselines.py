"""No-neural baselines, tilt-removed PCC, paired gains and seen/unseen words (issue 14).

The end-to-end test trains the linear decoder on the suite's simulated participant, evaluates it as
`neurovox evaluate` does, and recomputes the no-neural baselines and their scores from the prepared
recording with code written independently of `neurovox.evaluate.baselines` (frame by frame, scipy's
pearsonr): metrics.json must agree to 1e-6.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import pearsonr, wilcoxon

from neurovox.errors import DataError
from neurovox.evaluate import metrics as M


# ------------------------------------------------------------------------------------------ unit level

def test_tilt_removed_pcc_definition(rng):
    ref = rng.normal(size=(4, 30, 80)).cumsum(1)
    dec = ref + rng.normal(scale=2.0, size=ref.shape)
    mean = rng.normal(size=80) * 10
    mask = np.ones((4, 30), bool)
    mask[1, :5] = False
    got = M.pcc_tilt_removed(ref, dec, mean, mask)
    for i in range(4):
        want = pearsonr((ref[i][mask[i]] - mean).ravel(), (dec[i][mask[i]] - mean).ravel())[0]
        assert got[i] == pytest.approx(want, abs=1e-12)
    # the training mean itself carries nothing: exactly 0, while the plain PCC rewards its tilt
    tilt = np.linspace(20, -40, 80)
    spec = tilt + rng.normal(size=(4, 30, 80))
    constant = np.broadcast_to(tilt, spec.shape)
    assert np.all(M.pcc_tilt_removed(spec, constant, tilt) == 0.0)
    assert np.all(M.pcc_per_trial(spec, constant) > 0.95)
    assert np.allclose(M.pcc_tilt_removed(spec, spec, tilt), 1.0)
    with pytest.raises(DataError, match="one value per mel bin"):
        M.pcc_tilt_removed(spec, spec, tilt[:10])


def test_paired_gain(rng):
    base = rng.normal(0.6, 0.1, size=40)
    better = base + 0.05 + rng.normal(0, 0.01, size=40)
    g = M.paired_gain(better, base, generator=np.random.default_rng(0))
    assert g["mean"] == pytest.approx(np.mean(better - base), abs=1e-12)
    assert g["above"] and g["ci_low"] > 0 and g["n"] == 40
    assert g["p_wilcoxon"] == pytest.approx(wilcoxon(better - base).pvalue, abs=1e-12)
    same = base + rng.normal(0, 0.05, size=40)
    g0 = M.paired_gain(same, base, generator=np.random.default_rng(0))
    assert g0["ci_low"] < 0 < g0["ci_high"] and not g0["above"]
    # distances: lower is better, the gain is still positive for an improvement
    gd = M.paired_gain(base - 0.1, base, higher_is_better=False, generator=np.random.default_rng(0))
    assert gd["mean"] == pytest.approx(0.1) and gd["above"]
    assert M.paired_gain(base, base)["p_wilcoxon"] == 1.0


# ------------------------------------------------------------------------------------------ end to end

@pytest.fixture(scope="module")
def linear_eval(sim_hg_path, tmp_path_factory):
    from neurovox.config import load_config
    from neurovox.decoders.train import DecoderRunConfig, train_decoder
    from neurovox.evaluate.evaluate import evaluate_run

    root = tmp_path_factory.mktemp("baselines")
    cfg = load_config(DecoderRunConfig, None, ["decoder.model=linear", "prepare.praat=false"])
    run = train_decoder(sim_hg_path, root / "run", cfg, progress=False, cache_dir=root / "cache")
    result = evaluate_run(run, sim_hg_path, root / "eval", seed=0, n_boot=200, cache_dir=root / "cache")
    return run, root, result


def _independent_baselines(sim_hg_path, cfg, cache):
    """Baseline predictions for the flinker test windows, computed frame by frame."""
    from neurovox.io import read_recording
    from neurovox.preprocess import make_split, prepare

    prep = prepare(read_recording(sim_hg_path), cfg, cache)
    split = make_split(prep, "flinker")
    on = prep.trials["onset_frame"].to_numpy()
    off = prep.trials["offset_frame"].to_numpy()
    mel = prep.mel_db.astype(np.float64)
    n, T = prep.n_frames, 128
    speech = np.zeros(n, bool)
    for a, b in zip(on, off):
        speech[a:b] = True
    train_speech = np.zeros(n, bool)
    for r in split.train_trials:
        train_speech[on[r]:off[r]] = True
    train_speech &= split.train_frame_mask
    speech_mean = mel[train_speech].mean(0)
    silence_mean = mel[split.train_frame_mask & ~speech].mean(0)
    template = np.mean([mel[s:s + T] for s in np.clip(on[split.train_trials] - 32, 16, n - T)
                        if split.train_frame_mask[s:s + T].all()], axis=0)
    preds, refs, masks = [], [], []
    for r in split.test_trials:
        s = int(np.clip(on[r] - 32, 16, n - T))
        pred = np.empty((T, mel.shape[1]))
        for k, f in enumerate(range(s, s + T)):
            covering = [o for o in on if o - 32 <= f < o - 32 + T]   # trials whose template covers frame f
            pred[k] = template[f - (max(covering) - 32)] if covering else silence_mean
        preds.append(pred)
        refs.append(mel[s:s + T])
        masks.append((np.arange(s, s + T) >= on[r]) & (np.arange(s, s + T) < off[r]))
    return np.array(preds), np.array(refs), np.array(masks), speech_mean


def test_no_neural_baseline_matches_independent_computation(linear_eval, sim_hg_path):
    from neurovox.preprocess import PrepareConfig

    run, root, result = linear_eval
    saved = json.loads((root / "eval" / "metrics.json").read_text())
    cfg = PrepareConfig(praat=False)
    preds, refs, masks, speech_mean = _independent_baselines(sim_hg_path, cfg, root / "cache")
    assert saved["n_trials"] == len(preds)
    pcc = [pearsonr(r[m].ravel(), p[m].ravel())[0] for r, p, m in zip(refs, preds, masks)]
    tilt = [pearsonr((r[m] - speech_mean).ravel(), (p[m] - speech_mean).ravel())[0] for r, p, m in zip(refs, preds, masks)]
    onset = saved["baselines"]["onset_mean"]
    assert onset["pcc"]["mean"] == pytest.approx(np.mean(pcc), abs=1e-6)
    assert onset["pcc_tilt"]["mean"] == pytest.approx(np.mean(tilt), abs=1e-6)
    const_pcc = [pearsonr(r[m].ravel(), np.broadcast_to(speech_mean, r[m].shape).ravel())[0]
                 for r, m in zip(refs, masks)]
    assert saved["baselines"]["constant_spectrum"]["pcc"]["mean"] == pytest.approx(np.mean(const_pcc), abs=1e-6)
    assert saved["baselines"]["constant_spectrum"]["pcc_tilt"]["mean"] == 0.0
    # the gain is the paired difference of the saved per-trial values
    dec = np.array(saved["per_trial"]["decoded"]["pcc_tilt"], float)
    base = np.array(saved["per_trial"]["baseline_onset_mean"]["pcc_tilt"], float)
    assert saved["gain"]["onset_mean"]["pcc_tilt"]["mean"] == pytest.approx(np.nanmean(dec - base), abs=1e-9)
    # the baselines are not trivial: speech-like output scores high on the plain PCC
    assert onset["pcc"]["mean"] > saved["baselines"]["constant_spectrum"]["pcc"]["mean"] > 0.4


def test_metrics_json_reports_baselines_words_and_honest_ceiling(linear_eval, sim_hg_path):
    run, root, result = linear_eval
    for key in ("baselines", "gain", "by_word", "baseline_info"):
        assert result[key], key
    assert set(result["gain"]) == {"constant_spectrum", "onset_mean", "chance_shuffled", "chance_circular_shift"}
    # seen = the test trial's word is among the training/validation trials' words (60 trials of 50 words: both occur)
    from neurovox.io import read_recording

    labels = read_recording(sim_hg_path).trials["label"].astype(str).to_numpy()
    test_rows = [row["trial"] for row in result["trials"]]
    train_words = set(labels[np.setdiff1d(np.arange(len(labels)), test_rows)])
    want = [labels[t] in train_words for t in test_rows]
    assert [row["seen_word"] for row in result["trials"]] == want
    assert result["by_word"]["seen"]["n_trials"] == sum(want) >= 2
    assert result["by_word"]["unseen"]["n_trials"] == len(want) - sum(want) >= 2
    unseen = result["by_word"]["unseen"]
    assert set(unseen["words"]) == {labels[t] for t, w in zip(test_rows, want) if not w}
    assert unseen["gain"]["onset_mean"]["pcc_tilt"]["n"] == unseen["n_trials"]
    assert (root / "eval" / result["trials"][0]["wav_onset_mean"]).exists()
    # the linear model predicts the mel directly: the formant resynthesis does not bound it
    assert result["ceiling"] is None
    html = (root / "eval" / "report.html").read_text()
    for text in ("no-neural: onset-aligned mean", "gain over onset-aligned mean", "PCC, tilt removed",
                 "Seen and unseen words"):
        assert text in html, text


def test_leave_one_word_out_reports_unseen_words(sim_hg_8x8):
    from neurovox.evaluate.baselines import baseline_windows, seen_words
    from neurovox.preprocess.splits import train_speech_mean_db
    from neurovox.preprocess import PrepareConfig, make_split, prepare

    prep = prepare(sim_hg_8x8[0], PrepareConfig(praat=False), use_cache=False)
    split = make_split(prep, "lowo", fold=0)
    seen = seen_words(prep, split, split.test_trials)
    assert len(seen) > 0 and not any(seen)
    flinker = make_split(prep, "flinker")
    assert 0 < sum(seen_words(prep, flinker, flinker.test_trials)) < len(flinker.test_trials)  # 60 trials, 50 words
    assert seen_words(prep, flinker, np.array([-1]))[0] is None
    # statistics come from training frames only: changing the test trials' audio features changes nothing
    mean = train_speech_mean_db(prep, flinker)
    starts = prep.trials["onset_frame"].to_numpy()[flinker.test_trials] - 32
    windows = baseline_windows(prep, flinker, starts)
    import dataclasses

    poisoned = prep.mel_db.copy()
    poisoned[flinker.test_frame_mask] += 50.0
    prep2 = dataclasses.replace(prep, mel_db=poisoned)
    assert np.array_equal(train_speech_mean_db(prep2, flinker), mean)
    windows2 = baseline_windows(prep2, flinker, starts)
    for name in windows:
        assert np.array_equal(windows[name], windows2[name]), name


@pytest.mark.slow  # ~40 s on 2 cores: one linear fit and evaluation per word
def test_cv_leave_one_word_out_pools_unseen_word_gains(sim_hg_8x8, tmp_path, capsys):
    """`neurovox cv --split lowo` with the linear decoder: every test trial is an unseen word, and the
    gains over the no-neural baselines are pooled over the folds' test trials (each tested once).
    The 60 trials are relabelled with 3 words (20 trials each) so that leave-one-word-out has 3 folds."""
    from neurovox.cli import main
    from neurovox.io import write_flinker_hdf5

    rec = sim_hg_8x8[0]
    trials = rec.trials.copy()
    trials["label"] = np.array(["alpha", "bravo", "charlie"])[np.arange(len(trials)) % 3]
    data = write_flinker_hdf5(rec.replace(trials=trials), tmp_path / "three_words.h5")
    out = tmp_path / "cv"
    assert main(["cv", "--data", str(data), "--models", "linear", "--split", "lowo", "--out", str(out),
                 "--cache-dir", str(tmp_path / "cache"), "--set", "prepare.praat=false"]) == 0
    summary = json.loads((out / "cv_summary.json").read_text())["models"]["linear"]
    assert summary["n_folds"] == 3
    unseen = summary["by_word"]["unseen"]
    assert unseen["n_trials"] == len(trials) and summary["by_word"]["seen"]["n_trials"] == 0
    assert unseen["words"] == ["alpha", "bravo", "charlie"]
    folds = [json.loads((out / "linear" / f"fold{k}" / "DONE").read_text()) for k in range(3)]
    dec = np.concatenate([f["per_trial"]["decoded"]["pcc_tilt"] for f in folds]).astype(float)
    base = np.concatenate([f["per_trial"]["baseline_onset_mean"]["pcc_tilt"] for f in folds]).astype(float)
    assert summary["gain"]["onset_mean"]["pcc_tilt"]["mean"] == pytest.approx(np.nanmean(dec - base), abs=1e-9)
    assert summary["baselines"]["onset_mean"]["pcc"]["n_folds"] == 3
    printed = capsys.readouterr().out
    assert "gain over no-neural" in printed and "unseen" in printed
    assert "Seen and unseen words" in (out / "report.html").read_text()
