"""Splits never leak, the Normalizer sees training frames only, windows are aligned, the cache works."""

from __future__ import annotations

import functools
import os

import numpy as np
import pytest
import torch

from neurovox import dsp
from neurovox.errors import ConfigError, DataError
from neurovox.preprocess import (
    Normalizer, PrepareConfig, WindowDataset, make_loader, make_split, prepare, stack_windows,
)
from tests.conftest import make_raw_recording

SCHEMES = [("flinker", 0, 10), ("kfold", 0, 5), ("kfold", 3, 5), ("lowo", 1, 0), ("swpd", 0, 10), ("swpd", 9, 10)]


@functools.lru_cache(maxsize=None)
def _prepared():
    rec, _ = make_raw_recording(100.0, 8, seed=7, bad=2, tasks=2)
    return prepare(rec, PrepareConfig(praat=False), use_cache=False)


@pytest.mark.parametrize("scheme,fold,n_folds", SCHEMES)
def test_no_test_frame_in_any_training_window_and_normalizer_uses_training_frames(scheme, fold, n_folds):
    prep = _prepared()
    split = make_split(prep, scheme, fold=fold, n_folds=n_folds or 10)
    test = split.test_frame_mask
    assert test.any() and len(split.test_trials) > 0 and len(split.train_trials) > 0
    assert not set(split.train_trials) & set(split.test_trials)
    assert not set(split.val_trials) & (set(split.test_trials) | set(split.train_trials))
    # every allowed training window, and every window the dataset actually draws, avoids test frames
    starts = np.flatnonzero(split.train_start_mask())
    assert all(not test[s - 16: s + 128].any() for s in starts)
    norm = Normalizer().fit(prep.neural, split.train_frame_mask)
    ds = WindowDataset(prep, split, norm, "train", generator=torch.Generator().manual_seed(0))
    drawn = [ds.start_frame(i) for _ in range(20) for i in range(len(ds))]
    assert all(not test[s - 16: s + 128].any() for s in drawn)
    assert all(not split.val_frame_mask[s - 16: s + 128].any() for s in drawn)
    # test windows read only test frames (trial schemes: the trial's extent is held out)
    te = WindowDataset(prep, split, norm, "test")
    if scheme != "swpd":
        for i in range(len(te)):
            s = te.start_frame(i)
            assert test[s - 16: s + 128].all()
    # normalisation: training frames only, so scrambling every held-out frame changes nothing
    x = prep.neural.astype(np.float64)[split.train_frame_mask]
    np.testing.assert_allclose(norm.mean, x.mean(axis=0), rtol=1e-10)
    scrambled = prep.neural.copy()
    scrambled[~split.train_frame_mask] = 1e6
    norm2 = Normalizer().fit(scrambled, split.train_frame_mask)
    assert np.array_equal(norm2.mean, norm.mean) and np.array_equal(norm2.std, norm.std)


def test_split_definitions():
    prep = _prepared()
    tr = prep.trials
    fl = make_split(prep, "flinker")
    for task in ("task0", "task1"):
        rows = np.flatnonzero(tr["task"] == task)
        assert set(rows[-10:]) == set(fl.test_trials) & set(rows)
    words = sorted(set(tr["label"]))
    lowo = make_split(prep, "lowo", fold=2)
    assert lowo.n_folds == len(words) and set(tr["label"].iloc[lowo.test_trials]) == {words[2]}
    assert words[2] not in set(tr["label"].iloc[lowo.train_trials])
    sw = make_split(prep, "swpd", fold=3)
    span = np.flatnonzero(sw.test_frame_mask)
    assert len(span) == prep.n_frames // 10 and np.all(np.diff(span) == 1)
    kf = [set(make_split(prep, "kfold", fold=k, n_folds=4).test_trials) for k in range(4)]
    assert set().union(*kf) == set(range(len(tr))) and sum(map(len, kf)) == len(tr)
    with pytest.raises(ConfigError, match="scheme"):
        make_split(prep, "kfolds")
    with pytest.raises(ConfigError, match="fold must be in 0..4"):
        make_split(prep, "kfold", fold=5, n_folds=5)


def test_window_items_are_aligned_and_reproducible():
    prep = _prepared()
    split = make_split(prep, "flinker")
    norm = Normalizer().fit(prep.neural, split.train_frame_mask)
    z = norm.transform(prep.neural)
    ds = WindowDataset(prep, split, norm, "train", generator=torch.Generator().manual_seed(3))
    item = ds[0]
    s, r = int(item["start_frame"]), int(item["trial"])
    assert item["neural"].shape == (144, 8) and item["audio"].shape == (128 * 128,)
    assert item["spec_power"].shape == (128, 256) and item["mel_db"].shape == (128, 80)
    assert item["formants_hz"].shape == (128, 6) and item["speech_mask"].dtype == torch.bool
    np.testing.assert_array_equal(item["neural"][16:].numpy(), z[s: s + 128])   # neural k+16 <-> target k
    np.testing.assert_array_equal(item["neural"][:16].numpy(), z[s - 16: s])
    np.testing.assert_array_equal(item["audio"].numpy(), prep.audio[s * 128: (s + 128) * 128])
    on, off = prep.trials["onset_frame"].iloc[r], prep.trials["offset_frame"].iloc[r]
    assert item["speech_mask"].sum() == off - on  # the whole word fits in the window
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    a = [WindowDataset(prep, split, norm, "train", generator=g1).start_frame(i) for i in range(5)]
    b = [WindowDataset(prep, split, norm, "train", generator=g2).start_frame(i) for i in range(5)]
    assert a == b
    test = stack_windows(WindowDataset(prep, split, norm, "test"))
    onsets = prep.trials["onset_frame"].to_numpy()[test["trial"]]
    np.testing.assert_array_equal(test["start_frame"], onsets - 32)
    assert test["neural"].shape == (len(split.test_trials), 144, 8)
    batches = list(make_loader(ds, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(0)))
    assert batches[0]["neural"].shape == (4, 144, 8) and sum(len(b["trial"]) for b in batches) == len(ds)


def test_normalizer_state_round_trip_and_errors():
    prep = _prepared()
    mask = np.zeros(prep.n_frames, bool)
    mask[:3000] = True
    norm = Normalizer(clip_sd=5.0).fit(prep.neural, mask)
    back = Normalizer.from_state_dict(norm.state_dict())
    np.testing.assert_array_equal(back.transform(prep.neural), norm.transform(prep.neural))
    assert np.abs(norm.transform(prep.neural)).max() <= 5.0
    with pytest.raises(DataError, match="not fitted"):
        Normalizer().transform(prep.neural)
    with pytest.raises(DataError, match="frame_mask must have shape"):
        Normalizer().fit(prep.neural, mask[:10])


def test_prepare_cache_hit_and_miss(tmp_path, monkeypatch):
    from neurovox.io import write_flinker_hdf5, read_recording
    import neurovox.preprocess.prepared as prep_mod

    rec, _ = make_raw_recording(12.0, 4, seed=8, bad=None)
    src = write_flinker_hdf5(rec, tmp_path / "raw.h5")
    rec = read_recording(src)
    calls = []
    real = prep_mod._compute
    monkeypatch.setattr(prep_mod, "_compute", lambda *a: calls.append(1) or real(*a))
    cache = tmp_path / "cache"
    cfg = PrepareConfig(praat=False)
    p1 = prepare(rec, cfg, cache)
    p2 = prepare(rec, cfg, cache)
    assert len(calls) == 1 and not p1.from_cache and p2.from_cache
    for k in ("neural", "audio", "spec_power", "mel_db", "formants_hz", "noise_power", "mel23_log"):
        np.testing.assert_array_equal(getattr(p1, k), getattr(p2, k))
    assert p1.trials.equals(p2.trials) and p1.source_sha256 == p2.source_sha256
    assert p1.neural.shape == (12 * 125, 4) and p1.audio.shape == (12 * 125 * 128,)
    prepare(rec, PrepareConfig(praat=False, band_high_hz=170.0), cache)      # changed setting: miss
    assert len(calls) == 2
    with open(src, "r+b") as fh:  # changed source content: miss
        fh.seek(0, os.SEEK_END)
        fh.write(b"\0")
    prepare(rec, cfg, cache)
    assert len(calls) == 3
    entries = sorted(p.name for p in cache.iterdir())
    assert len(entries) == 3 and all(e.startswith("prepared-") for e in entries)   # no temp leftovers
    monkeypatch.setenv("NEUROVOX_CACHE", str(tmp_path / "env_cache"))
    assert prep_mod.default_cache_dir() == tmp_path / "env_cache"


def test_prepare_high_gamma_recording_and_praat_fields():
    from neurovox.preprocess import extract_high_gamma, HighGammaConfig

    rec, _ = make_raw_recording(10.0, 4, seed=9, bad=None)
    hg = extract_high_gamma(rec, HighGammaConfig(zscore="none"))
    p = prepare(hg, PrepareConfig(), use_cache=False)
    np.testing.assert_array_equal(p.neural, hg.neural)
    assert p.f0_hz.shape == (1250,) and p.formants_hz.shape == (1250, 6) and p.voiced.any()
    assert p.spec_power.shape == (1250, dsp.N_BINS) and p.noise_power.shape == (256,)
    assert (p.trials["offset_frame"] > p.trials["onset_frame"]).all()
