"""Chance levels, ceiling, evaluate_test_set/evaluate_run plumbing and cv resume.

The decoders here are tiny protocol-level classes (TrialDecoder: ``decode(windows, generator)``):
a "perfect" decoder that recognises each test window and returns its reference, and a noise decoder.
Real speech comes from the shipped corpus when available, else from `flite` rendered into tmp (the test
set and the perfect decoder are shared with tests/test_report.py: they are in tests/conftest.py).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from neurovox.errors import DataError, RunError
from neurovox.evaluate import chance as C
from neurovox.cv import aggregate_folds, run_cv
from neurovox.evaluate.evaluate import check_data_hash, evaluate_run, evaluate_test_set
from tests.conftest import N_LEAD, N_TARGET, PerfectDecoder, make_test_set


@pytest.fixture(scope="module")
def test_set(tmp_path_factory) -> C.TestSet:
    return make_test_set(str(tmp_path_factory.mktemp("speech")))


@dataclass
class NoiseDecoder:
    """Ignores its input: a random spectrogram and white noise."""

    level_db: float
    n_lead_frames: int = N_LEAD
    n_target_frames: int = N_TARGET
    synthesis: str = "formant"

    def decode(self, neural_windows, generator=None):
        n = len(neural_windows)
        mel = self.level_db + 10 * torch.randn(n, self.n_target_frames, 80, generator=generator)
        audio = 0.05 * torch.randn(n, self.n_target_frames * 128, generator=generator)
        return {"mel_db": mel.numpy(), "audio": audio.numpy()}


def _noisy_resynthesis(audio: np.ndarray) -> np.ndarray:
    """Stand-in for a speech model's resynthesis, deliberately not the identity (so that the ceiling cannot
    be mistaken for the decoded scores): the reference plus white noise of SD 0.02 (speech peaks at 0.5)."""
    return audio + 0.02 * np.random.default_rng(1).standard_normal(audio.shape).astype(np.float32)


@pytest.fixture(scope="module")
def perfect_result(test_set, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "perfect"
    res = evaluate_test_set(PerfectDecoder(test_set), test_set, out, seed=0, resynthesize=_noisy_resynthesis,
                            n_boot=300, title="perfect decoder", max_trial_figures=3)
    return out, res


def test_derangement_and_circular_shift():
    gen = np.random.default_rng(1)
    for n in (2, 3, 10):
        perm = C.derangement(n, gen)
        assert sorted(perm.tolist()) == list(range(n)) and not np.any(perm == np.arange(n))
    series = np.arange(1000, dtype=float)[:, None]
    starts = np.array([0, 500])
    for _ in range(50):
        win, shift = C.circular_shift_windows(series, starts, 20, gen)
        assert 100 <= shift <= 900
        assert win[0, 0, 0] == (0 - shift) % 1000 and win.shape == (2, 20, 1)
    with pytest.raises(DataError, match="at least 2"):
        C.derangement(1, gen)


def test_perfect_decoder_scores_1_and_the_ceiling_scores_the_resynthesis(perfect_result, test_set):
    from pystoi import stoi as pystoi_stoi

    _, res = perfect_result
    m, ceil = res["metrics"], res["ceiling"]
    for name in ("pcc", "stoi", "estoi", "stoi_plus"):
        assert m[name]["mean"] == pytest.approx(1.0, abs=1e-6)
        assert m[name]["n"] == 8
    # The ceiling is the resynthesis of the reference audio scored against the references; here computed
    # independently: Pearson r over each trial's speech frames (numpy) and STOI (pystoi).
    resynth = _noisy_resynthesis(test_set.audio)
    mel = C.audio_to_mel_db(resynth)
    pcc = [np.corrcoef(test_set.mel_db[i][mask].ravel(), mel[i][mask].ravel())[0, 1]
           for i, mask in enumerate(test_set.speech_mask)]
    stoi = [pystoi_stoi(test_set.audio[i].astype(np.float64), resynth[i].astype(np.float64), 16_000)
            for i in range(len(resynth))]
    np.testing.assert_allclose(res["per_trial"]["ceiling"]["pcc"], pcc, rtol=0, atol=1e-9)
    np.testing.assert_allclose(res["per_trial"]["ceiling"]["stoi"], stoi, rtol=0, atol=1e-9)
    assert ceil["pcc"]["mean"] == pytest.approx(np.mean(pcc), abs=1e-9) and ceil["pcc"]["n"] == 8
    assert ceil["stoi"]["mean"] == pytest.approx(np.mean(stoi), abs=1e-9)
    assert ceil["pcc"]["mean"] < 0.99 and ceil["stoi"]["mean"] < 0.99  # the noise costs something: not the identity
    assert m["mcd_db"]["mean"] == pytest.approx(0.0, abs=1e-9)
    assert m["pcc_per_bin"]["mean"] == pytest.approx(1.0, abs=1e-9)
    # other trials' speech is far from each trial's own: chance is well below the ceiling
    for kind in ("shuffled", "circular_shift"):
        assert res["chance"][kind]["pcc"]["mean"] < 0.85
        assert res["chance"][kind]["stoi"]["mean"] < 0.75
        assert res["metrics"]["pcc"]["ci_low"] > res["chance"][kind]["pcc"]["ci_high"]
    draws = res["chance_draws"]["shuffled"][0]
    assert not np.any(np.array(draws) == np.arange(8))


def test_noise_decoder_scores_at_chance(tmp_path):
    test_set = make_test_set(str(tmp_path), n_trials=16)
    level = float(np.mean(test_set.mel_db))
    res = evaluate_test_set(NoiseDecoder(level), test_set, tmp_path / "noise", seed=3, n_boot=200, write_report=False,
                            n_chance_repeats=2)
    m, ch = res["metrics"], res["chance"]
    assert abs(m["pcc"]["mean"]) < 0.05
    for kind in ("shuffled", "circular_shift"):
        for name, max_tol in (("pcc", 0.02), ("stoi", 0.1), ("estoi", 0.05), ("stoi_plus", 0.05), ("mcd_db", 0.5)):
            # equal within 3 combined SEMs (trial-to-trial noise), and that band is itself narrow
            tol = 3 * np.hypot(m[name]["sem"], ch[kind][name]["sem"])
            assert tol < max_tol, (kind, name, tol)
            assert m[name]["mean"] == pytest.approx(ch[kind][name]["mean"], abs=tol), (kind, name)
    assert res["ceiling"] is None and "ceiling not computed" in res["ceiling_note"]
    assert not (tmp_path / "noise" / "report.html").exists()
    assert (tmp_path / "noise" / "metrics.json").exists()


def test_metrics_json_contents(perfect_result, test_set):
    out, res = perfect_result
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["seed"] == 0 and saved["n_trials"] == 8 and "git_hash" in saved and "neurovox_version" in saved
    assert set(saved["chance"]) == {"shuffled", "circular_shift"}
    assert len(saved["per_trial"]["decoded"]["pcc"]) == 8
    assert set(saved["per_trial"]) == {"decoded", "chance_shuffled", "chance_circular_shift", "ceiling"}
    import soundfile as sf

    wave, sr = sf.read(out / saved["trials"][0]["wav_reference"])
    assert sr == 16_000 and len(wave) == N_TARGET * 128
    assert np.corrcoef(wave, test_set.audio[0])[0, 1] > 0.999


def test_score_rejects_bad_shapes(test_set):
    bad = {"mel_db": test_set.mel_db[:, :10], "audio": test_set.audio}
    with pytest.raises(DataError, match="n_target_frames"):
        C.score_trials(test_set, bad)


def _fake_run(tmp_path: Path, data: Path) -> Path:
    from dataclasses import dataclass as dc

    from neurovox.runs import start_run

    @dc
    class Cfg:
        seed: int = 0  # RNG seed

    run = start_run(tmp_path / "run", kind="decoder", config=Cfg(), seed=0, data_path=data)
    run.mark_done()
    return run.path


def test_evaluate_run_refuses_other_data(tmp_path):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    a.write_bytes(b"training data")
    b.write_bytes(b"other data")
    run = _fake_run(tmp_path, a)
    with pytest.raises(RunError, match="--allow-other-data"):
        evaluate_run(run, b, tmp_path / "out")
    meta = check_data_hash(run, b, allow_other_data=True)
    assert meta["matches_training_data"] is False and meta["allow_other_data"] is True
    assert check_data_hash(run, a)["matches_training_data"] is True
    with pytest.raises(DataError, match="does not exist"):
        check_data_hash(run, tmp_path / "missing.h5")


def test_cv_runs_folds_once_and_aggregates(tmp_path):
    data = tmp_path / "d.h5"
    data.write_bytes(b"x")
    calls = []

    def train(*, model, fold, run_dir, **kw):
        calls.append((model, fold))
        run_dir.mkdir(parents=True)
        return run_dir

    def evaluate(run_dir, data_path, out_dir, seed, speech_run):
        model, fold = calls[-1]
        value = {"resnet": 0.6, "linear": 0.3}[model] + 0.01 * fold
        return {"metrics": {"pcc": {"mean": value, "sem": 0.01}},
                "chance": {"shuffled": {"pcc": {"mean": 0.02 * fold}}}, "ceiling": {"pcc": {"mean": 0.9}}}

    summary = run_cv(data, ["resnet", "linear"], tmp_path / "cv", n_folds=3, train_fn=train, evaluate_fn=evaluate,
                     progress=False)
    assert len(calls) == 6
    agg = summary["models"]["resnet"]["metrics"]["pcc"]
    vals = np.array([0.6, 0.61, 0.62])
    assert agg["mean"] == pytest.approx(vals.mean()) and agg["sem"] == pytest.approx(vals.std(ddof=1) / np.sqrt(3))
    assert summary["models"]["linear"]["chance"]["shuffled"]["pcc"]["mean"] == pytest.approx(0.02)
    assert (tmp_path / "cv" / "report.html").stat().st_size > 0
    # rerun: every fold has DONE, nothing is recomputed; a deleted DONE reruns that fold only
    (tmp_path / "cv" / "linear" / "fold1" / "DONE").unlink()
    shutil.rmtree(tmp_path / "cv" / "linear" / "fold1" / "run")
    run_cv(data, ["resnet", "linear"], tmp_path / "cv", n_folds=3, train_fn=train, evaluate_fn=evaluate, progress=False)
    assert calls[6:] == [("linear", 1)]
    assert aggregate_folds([])["metrics"] is None


@pytest.mark.slow
def test_evaluate_run_end_to_end_linear(tmp_path):
    """Real pipeline: simulate -> train the linear baseline (--quick) -> `neurovox evaluate` (about 2 min)."""
    from neurovox.cli import main

    sim, run, cache = tmp_path / "sim", tmp_path / "lin", tmp_path / "cache"
    # linear encoding: the margins below were measured on it (the realistic participant's are in tests/test_demo.py)
    assert main(["simulate", "--out", str(sim), "--kind", "high_gamma", "--n-trials", "100", "--snr-db", "5",
                 "--encoding", "linear"]) == 0
    data = next(sim.glob("*.h5"))
    assert main(["train", "decoder", "--data", str(data), "--model", "linear", "--out", str(run), "--quick",
                 "--cache-dir", str(cache)]) == 0
    assert main(["evaluate", "--run", str(run), "--data", str(data), "--cache-dir", str(cache),
                 "--n-boot", "300"]) == 0
    res = json.loads((run / "eval" / "metrics.json").read_text())
    assert res["n_trials"] == 50 and res["data"]["matches_training_data"] is True
    for name in ("pcc", "stoi", "estoi", "pcc_per_bin"):
        for kind in ("shuffled", "circular_shift"):
            assert res["metrics"][name]["ci_low"] > res["chance"][kind][name]["mean"] + 0.1, (name, kind)
    assert res["metrics"]["mcd_db"]["mean"] < res["chance"]["shuffled"]["mcd_db"]["mean"]
    assert (run / "eval" / "report.html").stat().st_size > 0
    other = tmp_path / "other.h5"
    other.write_bytes(data.read_bytes() + b"\0")
    assert main(["evaluate", "--run", str(run), "--data", str(other)]) == 2  # refused: not the training file


def test_ceiling_from_a_speech_run(test_set, tmp_path):
    """The ceiling adapter loads a speech run (encoder + synth) and resynthesises the references."""
    from dataclasses import dataclass as dc

    from neurovox.encoder.model import EncoderConfig, SpeechEncoder
    from neurovox.encoder.train import save_speech_model
    from neurovox.evaluate.evaluate import speech_resynthesizer
    from neurovox.runs import start_run
    from neurovox.synth import FormantSynth, SynthConfig

    @dc
    class Cfg:
        seed: int = 0  # RNG seed

    torch.manual_seed(0)
    run = start_run(tmp_path / "speech", kind="speech", config=Cfg(), seed=0)
    save_speech_model(run.path / "model.pt", SpeechEncoder(EncoderConfig(hidden=16, n_blocks=1)), FormantSynth(SynthConfig()))
    run.mark_done()
    small = C.TestSet(neural_windows=test_set.neural_windows[:3], mel_db=test_set.mel_db[:3], audio=test_set.audio[:3],
                      speech_mask=test_set.speech_mask[:3], n_lead_frames=N_LEAD,
                      train_mel_mean_db=test_set.train_mel_mean_db)
    resynth = speech_resynthesizer(run.path)
    out = resynth(small.audio)
    assert out["audio"].shape == small.audio.shape and out["mel_db"].shape == small.mel_db.shape
    assert np.isfinite(out["audio"]).all() and out["audio"].std() > 0
    ceil = C.ceiling(resynth, small, np.random.default_rng(0), n_boot=50)
    assert set(ceil["summary"]) == set(C.SUMMARY_METRICS)
    assert np.isfinite(ceil["per_trial"]["pcc"]).all() and np.all(np.abs(ceil["per_trial"]["pcc"]) <= 1)
    # the resynthesis is reproducible (seeded noise), and the ceiling scores it: Pearson r computed here
    pcc = [np.corrcoef(small.mel_db[i][mask].ravel(), out["mel_db"][i][mask].ravel())[0, 1]
           for i, mask in enumerate(small.speech_mask)]
    np.testing.assert_allclose(ceil["per_trial"]["pcc"], pcc, rtol=0, atol=1e-9)


def test_evaluate_uses_the_runs_window_sizes(speech_run_tiny10, tmp_path):
    """Runs trained with 64 target + 8 lead frames (not the default 128 + 16) are evaluated with their own
    windows: the decoders get (n, 72, n_channels) windows, and metrics, chance, ceiling and WAVs cover
    64 frames (linear baseline and a deep decoder; tiny 10-word participant, 2 test trials). A run config
    without its window size is refused."""
    import soundfile as sf

    from neurovox.config import load_config
    from neurovox.decoders.train import DecoderRunConfig, train_decoder
    from neurovox.io import write_flinker_hdf5
    from neurovox.simulate import SimulateConfig, simulate_participant

    rec, _ = simulate_participant(SimulateConfig(n_trials=10), 0, kind="high_gamma")
    data = write_flinker_hdf5(rec, tmp_path / "sim.h5")
    cache = tmp_path / "cache"
    base = ["prepare.praat=false", "split.scheme=kfold", "split.n_folds=5", "decoder.n_target_frames=64",
            "decoder.n_lead_frames=8"]
    deep = ["decoder.rnn_hidden=16", "decoder.rnn_layers=1", "decoder.max_epochs=2", "decoder.ref_only_steps=100000",
            "decoder.train_crop_frames=8", "decoder.spec_ffts=[512]", "decoder.target=formant"]
    for model, extra in (("linear", ["decoder.linear_passes=1"]), ("lstm", deep)):
        torch.manual_seed(0)
        cfg = load_config(DecoderRunConfig, None, base + [f"decoder.model={model}"] + extra)
        run = train_decoder(data, tmp_path / model, cfg, speech_run=None if model == "linear" else speech_run_tiny10,
                            progress=False, cache_dir=cache)
        out = tmp_path / f"eval_{model}"
        res = evaluate_run(run, data, out, speech_run=speech_run_tiny10, n_boot=50, cache_dir=cache)
        assert res["n_trials"] == 2 and res["config"]["decoder"]["n_target_frames"] == 64, model
        # the formant resynthesis bounds only the deep decoder (the linear model predicts the mel directly)
        assert (res["ceiling"] is None) == (model == "linear"), model
        parts = [res["metrics"], res["chance"]["shuffled"], res["chance"]["circular_shift"],
                 *res["baselines"].values()] + ([res["ceiling"]] if model != "linear" else [])
        for part in parts:
            assert np.isfinite(part["pcc"]["mean"]) and np.isfinite(part["mcd_db"]["mean"]), model
        for row in res["trials"]:
            for name in ("decoded", "reference", "onset_mean") + (("resynthesis",) if model != "linear" else ()):
                wave, rate = sf.read(out / row[f"wav_{name}"])
                assert rate == 16000 and wave.shape == (64 * 128,), (model, name)
        assert (out / "report.html").stat().st_size > 0
    # A run whose config does not say its window size is refused, never decoded with the default 16 + 128.
    from neurovox.decoders import load_trial_decoder

    config = tmp_path / "linear" / "config.yaml"
    config.write_text("\n".join(line for line in config.read_text().splitlines() if "n_lead_frames" not in line))
    with pytest.raises(RunError, match="no decoder.n_lead_frames"):
        load_trial_decoder(tmp_path / "linear")
