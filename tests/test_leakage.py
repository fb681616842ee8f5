"""Issue #14, item 4: no test audio in any training set, enforced.

Each leak of the issue is built here and must be refused with a one-line error (CLI: exit 2) before
anything is written: a speech run that heard the test trials (decoder, cv, likelihood/dps, evaluate), a
prior that heard the test trials or a simulated participant's corpus voice, SWPD test windows that score
training frames, and noise / baseline statistics that pool test trials. Runs that only feed a check
(speech runs, priors) are made without training: `start_run` + the record their training writes
(`neurovox.preprocess.leakage.record_training_data`), so every test takes seconds. One real `train speech`
(2 steps) checks that training writes that record.
"""

import json

import numpy as np
import pytest

from neurovox.cli import main
from neurovox.errors import RunError
from neurovox.preprocess import make_split, prepare
from neurovox.preprocess.config import PrepareConfig
from neurovox.preprocess.leakage import (TRAINING_KEY, audio_sha256, check_speech_run, record_training_data,
                                         recording_source, simulated_voice)

NOPRAAT = PrepareConfig(praat=False)
KFOLD = ["--set", "split.scheme=kfold", "--set", "split.n_folds=5"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(data path, Recording, Prepared, cache dir, root): 20 words on the 8x8 grid, seed 0 (voice flite_awb)."""
    from neurovox.io import read_recording, write_flinker_hdf5
    from neurovox.simulate import SimulateConfig, simulate_participant

    root = tmp_path_factory.mktemp("leak")
    rec, gt = simulate_participant(SimulateConfig(n_trials=20), 0, kind="high_gamma")
    path = write_flinker_hdf5(rec, root / "sim.h5")
    cache = root / "cache"
    rec = read_recording(path)
    return path, rec, prepare(rec, NOPRAAT, cache), cache, root, gt.voice


def _run_with_record(path, kind, prepared, split, data_path=None, config=None):
    """A finished run of `kind` whose run.json says it trained on `split` of `prepared` (no training)."""
    from dataclasses import dataclass

    from neurovox.runs import start_run

    @dataclass
    class Cfg:
        seed: int = 0  # RNG seed

    run = start_run(path, kind=kind, config=config or Cfg(), seed=0, data_path=data_path)
    if split is not None:
        record_training_data(run, [recording_source(prepared, split, path=data_path)])
    run.mark_done()
    return run.path


def _speech_run(root, name, tiny, scheme="flinker", fold=0, n_folds=10):
    path, _, prepared, *_ = tiny
    split = make_split(prepared, scheme, fold=fold, n_folds=n_folds)
    return _run_with_record(root / name, "speech", prepared, split, data_path=path)


def _one_line_exit_2(capsys, argv, match):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert match in err, err
    return err


# ----------------------------------------------------------------------------- speech runs

def test_train_speech_records_its_split_and_trials(tiny, tmp_path):
    """`train speech` takes the decoders' split settings and writes the split, the trials and the data hashes
    to run.json before training; the synthesizer's noise spectrum comes from training frames only."""
    path, _, prepared, cache, *_ = tiny
    out = tmp_path / "speech"
    argv = ["train", "speech", "--data", str(path), "--out", str(out), *KFOLD, "--set", "split.fold=2",
            "--set", "prepare.praat=false", "--set", "speech.max_steps=2", "--set", "speech.batch_size=2",
            "--set", "speech.n_frames=64", "--set", "speech.n_examples=0", "--set", "speech.warmup_steps=1",
            "--set", "encoder.hidden=16", "--set", "encoder.n_blocks=1"]
    assert main(argv) == 0
    meta = json.loads((out / "run.json").read_text())
    (src,) = meta[TRAINING_KEY]
    split = make_split(prepared, "kfold", fold=2, n_folds=5)
    assert src["split"] == {"scheme": "kfold", "fold": 2, "n_folds": 5, "seed": 0}
    assert src["test_trials"] == split.test_trials.tolist() and src["train_trials"] == split.train_trials.tolist()
    assert not set(src["trained_trials"]) & set(src["test_trials"])
    assert src["file_sha256"] == meta["data_sha256"] == prepared.source_sha256
    assert src["audio_sha256"] == audio_sha256(prepared.audio, prepared.trials)
    assert "training frames" in json.loads((out / "metrics.json").read_text())["noise_spectrum"]


def test_decoder_refuses_a_speech_run_that_heard_its_test_trials(tiny, tmp_path, capsys):
    """The leak: one flinker speech run reused for a kfold decoder. Refused, nothing written; the matching
    fold's speech run passes the check."""
    path, _, prepared, cache, root, _ = tiny
    speech = _speech_run(tmp_path, "speech_flinker", tiny)
    out = tmp_path / "dec"
    err = _one_line_exit_2(capsys, ["train", "decoder", "--data", str(path), "--speech", str(speech), "--model", "lstm", "--target", "formant",
                                    "--out", str(out), "--cache-dir", str(cache), "--set", "prepare.praat=false",
                                    *KFOLD, "--set", "split.fold=4"], "test trials of")
    assert "--set split.scheme=kfold --set split.fold=4 --set split.n_folds=5" in err and "retrain" in err.lower()
    assert not out.exists()
    fold4 = _speech_run(tmp_path, "speech_fold4", tiny, "kfold", 4, 5)
    check_speech_run(fold4, prepared, make_split(prepared, "kfold", fold=4, n_folds=5), data=path)


def test_speech_run_of_another_recording_or_without_record_is_refused(tiny, tmp_path):
    path, _, prepared, *_ = tiny
    from neurovox.simulate import SimulateConfig, simulate_participant

    other_rec, _ = simulate_participant(SimulateConfig(n_trials=20), 1, kind="high_gamma")
    other = prepare(other_rec, NOPRAAT, use_cache=False)
    other_run = _run_with_record(tmp_path / "other", "speech", other, make_split(other, "flinker"))
    split = make_split(prepared, "flinker")
    with pytest.raises(RunError, match=r"trained on another recording .* this participant's own recording: "
                                        r"neurovox train speech --data"):
        check_speech_run(other_run, prepared, split, data=path)
    old = _run_with_record(tmp_path / "old", "speech", prepared, None, data_path=path)
    with pytest.raises(RunError, match="does not record which trials it trained on .* retrain it"):
        check_speech_run(old, prepared, split, data=path)
    # same audio and trial table in another file (another layout of the same simulated participant): accepted
    same_audio = _run_with_record(tmp_path / "mem", "speech", prepare(tiny[1], NOPRAAT, use_cache=False), split)
    check_speech_run(same_audio, prepared, split, data=path)


def test_cv_refuses_a_speech_run_that_heard_a_folds_test_trials(tiny, tmp_path, capsys):
    path, _, _, cache, *_ = tiny
    speech = _speech_run(tmp_path, "speech_flinker", tiny)
    out = tmp_path / "cv"
    err = _one_line_exit_2(capsys, ["cv", "--data", str(path), "--speech", str(speech), "--models", "lstm",
                                    "--split", "kfold", "--folds", "5", "--out", str(out), "--cache-dir", str(cache),
                                    "--set", "prepare.praat=false"], "cross-validation fold 0")
    assert "--train-speech" in err
    assert not out.exists()


# ----------------------------------------------------------------------------- priors

def test_prior_records_sources_and_hears_only_training_trials(tiny):
    """`train prior --speech FILE` keeps only the frames outside the test trials of a split (default flinker)
    and records file, SHA-256 and trials; excluded corpus voices are recorded as such."""
    from neurovox.diffusion.speech_data import RecordingSplit, collect_speech

    path, rec, prepared, *_ = tiny
    sources = []
    streams = collect_speech([path], use_corpus=False, sources=sources)
    (src,) = sources
    split = make_split(prepared, "flinker")
    assert src["test_trials"] == split.test_trials.tolist() and src["file_sha256"] == prepared.source_sha256
    assert src["voice"] == tiny[5]
    n_used = sum(s.mel_db.shape[0] for s in streams)
    assert n_used <= int((~split.test_frame_mask).sum()) and n_used == src["n_frames_used"]
    assert n_used < prepared.n_frames - 0.3 * int(split.test_frame_mask.sum())
    sources = []
    collect_speech([path], use_corpus=False, sources=sources, split=RecordingSplit("kfold", 1, 5))
    assert sources[0]["split"]["scheme"] == "kfold"


def _prior_run(tmp_path, name, sources):
    from dataclasses import dataclass

    from neurovox.runs import start_run

    @dataclass
    class Cfg:
        seed: int = 0  # RNG seed

    run = start_run(tmp_path / name, kind="prior", config=Cfg(), seed=0)
    record_training_data(run, sources)
    run.mark_done()
    return run.path


def test_likelihood_refuses_a_prior_that_heard_the_voice_or_the_test_trials(tiny, tmp_path, capsys):
    """The leaks: the default prior (whole corpus) on a simulated participant, which speaks one corpus voice;
    and `train prior --speech FILE` on the kfold test trials of FILE. Both refused by the likelihood stage
    before anything is written; a prior without the voice and without the test trials passes."""
    from neurovox.diffusion.speech_data import RecordingSplit, collect_speech, corpus_voices

    path, _, prepared, cache, _, voice = tiny
    assert simulated_voice(prepared.meta, path) == voice
    corpus = _prior_run(tmp_path, "corpus", [{"kind": "corpus", "voices": corpus_voices()}])
    lik, dps = tmp_path / "lik", tmp_path / "dps"
    argv = ["train", "likelihood", "--data", str(path), "--out", str(lik), "--prior", str(corpus),
            "--dps-out", str(dps), "--cache-dir", str(cache), "--set", "prepare.praat=false"]
    err = _one_line_exit_2(capsys, argv, f"including voice {voice!r}")
    assert f"prior.exclude_voices=[{voice}]" in err
    assert not lik.exists() and not dps.exists()
    sources = []
    collect_speech([path], use_corpus=False, sources=sources)            # flinker training trials of the file
    heard = _prior_run(tmp_path, "heard", sources)
    argv[argv.index(str(corpus))] = str(heard)
    err = _one_line_exit_2(capsys, argv + KFOLD, "trained on")
    assert "prior.split_scheme=kfold" in err and not lik.exists()
    from neurovox.diffusion.train_likelihood import check_generative_runs

    ok_sources = [{"kind": "corpus", "voices": corpus_voices([voice])}]
    collect_speech([path], use_corpus=False, sources=ok_sources, split=RecordingSplit("kfold", 0, 5))
    check_generative_runs(prepared, make_split(prepared, "kfold", fold=0, n_folds=5), path,
                          prior_run=_prior_run(tmp_path, "ok", ok_sources))


# ----------------------------------------------------------------------------- evaluate

def test_evaluate_refuses_a_ceiling_speech_run_that_heard_the_test_trials(tiny, tmp_path, capsys):
    path, _, prepared, cache, *_ = tiny
    lin = tmp_path / "lin"
    assert main(["train", "decoder", "--data", str(path), "--model", "linear", "--out", str(lin), "--cache-dir",
                 str(cache), "--set", "prepare.praat=false", "--set", "decoder.linear_passes=1"]) == 0  # flinker
    kfold_speech = _speech_run(tmp_path, "speech_kfold", tiny, "kfold", 0, 5)
    out = tmp_path / "eval"
    _one_line_exit_2(capsys, ["evaluate", "--run", str(lin), "--data", str(path), "--speech", str(kfold_speech),
                              "--out", str(out), "--cache-dir", str(cache), "--n-boot", "20"], "test trials of")
    assert not out.exists()


# ----------------------------------------------------------------------------- SWPD windows, statistics

def test_swpd_test_windows_score_only_test_span_frames(tiny):
    """Every target frame of an SWPD test window lies in the fold's test span, and the windows cover it."""
    import torch

    from neurovox.preprocess import Normalizer, WindowDataset

    prepared = tiny[2]
    for fold in (0, 3, 4):
        split = make_split(prepared, "swpd", fold=fold, n_folds=5)
        ds = WindowDataset(prepared, split, Normalizer().fit(prepared.neural, split.train_frame_mask), "test",
                           generator=torch.Generator().manual_seed(0))
        scored = np.zeros(prepared.n_frames, dtype=bool)
        for i in range(len(ds)):
            s = int(ds[i]["start_frame"])
            assert split.test_frame_mask[s:s + 128].all(), (fold, s)
            scored[s:s + 128] = True
        span = np.flatnonzero(split.test_frame_mask)
        assert scored[max(span[0], 16):span[-1] + 1].all()


def test_noise_spectrum_and_baseline_statistics_come_from_training_trials(tiny, sim_raw):
    from neurovox.preprocess.config import HighGammaConfig
    from neurovox.preprocess.highgamma import baseline_frame_mask, extract_high_gamma, training_baseline_mask
    from neurovox.preprocess.prepared import training_noise_power
    from neurovox.preprocess.splits import split_trials

    prepared = tiny[2]
    split = make_split(prepared, "flinker")
    clean, note = training_noise_power(prepared, NOPRAAT, split.train_frame_mask)
    loud = prepared.spec_power.copy()
    loud[split.test_frame_mask] *= 1e6                # a test trial's background never reaches the model
    changed = type(prepared)(**{**prepared.__dict__, "spec_power": loud})
    assert np.allclose(training_noise_power(changed, NOPRAAT, split.train_frame_mask)[0], clean)
    assert "training frames" in note
    rec = sim_raw[0]
    cfg = HighGammaConfig()
    n_frames = int(rec.duration_s * 125)
    mask, pooled = training_baseline_mask(rec.trials, n_frames, cfg)
    test = split_trials(rec.trials, n_frames, "flinker").test_trials
    assert not (mask & baseline_frame_mask(rec.trials, n_frames, 125.0, cfg.baseline_start_s, cfg.baseline_stop_s,
                                           test)).any()
    assert mask.sum() > 0 and f"{len(test)} test trials left out" in pooled
    short = rec.replace(neural=rec.neural[: int(20 * rec.neural_sfreq_hz)],
                        audio=rec.audio[: int(20 * rec.audio_sfreq_hz)], trials=rec.trials[rec.trials["offset_s"] < 19].reset_index(drop=True))
    hg = extract_high_gamma(short, HighGammaConfig(baseline_split="kfold", baseline_fold=1, baseline_n_folds=4))
    assert any("outside the test set of the kfold fold 1/4 split" in n for n in hg.meta.notes), hg.meta.notes
