"""Bad input: every case raises a neurovox error whose message names the problem and where (docs/errors.md).

Ends with a fuzz test: randomly corrupted small HDF5 files either load or raise NeurovoxError.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from neurovox.cli import main
from neurovox.errors import DataError, FormatError, NeurovoxError
from neurovox.io import Recording, read_flinker_hdf5, read_recording, read_swpd, write_flinker_hdf5, write_swpd
from tests.conftest import make_recording


@pytest.fixture
def h5(tmp_path):
    """A valid small Flinker file (16 channels, 20 s) and a helper that edits a copy of it."""
    path = write_flinker_hdf5(make_recording(16), tmp_path / "ok.h5")

    def edit(fn, name="bad.h5"):
        out = tmp_path / name
        out.write_bytes(path.read_bytes())
        with h5py.File(out, "r+") as f:
            fn(f)
        return out

    return path, edit


def _replace(f, key, value):
    del f[key]
    f[key] = value


def test_missing_and_misnamed_required_key(h5):
    _, edit = h5
    bad = edit(lambda f: f.move("ecog_alldataset", "ecog_alldata"))
    with pytest.raises(FormatError, match=r"bad.h5 lacks required key\(s\) \['ecog_alldataset'\] .*"
                                          r"Did you mean \"ecog_alldata\"\?"):
        read_flinker_hdf5(bad)
    bad = edit(lambda f: f.__delitem__("start_ind_re_valid_alldataset"), "b2.h5")
    with pytest.raises(FormatError, match=r"lacks required key\(s\) \['start_ind_re_valid_alldataset'\]"):
        read_recording(bad)


def test_wrong_shapes_and_dtypes(h5):
    _, edit = h5
    with pytest.raises(FormatError, match=r"ecog_alldataset in .*bad.h5 must be 2-D \(n_frames, n_channels\), "
                                          r"got shape \(40000,\)"):
        read_flinker_hdf5(edit(lambda f: _replace(f, "ecog_alldataset", np.zeros(40000))))
    with pytest.raises(FormatError, match=r"ecog_alldataset in .* must hold numbers, got dtype object"):
        read_flinker_hdf5(edit(lambda f: _replace(f, "ecog_alldataset", np.array([["a", "b"]] * 5, dtype=object)),
                               "b2.h5"))
    with pytest.raises(FormatError, match=r"label_alldataset in .* must have one entry per trial \(10, like "
                                          r"start_ind_re_valid_alldataset\), got shape \(3,\)"):
        read_flinker_hdf5(edit(lambda f: _replace(f, "label_alldataset", np.array([b"a", b"b", b"c"])), "b3.h5"))
    with pytest.raises(FormatError, match=r"wave_re_alldataset in .* must be mono audio, shape \(n_audio_samples, 1\)"):
        read_flinker_hdf5(edit(lambda f: _replace(f, "wave_re_alldataset", np.zeros((1000, 320))), "b4.h5"))
    with pytest.raises(FormatError, match=r"channel_name_alldataset in .* has 15 entries but ecog_alldataset has "
                                          r"16 channels"):
        read_flinker_hdf5(edit(lambda f: _replace(f, "channel_name_alldataset",
                                                  np.array([f"c{i}".encode() for i in range(15)])), "b5.h5"))


def test_nonfinite_raise_names_channel_and_mark_bad_option(h5, capsys):
    path, edit = h5

    def poison(f):
        x = f["ecog_alldataset"][()]
        x[100:110, 4] = np.nan
        x[7, 11] = np.inf
        _replace(f, "ecog_alldataset", x)

    bad = edit(poison)
    with pytest.raises(DataError, match=r"neural data in .*bad.h5 contains 11 NaN/Inf samples in 2 channels "
                                        r"\(LA5, RB12; first at sample 7\).*nonfinite='mark_bad'"):
        read_recording(bad)
    rec = read_recording(bad, nonfinite="mark_bad")
    assert rec.bads == ["LA3", "LA5", "RB12"] and np.isfinite(rec.neural).all()
    assert any("11 NaN/Inf samples" in n and "marked bad: LA5, RB12" in n for n in rec.meta.notes)
    rec = read_recording(bad, nonfinite="interpolate")
    assert rec.bads == ["LA3"] and any("interpolated linearly in 2 channels" in n for n in rec.meta.notes)
    with pytest.raises(DataError, match=r"Invalid nonfinite: allowed values are 'raise', 'mark_bad', 'interpolate', "
                                        r"but got 'zero'"):
        read_recording(path, nonfinite="zero")
    assert main(["info", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("neurovox info: error: neural data in") and "Traceback" not in err
    assert main(["info", "--nonfinite", "mark_bad", str(bad)]) == 0
    assert "channels      ecog 16; 3 bad: LA3, LA5, RB12" in capsys.readouterr().out


def test_flat_channel_marked_bad_with_notice(h5):
    _, edit = h5

    def flatten(f):
        x = f["ecog_alldataset"][()]
        x[:, 0] = 0.0
        _replace(f, "ecog_alldataset", x)

    rec = read_flinker_hdf5(edit(flatten))
    assert rec.bads == ["LA1", "LA3"]
    assert any("1 channels in" in n and "are all zero and were marked bad: LA1." in n for n in rec.meta.notes)


def test_clock_and_trial_errors(h5):
    _, edit = h5
    with pytest.raises(DataError, match=r"audio and neural clocks disagree in .*: neural lasts 20.0000 s .* but audio "
                                        r"lasts 19.0000 s .* a difference of 1000.0 ms"):
        read_flinker_hdf5(edit(lambda f: _replace(f, "wave_re_alldataset", np.zeros((19 * 16000, 1)))))

    def set_trials(on, off, name):
        def fn(f):
            _replace(f, "onset_s_alldataset", np.asarray(on, float))
            _replace(f, "offset_s_alldataset", np.asarray(off, float))
            for k in ("start_ind_re_valid_alldataset", "end_ind_re_valid_alldataset"):
                _replace(f, k, np.round(np.asarray(on if "start" in k else off) * 125).astype(int))
            for k in ("label_alldataset", "task_alldataset"):
                _replace(f, k, np.array([b"w"] * len(on)))
        return edit(fn, name)

    base = np.arange(10) * 2.0 + 0.5
    with pytest.raises(DataError, match=r"trial 9 \('w'\) of .* spans 18.500-25.000 s, outside the recording "
                                        r"\(0-20.000 s\); 1 trials are out of range"):
        read_flinker_hdf5(set_trials(base, np.r_[base[:9] + 1, 25.0], "c1.h5"))
    with pytest.raises(DataError, match=r"trial 3 \('w'\) of .* has offset 6.000 s not after onset 6.500 s "
                                        r"\(1 such trials\)"):
        read_flinker_hdf5(set_trials(base, np.r_[base[:3] + 1, 6.0, base[4:] + 1], "c2.h5"))
    with pytest.raises(DataError, match=r"trial table of .* is empty: start_ind_re_valid_alldataset has no entries"):
        read_flinker_hdf5(set_trials([], [], "c3.h5"))


def test_transposed_neural_in_memory():
    rec = make_recording(8)
    with pytest.raises(DataError, match=r"more channels than samples .* probably transposed"):
        Recording(rec.neural.T[:, :100].copy(), 125.0, "high_gamma", rec.audio[:8 * 128], 16000.0,
                  rec.channels.iloc[:0], rec.trials)


def test_file_level_errors(tmp_path, h5):
    path, _ = h5
    trunc = tmp_path / "trunc.h5"
    trunc.write_bytes(path.read_bytes()[:4000])
    n_bytes = path.stat().st_size
    with pytest.raises(FormatError, match=rf"trunc.h5 is truncated: it has 4000 bytes but its HDF5 header says "
                                          rf"{n_bytes} \(\d+ % present\)\. The copy or download was interrupted"):
        read_recording(trunc)
    flipped = bytearray(path.read_bytes())
    flipped[2000:2064] = bytes(64)                                   # zero a stretch of metadata
    (tmp_path / "flip.h5").write_bytes(bytes(flipped))
    with pytest.raises(FormatError, match=r"cannot read .*flip.h5 as a Flinker HDF5 file \(.*\)\. The file is "
                                          r"probably truncated or corrupted"):
        read_recording(tmp_path / "flip.h5")
    (tmp_path / "notes.h5").write_text("this is not HDF5\n")
    with pytest.raises(FormatError, match=r"notes.h5 is not HDF5 \(no HDF5 signature\)"):
        read_recording(tmp_path / "notes.h5")
    (tmp_path / "empty.h5").write_bytes(b"")
    with pytest.raises(FormatError, match=r"empty.h5 is empty \(0 bytes\)"):
        read_recording(tmp_path / "empty.h5")
    (tmp_path / "plain").mkdir()
    with pytest.raises(FormatError, match=r"directory is not BIDS: no dataset_description.json in .*plain"):
        read_recording(tmp_path / "plain")
    (tmp_path / "a.wav").write_bytes(b"RIFF")
    with pytest.raises(FormatError, match=r"a.wav is an audio file: a recording needs neural data too"):
        read_recording(tmp_path / "a.wav")
    with pytest.raises(FileNotFoundError):
        read_recording(tmp_path / "missing.h5")


def test_swpd_errors(tmp_path):
    rec = make_recording(8, neural_sfreq_hz=256.0, kind="raw", ch_type="seeg")
    nwb = write_swpd(rec, tmp_path / "ds")
    with h5py.File(nwb, "r+") as f:
        del f["acquisition/Audio"]
    with pytest.raises(FormatError, match=r"lacks acquisition \['Audio'\] \(found: \['Stimulus', 'iEEG'\]\)"):
        read_swpd(nwb)
    nwb = write_swpd(rec, tmp_path / "ds2")
    nwb.with_name(nwb.name.replace("_ieeg.nwb", "_events.tsv")).write_text("start\tword\n1.0\tx\n")
    with pytest.raises(FormatError, match=r"events.tsv lacks the 'onset' column \(columns: \['start', 'word'\]\)"):
        read_swpd(nwb)
    trunc = tmp_path / "sub-09_task-wordProduction_ieeg.nwb"
    trunc.write_bytes(nwb.read_bytes()[:3000])
    with pytest.raises(FormatError, match=r"sub-09_task-wordProduction_ieeg.nwb is truncated: it has 3000 bytes"):
        read_recording(trunc)


def test_writer_leaves_no_partial_file(tmp_path):
    rec = make_recording(8).replace(extras={"when": np.array(["2020-01-01"], dtype="datetime64[D]")})
    with pytest.raises(DataError, match=r"extras\['when'\] .* cannot be stored in HDF5"):
        write_flinker_hdf5(rec, tmp_path / "out.h5")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------ fuzz
def _corrupt(src: bytes, tmp_path, i: int, rng: np.random.Generator):
    path = tmp_path / f"fuzz{i}.h5"
    path.write_bytes(src)
    kind = ("truncate", "flip", "delete", "dtype", "shape")[i % 5]
    if kind == "truncate":
        path.write_bytes(src[: int(rng.integers(0, len(src)))])
    elif kind == "flip":
        data = bytearray(src)
        span = min(len(data), 8192) if rng.random() < 0.7 else len(data)       # mostly the metadata near the start
        for pos in rng.integers(0, span, size=int(rng.integers(1, 20))):
            data[pos] ^= int(rng.integers(1, 256))
        path.write_bytes(bytes(data))
    else:
        with h5py.File(path, "r+") as f:
            key = sorted(f)[int(rng.integers(0, len(f)))]
            value = f[key][()]
            del f[key]
            if kind == "dtype":
                choice = int(rng.integers(0, 3))
                value = np.asarray(value)
                f[key] = (value.astype("S8") if choice == 0 else value.astype(np.float16) if value.dtype.kind in "fiu"
                          else np.zeros(value.shape, np.int8)) if choice < 2 else np.asarray(value, dtype="S3")
            elif kind == "shape":
                value = np.asarray(value)
                f[key] = (value.reshape(-1)[: max(1, value.size // 2)] if rng.random() < 0.5
                          else np.atleast_2d(value).T.copy())
    return path, kind


def test_fuzz_corrupted_files_load_or_raise_neurovox_error(tmp_path):
    src_path = write_flinker_hdf5(make_recording(16, duration_s=4.0, n_trials=5), tmp_path / "src.h5")
    src = src_path.read_bytes()
    rng = np.random.default_rng(1234)
    outcomes = {"loaded": 0, "error": 0}
    for i in range(50):
        path, kind = _corrupt(src, tmp_path, i, rng)
        try:
            rec = read_recording(path)
        except NeurovoxError as exc:
            assert str(exc), (i, kind)
            outcomes["error"] += 1
        except Exception as exc:  # noqa: BLE001 - the point of the test
            pytest.fail(f"case {i} ({kind}) raised {type(exc).__name__}: {exc}")
        else:
            assert isinstance(rec, Recording) and np.isfinite(rec.neural).all()
            outcomes["loaded"] += 1
    assert outcomes["error"] >= 20 and outcomes["loaded"] >= 5, outcomes


def test_swpd_writer_interrupted_leaves_previous_subject(tmp_path, monkeypatch):
    import neurovox.io.swpd as swpd

    rec = make_recording(8, neural_sfreq_hz=256.0, kind="raw", ch_type="seeg")
    nwb = write_swpd(rec, tmp_path)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(swpd, "_write_nwb", boom)
    with pytest.raises(KeyboardInterrupt):
        write_swpd(rec.replace(neural=rec.neural * 2), tmp_path)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    np.testing.assert_array_equal(read_swpd(nwb).neural, rec.neural)      # the old subject is intact


def test_grid_positions_and_overlapping_trials(h5):
    _, edit = h5

    def clash(f):
        _replace(f, "channel_row_alldataset", np.r_[0, 0, np.arange(2, 16)])
        _replace(f, "channel_col_alldataset", np.r_[3, 3, np.zeros(14, int)])
        _replace(f, "channel_group_alldataset", np.array([b"grid"] * 16))

    with pytest.raises(DataError, match=r"channels \['LA1', 'LA2'\] in .*bad.h5 share grid position \(row 0, col 3\)"):
        read_flinker_hdf5(edit(clash))
    with pytest.raises(DataError, match=r"channel 'LA1' in .* has grid row 0 but col -1: set both"):
        read_flinker_hdf5(edit(lambda f: _replace(f, "channel_row_alldataset", np.r_[0, -np.ones(15, int)]), "b2.h5"))

    def overlap(f):
        off = f["offset_s_alldataset"][()]
        off[2] = f["onset_s_alldataset"][3] + 0.1
        _replace(f, "offset_s_alldataset", off)

    rec = read_flinker_hdf5(edit(overlap, "b3.h5"))
    assert any(n.startswith("1 trials in") and "overlap the previous one (first: trial 3" in n for n in rec.meta.notes)


# ------------------------------------------------------------------------------------ audio, splits, grids
def test_flinker_stereo_audio_and_audio_longer_than_neural(h5):
    path, edit = h5
    mono = read_flinker_hdf5(path).audio
    stereo = np.stack([mono, np.zeros_like(mono)], axis=1)
    rec = read_flinker_hdf5(edit(lambda f: _replace(f, "wave_re_alldataset", stereo)))
    assert "wave_re_alldataset is stereo: mixed down to mono." in rec.meta.notes
    np.testing.assert_allclose(rec.audio, mono / 2, rtol=1e-6)
    with pytest.raises(DataError, match=r"audio and neural clocks disagree in .*b2.h5: neural lasts 20.0000 s \(2500 "
                                        r"samples at 125 Hz\) but audio lasts 21.0000 s .* a difference of 1000.0 ms"):
        read_flinker_hdf5(edit(lambda f: _replace(f, "wave_re_alldataset", np.zeros((21 * 16000, 1))), "b2.h5"))


def test_audio_not_at_16khz_is_resampled_with_a_notice(tmp_path):
    from neurovox.preprocess import PrepareConfig, prepare

    rec = read_flinker_hdf5(write_flinker_hdf5(make_recording(8, audio_sfreq_hz=48000.0), tmp_path / "a48k.h5"))
    assert rec.audio_sfreq_hz == 48000.0 and rec.audio.shape == (20 * 48000,)
    prep = prepare(rec, PrepareConfig(praat=False), use_cache=False)
    assert "audio resampled from 48000 Hz to 16000 Hz (polyphase, scipy.signal.resample_poly) and low-passed at " \
           "8 kHz" in prep.notes
    assert prep.audio.shape == (prep.n_frames * 128,) and prep.n_frames == 2500


def test_splits_refuse_tasks_and_folds_without_test_trials(tmp_path):
    from neurovox.preprocess import PrepareConfig, make_split, prepare

    rec = make_recording(8)
    tasks = rec.trials["task"].to_numpy().copy()
    tasks[-1] = "task4"                                      # task5 keeps one trial: zero test trials for it
    path = write_flinker_hdf5(rec.replace(trials=rec.trials.assign(task=tasks)), tmp_path / "t.h5")
    prep = prepare(read_flinker_hdf5(path), PrepareConfig(praat=False), use_cache=False)
    with pytest.raises(DataError, match=r"the flinker split .* every task needs at least 2 trials, but in .*t.h5 "
                                        r"task\(s\) \{'task5': 1\} have fewer .* Use split.scheme=kfold"):
        make_split(prep, "flinker")
    with pytest.raises(DataError, match=r"fold 0 of the 'swpd' split of .*t.h5 has no test trials or frames \(10 "
                                        r"trials, 2500 frames, n_folds=5000\); use fewer folds"):
        make_split(prep, "swpd", fold=0, n_folds=5000)
    assert len(make_split(prep, "kfold", fold=0, n_folds=5).test_trials) == 2


def test_electrode_positions_that_are_no_grid():
    from neurovox.decoders.layout import layout_from_channels
    from neurovox.io import make_channel_table

    spread = make_channel_table(["a", "b", "c"], "ecog", row=[0, 40, 99], col=[0, 50, 99])
    with pytest.raises(DataError, match=r"The channel positions give a 100 x 100 grid for only 3 channels; they do not "
                                        r"look like a regular grid. Set the row/col columns .* --model lstm"):
        layout_from_channels(spread, model="resnet")


def test_cli_leaves_no_output_for_bad_input(tmp_path, h5, capsys):
    path, edit = h5
    bad = [edit(lambda f: f.move("ecog_alldataset", "ecog_alldata")), tmp_path / "trunc.h5"]
    bad[1].write_bytes(path.read_bytes()[:4000])
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    for i, data in enumerate(bad):
        assert main(["preprocess", "--data", str(data), "--out", str(out_dir / f"hg{i}.h5")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("neurovox preprocess: error: ") and str(data.name) in err and "Traceback" not in err
    assert list(out_dir.iterdir()) == []


def test_more_file_and_layout_cases(tmp_path, h5):
    path, edit = h5
    (tmp_path / "a.edf").write_bytes(b"0")
    with pytest.raises(FormatError, match=r"a.edf is a raw .edf file: neurovox reads such files through their BIDS "
                                          r"dataset .* mne_bids.write_raw_bids"):
        read_recording(tmp_path / "a.edf")
    (tmp_path / "sub-04").mkdir()
    with pytest.raises(FormatError, match=r"subject directory .*sub-04 holds no \*_ieeg.nwb file; for other BIDS-iEEG "
                                          r"formats pass the BIDS root"):
        read_recording(tmp_path / "sub-04")
    mono = read_flinker_hdf5(path).audio
    rec = read_flinker_hdf5(edit(lambda f: _replace(f, "wave_re_alldataset",
                                                    np.round(mono * 30000).astype(np.int16)[:, None])))
    assert "wave_re_alldataset holds integers: scaled to [-1, 1] by 1/32768." in rec.meta.notes
    assert rec.audio.dtype == np.float32 and np.abs(rec.audio - mono * 30000 / 32768).max() < 1e-4
    root = tmp_path / "bids"
    root.mkdir()
    (root / "dataset_description.json").write_text("{}")
    with pytest.raises(FormatError, match=r"no iEEG recording \(.vhdr/.edf/.bdf/.set/.fif\) in BIDS root .*bids for "
                                          r"subject='02', task=None"):
        read_recording(root, subject="02")


def test_swpd_without_events_or_stimulus(tmp_path):
    rec = make_recording(8, neural_sfreq_hz=256.0, kind="raw", ch_type="seeg")
    nwb = write_swpd(rec, tmp_path / "ds")
    nwb.with_name(nwb.name.replace("_ieeg.nwb", "_events.tsv")).unlink()
    with h5py.File(nwb, "r+") as f:
        del f["acquisition/Stimulus"]
    with pytest.raises(DataError, match=r"trial table of .*sub-01_task-wordProduction_ieeg.nwb is empty: no "
                                        r"_events.tsv beside it and no 'Stimulus' series"):
        read_swpd(nwb)
