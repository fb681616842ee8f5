"""SingleWordProductionDutch iBIDS + NWB: exact round trips, path forms, sidecar-free files, `neurovox info`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neurovox.cli import main
from neurovox.errors import DataError, FormatError
from neurovox.io import read_recording, read_swpd, write_swpd
from tests.conftest import assert_same_recording, make_recording


@pytest.fixture(scope="module")
def swpd(tmp_path_factory):
    root = tmp_path_factory.mktemp("bids")
    rec = make_recording(16, duration_s=20.0, neural_sfreq_hz=1024.0, audio_sfreq_hz=48000.0, kind="raw",
                         ch_type="seeg")
    return root, rec, write_swpd(rec, root, subject="01")


def test_roundtrip_exact(swpd):
    root, rec, nwb = swpd
    assert nwb == root / "sub-01" / "ieeg" / "sub-01_task-wordProduction_ieeg.nwb"
    names = sorted(p.name for p in nwb.parent.iterdir())
    assert names == ["sub-01_task-wordProduction_channels.tsv", "sub-01_task-wordProduction_electrodes.tsv",
                     "sub-01_task-wordProduction_events.tsv", "sub-01_task-wordProduction_ieeg.json",
                     "sub-01_task-wordProduction_ieeg.nwb"]
    for path in (nwb, nwb.parent.parent, root):          # the file, the subject dir, the BIDS root
        back = read_recording(path)
        assert_same_recording(rec, back, extras=False)
        assert back.meta.source_format == "swpd_nwb" and back.bads == ["LA3"] and back.meta.derived == []


def test_nwb_layout_matches_the_dataset(swpd):
    from pynwb import NWBHDF5IO

    _, rec, nwb = swpd
    with NWBHDF5IO(str(nwb), "r") as io:
        f = io.read()
        assert set(f.acquisition) == {"iEEG", "Audio", "Stimulus"}
        assert f.acquisition["iEEG"].data.shape == (20480, 16) and f.acquisition["iEEG"].rate == 1024.0
        assert f.acquisition["Audio"].data.shape == (960000,) and f.acquisition["Audio"].rate == 48000.0
        words = np.array(f.acquisition["Stimulus"].data[:], dtype=str)
        # the dataset's own recipe for channel names
        names = f.acquisition["iEEG"].electrodes.table["location"][f.acquisition["iEEG"].electrodes.data[:]]
    assert list(names) == rec.ch_names
    on = int(round(rec.trials["onset_s"].iloc[0] * 1024))
    assert words[on - 1] == "" and words[on] == rec.trials["label"].iloc[0]
    assert (words != "").sum() == sum(int(round(b * 1024)) - int(round(a * 1024))
                                      for a, b in zip(rec.trials["onset_s"], rec.trials["offset_s"]))
    part = pd.read_csv(nwb.parents[2] / "participants.tsv", sep="\t")
    assert part.to_dict("records") == [{"participant_id": "sub-01", "sex": "F", "hemisphere": "left"}]
    ch = pd.read_csv(nwb.with_name("sub-01_task-wordProduction_channels.tsv"), sep="\t")
    assert ch["status"].tolist().count("bad") == 1 and ch["type"].iloc[0] == "SEEG"


def test_nwb_alone_uses_stimulus_and_electrodes(swpd, tmp_path):
    """Without sidecars: names from the electrodes table, trials from runs of Stimulus words."""
    _, rec, nwb = swpd
    lone = tmp_path / "sub-07_task-wordProduction_ieeg.nwb"
    lone.write_bytes(nwb.read_bytes())
    back = read_swpd(lone)
    assert back.ch_names == rec.ch_names and back.meta.participant_id == "sub-07"
    sf = 1024.0
    np.testing.assert_allclose(back.trials["onset_s"], np.round(rec.trials["onset_s"] * sf) / sf)
    np.testing.assert_allclose(back.trials["offset_s"], np.round(rec.trials["offset_s"] * sf) / sf)
    assert back.trials["label"].tolist() == rec.trials["label"].tolist()
    assert back.channels["group"].tolist()[:2] == ["LA", "LA"]                    # shaft from the name
    assert any("runs of equal non-empty Stimulus" in d for d in back.meta.derived)
    np.testing.assert_array_equal(back.neural, rec.neural)


def test_two_subjects_need_a_choice(swpd, tmp_path):
    rec = make_recording(8, neural_sfreq_hz=512.0, kind="raw", ch_type="seeg", seed=2)
    root = tmp_path / "ds"
    write_swpd(rec, root, subject="01")
    write_swpd(rec.replace(meta=rec.meta.__class__(participant_id="sub-02", sex="M")), root, subject="sub-02")
    with pytest.raises(DataError, match=r"holds 2 subjects \(sub-01, sub-02\): pass subject="):
        read_recording(root)
    assert read_recording(root, subject="02").meta.sex == "M"
    part = pd.read_csv(root / "participants.tsv", sep="\t")
    assert part["participant_id"].tolist() == ["sub-01", "sub-02"]
    with pytest.raises(FormatError, match="no sub-\\*/ieeg/\\*_ieeg.nwb file in BIDS root .* for subject 03"):
        read_swpd(root, subject="03")


def test_info_swpd(swpd, capsys):
    root, rec, _ = swpd
    assert main(["info", str(root)]) == 0
    out = capsys.readouterr().out
    assert "format        swpd_nwb" in out and "raw, 16 channels @ 1024 Hz, 20.00 s (20480 samples" in out
    assert "channels      seeg 16; 1 bad: LA3" in out
    assert "layout        2 sEEG shafts (16/16 contacts with 3-D positions): LA 8, RB 8" in out
    assert "audio         48000 Hz, 20.00 s" in out
    assert "trials        10 in 5 tasks" in out


def test_slightly_longer_audio_is_trimmed_with_notice(tmp_path):
    rec = make_recording(8, neural_sfreq_hz=1024.0, kind="raw", ch_type="seeg")
    nwb = write_swpd(rec, tmp_path)
    import h5py

    with h5py.File(nwb, "r+") as f:                    # 0.2 s of extra audio at the end
        audio = f["acquisition/Audio/data"][()]
        del f["acquisition/Audio/data"]
        f["acquisition/Audio/data"] = np.r_[audio, np.zeros(3200, np.float32)]
    back = read_swpd(nwb)
    np.testing.assert_array_equal(back.audio, rec.audio)
    assert any("differ by 200.0 ms: audio trimmed from 20.2000 s to 20.0000 s" in n for n in back.meta.notes)
