"""BIDS-iEEG raw formats through MNE-BIDS: BrainVision and EDF, audio channel, events, `neurovox info`."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from neurovox.cli import main
from neurovox.errors import DataError
from neurovox.io import read_bids, read_recording

SFREQ_HZ = 512.0
N_SEEG = 12


def _write_dataset(root, fmt, *, audio=True, task="speech"):
    import mne
    import mne_bids

    rng = np.random.default_rng(0)
    n = int(20 * SFREQ_HZ)
    t = np.arange(n) / SFREQ_HZ
    names = [f"LA{i + 1}" for i in range(N_SEEG // 2)] + [f"RB{i + 1}" for i in range(N_SEEG // 2)]
    data = rng.standard_normal((N_SEEG, n)) * 20e-6
    types = ["seeg"] * N_SEEG
    if audio:
        names, types = names + ["Microphone"], types + ["misc"]
        data = np.vstack([data, 0.3 * np.sin(2 * np.pi * 100 * t)])
    raw = mne.io.RawArray(data, mne.create_info(names, SFREQ_HZ, types), verbose="error")
    raw.set_annotations(mne.Annotations(onset=0.5 + 2 * np.arange(8), duration=[0.8] * 7 + [0.0],
                                        description=[("boom", "huis", "kat")[i % 3] for i in range(8)]))
    raw.info["bads"] = ["RB2"]
    bp = mne_bids.BIDSPath(subject="03", task=task, datatype="ieeg", root=root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mne_bids.write_raw_bids(raw, bp, format=fmt, allow_preload=True, overwrite=True, verbose="error")
    return data


@pytest.mark.parametrize("fmt, suffix, tol_v", [("BrainVision", ".vhdr", 1e-9), ("EDF", ".edf", 2e-8)])
def test_read_bids_raw(tmp_path, capsys, fmt, suffix, tol_v):
    data = _write_dataset(tmp_path, fmt)
    rec = read_recording(tmp_path)                      # detected as BIDS (no NWB inside)
    assert rec.meta.source_format == f"bids{suffix}" and rec.meta.participant_id == "sub-03"
    assert rec.neural_kind == "raw" and rec.neural_sfreq_hz == SFREQ_HZ and rec.n_channels == N_SEEG
    assert rec.ch_types == ["seeg"] * N_SEEG and rec.bads == ["RB2"] and "Microphone" not in rec.ch_names
    assert np.abs(rec.neural - data[:N_SEEG].T).max() < tol_v          # volts; EDF is 16-bit
    # audio: the 100 Hz tone, resampled 512 Hz -> 16 kHz
    assert rec.audio_sfreq_hz == 16000.0 and rec.audio.shape == (320000,)
    expect = 0.3 * np.sin(2 * np.pi * 100 * np.arange(320000) / 16000)
    assert np.abs(rec.audio - expect)[2000:-2000].max() < 2e-3
    assert "audio channel 'Microphone' resampled from 512 Hz to 16000 Hz." in rec.meta.notes
    # trials from events; the zero-duration event gets a derived 1 s offset
    assert rec.n_trials == 8 and rec.tasks == ["speech"] and rec.trials["label"].tolist()[:3] == ["boom", "huis", "kat"]
    np.testing.assert_allclose(rec.trials["offset_s"] - rec.trials["onset_s"], [0.8] * 7 + [1.0], atol=1e-3)
    assert any("1 zero-duration events" in d for d in rec.meta.derived)
    assert main(["info", str(tmp_path), "--subject", "03"]) == 0
    out = capsys.readouterr().out
    assert f"format        bids{suffix}" in out and "channels      seeg 12; 1 bad: RB2" in out
    assert "trials        8 in 1 tasks" in out and "words         3 distinct; top: boom 3, huis 3, kat 2" in out


def test_read_bids_without_audio(tmp_path):
    from neurovox.io import write_wav

    _write_dataset(tmp_path, "BrainVision", audio=False)
    with pytest.raises(DataError, match=r"no audio in .*: no channel is named audio/microphone/mic .* audio_path="):
        read_bids(tmp_path, "03")
    with pytest.raises(DataError, match=r"audio_channel 'mic' is not a channel of"):
        read_bids(tmp_path, "03", audio_channel="mic")
    wav = write_wav(tmp_path / "speech.wav", np.zeros(20 * 48000, np.float32), 48000)
    rec = read_bids(tmp_path, "03", audio_path=wav)
    assert rec.audio.shape == (320000,) and "speech.wav: resampled from 48000 Hz to 16000 Hz." in rec.meta.notes
