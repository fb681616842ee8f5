"""Flinker-lab HDF5 / MATLAB files: exact round trips, real-file layouts, derived keys, `neurovox info`."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from neurovox.cli import main
from neurovox.io import flinker_channel_table, read_flinker_hdf5, read_recording, write_flinker_hdf5
from tests.conftest import assert_same_recording, make_recording


@pytest.mark.parametrize("n_channels, density, n_macro", [(64, "low", 0), (128, "hybrid", 64), (225, "hybrid", 64)])
def test_roundtrip_exact(tmp_path, n_channels, density, n_macro):
    rec = make_recording(n_channels, flinker_layout=True, seed=n_channels)
    rng = np.random.default_rng(1)
    rec = rec.replace(extras={"formant_re_alldataset": rng.random((rec.n_samples, 6)).astype(np.float32),
                              "pitch_re_alldataset": rng.random(rec.n_samples),
                              "noisesample_re_alldataset": rng.random(256), "TestNum_cum": np.array([50])})
    path = write_flinker_hdf5(rec, tmp_path / "p.h5")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.h5"]       # no temporary file left
    back = read_flinker_hdf5(path)
    assert_same_recording(rec, back)
    assert back.meta.source_format == "flinker_hdf5" and back.meta.notes == []
    assert (back.channels["group"] == "macro").sum() == n_macro
    assert back.tasks == ["task1", "task2", "task3", "task4", "task5"]
    # the Flinker keys themselves are what a real reader expects
    with h5py.File(path) as f:
        assert f["ecog_alldataset"].shape == (2500, n_channels)
        assert f["wave_re_alldataset"].shape == (2500 * 128, 1)
        np.testing.assert_array_equal(f["start_ind_re_valid_alldataset"][()],
                                      np.round(rec.trials["onset_s"].to_numpy() * 125).astype(int))
    # a second write over the first works and gives the same file content
    write_flinker_hdf5(back, path)
    assert_same_recording(rec, read_recording(path))


def test_layouts():
    t64, d64, _ = flinker_channel_table(64)
    assert d64 == "low" and (t64["row"].iloc[9], t64["col"].iloc[9]) == (1, 1) and t64["row"].max() == 7
    t225, d225, _ = flinker_channel_table(225)
    assert d225 == "hybrid" and len(t225[["row", "col"]].drop_duplicates()) == 225
    macro = t225[t225["group"] == "macro"]
    assert len(macro) == 64 and (macro["row"] % 2 == 0).all() and (macro["col"] % 2 == 0).all()
    t128, _, _ = flinker_channel_table(128)
    assert len(t128[["row", "col"]].drop_duplicates()) == 128
    assert (t128["row"].iloc[:64] % 2 == 0).all() and ((t128["row"] + t128["col"]).iloc[64:] % 2 == 1).all()
    micro = set(zip(t128["row"].iloc[64:], t128["col"].iloc[64:]))
    unused = [(r, c) for r in range(15) for c in range(15) if (r + c) % 2 == 1 and (r, c) not in micro]
    d2 = lambda rc: (rc[0] - 7) ** 2 + (rc[1] - 7) ** 2  # noqa: E731
    assert len(unused) == 112 - 64 and max(map(d2, micro)) <= min(map(d2, unused))   # the midpoints nearest (7, 7)
    t100, d100, notes = flinker_channel_table(100)
    assert d100 == "other" and (t100["row"] == -1).all() and "match no Flinker layout" in notes[0]


def _write_minimal(path, n_frames=2500, n_channels=64, n_trials=10, *, labels=True, offsets=True):
    rng = np.random.default_rng(3)
    with h5py.File(path, "w") as f:
        f["ecog_alldataset"] = rng.standard_normal((n_frames, n_channels))
        f["wave_re_alldataset"] = 0.1 * rng.standard_normal((n_frames * 128, 1))
        f["start_ind_re_valid_alldataset"] = 50 + 200 * np.arange(n_trials)
        if offsets:
            f["end_ind_re_valid_alldataset"] = 150 + 200 * np.arange(n_trials)
        if labels:
            f["label_alldataset"] = np.array([b"dog", b"cat"] * (n_trials // 2))
        f["wave_re_spec_alldataset"] = rng.standard_normal((n_frames, 256))
        f["formant_re_alldataset"] = rng.standard_normal((n_frames - 3, 6))    # wrong length: ignored


def test_real_file_without_own_keys(tmp_path):
    path = tmp_path / "HB02.h5"
    _write_minimal(path)
    rec = read_flinker_hdf5(path)
    assert rec.meta.participant_id == "HB02" and rec.meta.grid_density == "low" and rec.neural_kind == "high_gamma"
    assert rec.neural.dtype == np.float64 and rec.channels["name"].iloc[0] == "G01"
    np.testing.assert_allclose(rec.trials["onset_s"].to_numpy(), (50 + 200 * np.arange(10)) / 125)
    np.testing.assert_allclose(rec.trials["offset_s"].to_numpy(), (150 + 200 * np.arange(10)) / 125)
    assert rec.trials["label"].tolist()[:2] == ["dog", "cat"]
    assert rec.tasks == [f"task{i}" for i in range(1, 6)] and (rec.trials["task"] == "task3").sum() == 2
    assert list(rec.extras) == ["wave_re_spec_alldataset"]
    derived = " | ".join(rec.meta.derived)
    assert "task names" in derived and "5 equal consecutive blocks of 2" in derived
    assert "formant_re_alldataset unusable -> formants: Praat Burg" in derived
    assert "pitch_re_alldataset missing -> pitch" in derived and "channel names and grid layout" in derived
    assert any("ignored formant_re_alldataset: shape (2497, 6)" in n for n in rec.meta.notes)


def test_missing_offsets_labels_and_odd_trial_count(tmp_path):
    path = tmp_path / "x.hdf5"
    _write_minimal(path, n_trials=7, labels=False, offsets=False)
    rec = read_flinker_hdf5(path)
    assert rec.tasks == ["task"] and set(rec.trials["label"]) == {"unknown"}
    np.testing.assert_allclose((rec.trials["offset_s"] - rec.trials["onset_s"]).to_numpy(), 1.0)
    derived = " | ".join(rec.meta.derived)
    assert "speech offsets" in derived and "word labels" in derived and "do not split into 5" in derived


def test_matlab_v73_transposed(tmp_path):
    """MATLAB writes (T, C) as (C, T) and char arrays as uint16 columns, after a 512-byte user block."""
    rng = np.random.default_rng(4)
    ecog = rng.standard_normal((1250, 64))
    words = ["ja", "nee", "ja", "nee", "ok"]
    width = max(map(len, words))
    chars = np.array([[ord(c) for c in w.ljust(width, "\0")] for w in words], dtype=np.uint16).T   # (width, n)
    path = tmp_path / "sub.mat"
    with h5py.File(path, "w", userblock_size=512) as f:
        f["ecog_alldataset"] = ecog.T
        f["ecog_alldataset"].attrs["MATLAB_class"] = np.bytes_("double")
        f["wave_re_alldataset"] = 0.1 * rng.standard_normal((1, 1250 * 128))
        f["start_ind_re_valid_alldataset"] = np.array([[10, 200, 400, 600, 800]], dtype=float)
        f["end_ind_re_valid_alldataset"] = np.array([[100, 300, 500, 700, 900]], dtype=float)
        f["label_alldataset"] = chars
        f["label_alldataset"].attrs["MATLAB_class"] = np.bytes_("char")
        f["pitch_re_alldataset"] = rng.random((1, 1250))
    with open(path, "r+b") as fh:                        # MATLAB's text header in the user block
        fh.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64")
    rec = read_recording(path)
    np.testing.assert_array_equal(rec.neural, ecog)
    assert rec.trials["label"].tolist() == words and rec.meta.source_format == "flinker_mat"
    assert any("stored transposed" in n for n in rec.meta.notes)
    np.testing.assert_allclose(rec.trials["onset_s"].to_numpy()[1], 200 / 125)


def test_matlab_v5(tmp_path):
    from scipy.io import savemat

    rng = np.random.default_rng(5)
    ecog = rng.standard_normal((1250, 64))
    savemat(tmp_path / "old.mat", {"ecog_alldataset": ecog, "wave_re_alldataset": np.zeros((1250 * 128, 1)),
                                   "start_ind_re_valid_alldataset": np.array([10, 500]),
                                   "end_ind_re_valid_alldataset": np.array([100, 600]),
                                   "label_alldataset": np.array(["ja", "nee"], dtype=object)})
    rec = read_recording(tmp_path / "old.mat")
    np.testing.assert_array_equal(rec.neural, ecog)
    assert rec.trials["label"].tolist() == ["ja", "nee"] and rec.n_trials == 2


def test_info_flinker(tmp_path, capsys):
    rec = make_recording(64, flinker_layout=True)
    audio = rec.audio.copy()
    audio[:160] = 1.0                                           # 160 clipped samples of 320000
    rec = rec.replace(audio=audio, channels=rec.channels.assign(bad=[i in (3, 9) for i in range(64)]))
    path = write_flinker_hdf5(rec, tmp_path / "p.h5")
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "participant   P07 (sex F, hemisphere left, language unknown)" in out
    assert "neural        high_gamma, 64 channels @ 125 Hz, 20.00 s (2500 samples, float32" in out
    assert "channels      ecog 64; 2 bad: G04, G10" in out
    assert "layout        grid: 64 ecog contacts on a 8 x 8 grid" in out
    rms_db = 20 * np.log10(np.sqrt(np.mean(audio.astype(np.float64) ** 2)))
    assert f"RMS {rms_db:.1f} dBFS, peak 0.0 dBFS, clipped 0.05 %" in out
    assert "trials        10 in 5 tasks" in out and "task1 2, task2 2" in out
    assert "words         3 distinct; top: huis 4, kat 3, 01 3" in out
    assert main(["info", "--json", str(path)]) == 0
    import json

    s = json.loads(capsys.readouterr().out)
    assert s["bad_channels"] == ["G04", "G10"] and s["trials"]["per_task"]["task5"] == 2
