"""Real-time decoding over LSL on loopback (machine scope: nothing leaves 127.0.0.1): `replay` -> `stream`
equals offline causal decoding of the same frames; gaps, stalls and bad streams get counted or named.

Every test bounds its own run time (stream seconds, resolve timeouts, joined threads)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import soundfile as sf

from neurovox.errors import ConfigError, DataError

pytest.importorskip("pylsl", reason="needs pylsl (installed with neurovox)")


@pytest.fixture(scope="module")
def causal_run(tmp_path_factory):
    """A tiny causal LSTM (mel head) on a 30-word simulated participant: 20 training steps (a valid causal
    model; its quality is irrelevant here)."""
    from neurovox.cli import main

    root = tmp_path_factory.mktemp("rt")
    assert main(["simulate", "--out", str(root / "sim"), "--kind", "high_gamma", "--n-trials", "30", "--seed", "4"]) == 0
    data = next((root / "sim").glob("*.h5"))
    for name, extra in (("causal", ["--causal"]), ("noncausal", [])):
        assert main(["train", "decoder", "--data", str(data), "--model", "lstm", "--out", str(root / name), "--quick",
                     "--set", "decoder.max_steps=20", "--cache-dir", str(root / "cache"), *extra]) == 0
    return root / "causal", root / "noncausal", data


def _replay_in_thread(data, name, seconds, start_s=20.0):
    from neurovox.realtime.replay import replay

    stop = threading.Event()
    thread = threading.Thread(target=replay, args=(data, name), daemon=True,
                              kwargs={"seconds": seconds, "start_s": start_s, "stop": stop, "progress": False})
    thread.start()
    return thread, stop


def test_stream_equals_offline_causal_decoding(causal_run, tmp_path):
    from neurovox.io import read_recording
    from neurovox.realtime.stream import offline_reference, run_stream

    run, _, data = causal_run
    thread, stop = _replay_in_thread(data, "nv-test-eq", seconds=4.0)
    try:
        stats = run_stream(run, "nv-test-eq", out_wav=tmp_path / "out.wav", seconds=2.0, stats_path=tmp_path / "s.json",
                           resolve_timeout_s=10, max_wait_s=10, status=False, keep_arrays=True)
    finally:
        stop.set()
        thread.join(timeout=10)
    arrays = stats.pop("arrays")
    assert stats["frames"] == 250 and stats["filled_frames"] == 0
    # the frames received are the file's frames, in order, from the replay's start
    rec = read_recording(data)
    first = int(np.flatnonzero(np.all(np.isclose(rec.neural[:], arrays["frames"][0]), axis=1))[0])
    assert np.array_equal(arrays["frames"], rec.neural[first:first + 250])
    mel, audio = offline_reference(run, arrays["frames"])
    assert np.abs(arrays["mel_db"] - mel).max() < 1e-4
    assert np.abs(arrays["audio"] - audio).max() < 1e-4
    wav, sr = sf.read(tmp_path / "out.wav")
    assert sr == 16_000 and len(wav) == 250 * 128
    assert np.abs(wav - np.clip(audio, -1, 1)).max() < 2.0 / 32768
    saved = __import__("json").loads((tmp_path / "s.json").read_text())
    assert saved["frames"] == 250 and saved["latency_ms"]["median"] > 0 and saved["compute_ms_per_frame"]["median"] > 0


def test_gaps_are_filled_and_a_lost_stream_is_resumed(causal_run):
    from neurovox.realtime.lsl import import_pylsl, neural_outlet
    from neurovox.realtime.stream import run_stream

    run, _, _ = causal_run
    pylsl = import_pylsl()
    names = __import__("json").loads((run / "stream_input.json").read_text())["channel_names"]
    outlet = neural_outlet("nv-test-gap", names, ["ecog"] * 64, "a.u.", 125.0, "nv-gap")
    frames = np.random.default_rng(0).standard_normal((200, 64)).astype(np.float32)

    def send():
        time.sleep(1.0)
        t0 = pylsl.local_clock()
        for i in range(200):
            if i in (50, 51, 52):  # three frames lost on the way
                continue
            if i == 100:
                time.sleep(1.5)  # the stream stops for 1.5 s and comes back
            outlet.push_sample(frames[i], t0 + i / 125.0 + (1.5 if i >= 100 else 0.0))
            time.sleep(0.002)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    stats = run_stream(run, "nv-test-gap", seconds=None, resolve_timeout_s=10, max_wait_s=3.0, status=False,
                       keep_arrays=True)
    sender.join(timeout=10)
    assert stats["filled_frames"] == 3 and stats["resumed_after_gap"] == 1 and stats["stalls"] >= 1
    assert stats["frames"] == 200  # 197 received + 3 held


def test_bad_streams_and_runs_are_named(causal_run, tmp_path):
    from neurovox.realtime.lsl import neural_outlet
    from neurovox.realtime.stream import run_stream

    run, noncausal, _ = causal_run
    wav = tmp_path / "x.wav"
    with pytest.raises(DataError, match="No LSL stream named 'nv-nothing'"):
        run_stream(run, "nv-nothing", out_wav=wav, resolve_timeout_s=0.5)
    few = neural_outlet("nv-test-few", ["a", "b", "c"], ["ecog"] * 3, "a.u.", 125.0, "nv-few")  # noqa: F841
    with pytest.raises(DataError, match="3 channels; run .* trained on 64"):
        run_stream(run, "nv-test-few", out_wav=wav, resolve_timeout_s=5)
    raw = neural_outlet("nv-test-raw", [f"G{i}" for i in range(64)], ["ecog"] * 64, "V", 1024.0, "nv-raw")  # noqa: F841
    with pytest.raises(DataError, match="1024 Hz.*raw voltage"):
        run_stream(run, "nv-test-raw", out_wav=wav, resolve_timeout_s=5)
    wrong = neural_outlet("nv-test-labels", [f"X{i}" for i in range(64)], ["ecog"] * 64, "a.u.", 125.0, "nv-lab")  # noqa: F841
    with pytest.raises(DataError, match="channel 0 is labelled 'X0'"):
        run_stream(run, "nv-test-labels", out_wav=wav, resolve_timeout_s=5)
    with pytest.raises(ConfigError, match="not causal"):
        run_stream(noncausal, "nv-test-raw", out_wav=wav, resolve_timeout_s=1)
    assert not any(tmp_path.iterdir())  # refused before any output, not even a temporary file, was written


def test_raw_stream_is_prepared_causally_like_training(tmp_path):
    """A run trained on raw voltage (prepared causally) decodes a raw stream: the stream's causal high-gamma
    frames equal the run's extraction of the same samples, and the decoded mel equals offline decoding."""
    from neurovox.cli import main
    from neurovox.io import read_recording
    from neurovox.realtime.stream import _causal_extractor, _stream_input, offline_reference, run_stream

    assert main(["simulate", "--out", str(tmp_path / "sim"), "--kind", "raw", "--n-trials", "20", "--seed", "5"]) == 0
    data = next((tmp_path / "sim").rglob("*_ieeg.nwb"))  # raw voltage is written as SWPD-style NWB / iBIDS
    run = tmp_path / "raw_causal"
    assert main(["train", "decoder", "--data", str(data), "--model", "lstm", "--causal", "--out", str(run), "--quick",
                 "--set", "decoder.max_steps=10", "--set", "prepare.line_noise_hz=60",
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    expected = _stream_input(run, 0)
    assert expected["kind"] == "raw" and expected["line_hz"] == 60.0
    thread, stop = _replay_in_thread(data, "nv-test-raw-eq", seconds=4.0, start_s=10.0)
    try:
        stats = run_stream(run, "nv-test-raw-eq", seconds=1.5, resolve_timeout_s=10, max_wait_s=10, status=False,
                           keep_arrays=True)
    finally:
        stop.set()
        thread.join(timeout=10)
    frames = stats["arrays"]["frames"]
    assert len(frames) == round(1.5 * 125) and stats["filled_frames"] == 0
    rec = read_recording(data)
    # the stream starts with the first raw sample it received (what queued while connecting is flushed)
    raw = np.asarray(rec.neural[:], np.float32)
    first = int(np.flatnonzero(np.all(raw == stats["arrays"]["first_raw_sample"], axis=1))[0])
    assert first >= int(round(10.0 * rec.neural_sfreq_hz))
    offline = _causal_extractor(expected).process(rec.neural[first:first + int(2.0 * rec.neural_sfreq_hz)])
    assert np.abs(frames - offline[:len(frames)]).max() <= 1e-5 * np.abs(offline).max()
    mel, _ = offline_reference(run, frames)
    assert np.abs(stats["arrays"]["mel_db"] - mel).max() < 1e-4
