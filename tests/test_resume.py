"""Interrupted training resumes to the same result (issue 9, point 2).

The command line (`neurovox.cli.main`, the console script's entry point) in a child process, on a tiny
simulated participant (20 words): a run is killed with SIGTERM once its first checkpoint exists, rerun,
killed again with SIGKILL once the rerun has written a new checkpoint, and rerun to the end. Its final
weights and metrics must equal, bit for bit on CPU, those of an uninterrupted run of the same command in
another directory (module-scoped, one per stage). Stages: the deep decoder (LSTM with dropout, reference
phase then spectral phase with random crops, EMA, early-stopping state), the speech autoencoder
(checkpoints every few steps, so it resumes mid-epoch), and the likelihood model of generative decoding
(its own last.pt, SIGKILL only). A truncated checkpoint is refused with a message that says which file
and what to do.

Children are forked from a multiprocessing fork server that has imported torch, Lightning and neurovox
once: a fresh interpreter per run would spend ~5 s of a loaded 2-core machine on imports, 11 times. The
server forks before any torch computation has started a thread pool, so the children are clean processes
that differ from `neurovox ...` in a shell only by not re-importing.
"""

import json
import multiprocessing
import os
import random
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

TIMEOUT_S = 300
_SERVER = multiprocessing.get_context("forkserver")
_SERVER.set_forkserver_preload(["torch", "lightning.pytorch", "neurovox.cli", "neurovox.decoders.train",
                                "neurovox.encoder.train", "neurovox.diffusion.train_likelihood", "tests.test_resume"])

SPEECH = ["--set", "prepare.praat=false", "--set", "split.scheme=kfold", "--set", "split.n_folds=5", "--set", "speech.max_steps=12",
          "--set", "speech.batch_size=2", "--set", "speech.n_frames=64", "--set", "speech.checkpoint_every=4",
          "--set", "speech.n_examples=0", "--set", "speech.warmup_steps=2", "--set", "encoder.hidden=16",
          "--set", "encoder.n_blocks=1", "--set", "encoder.dropout=0.1"]
DECODER = ["--model", "lstm", "--set", "prepare.praat=false", "--set", "split.scheme=kfold", "--set", "split.n_folds=5",
           "--set", "decoder.n_target_frames=64", "--set", "decoder.n_lead_frames=8", "--set", "decoder.batch_size=4",
           "--set", "decoder.max_epochs=4", "--set", "decoder.patience=10", "--set", "decoder.spec_ffts=[512]",
           "--set", "decoder.train_crop_frames=32", "--set", "decoder.ref_only_steps=8",
           "--set", "decoder.rnn_hidden=16", "--set", "decoder.rnn_layers=1", "--set", "decoder.dropout=0.2",
           "--set", "decoder.ema_decay=0.9"]
LIKELIHOOD = ["--set", "prepare.praat=false", "--set", "split.scheme=kfold", "--set", "split.n_folds=5",
              "--set", "window.n_target_frames=64", "--set", "window.n_lead_frames=8", "--set", "likelihood.hidden=16",
              "--set", "likelihood.n_blocks=2", "--set", "likelihood.batch_size=4", "--set", "likelihood.max_epochs=4",
              "--set", "likelihood.patience_epochs=10"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(data file, scratch root, environment): 20 words on the 8x8 grid, feature cache shared by all runs."""
    from neurovox.io import write_flinker_hdf5
    from neurovox.simulate import SimulateConfig, simulate_participant

    root = tmp_path_factory.mktemp("resume")
    rec, _ = simulate_participant(SimulateConfig(n_trials=20), 1, kind="high_gamma")
    env = {"NEUROVOX_CACHE": str(root / "cache")}
    return write_flinker_hdf5(rec, root / "sim.h5"), root, env


def _command(tiny, stage: str, out: Path, extra: list[str]) -> list[str]:
    return ["train", stage, "--data", str(tiny[0]), "--out", str(out), "--seed", "3", *extra]


def _cli_child(argv: list[str], env: dict[str, str], log: str) -> None:
    """Child process: `neurovox ARGV` with its stdout and stderr in the file `log`."""
    os.environ.update(env)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    # One thread: tiny models run several times faster on a loaded machine than with two threads waiting
    # for each other, and the result does not depend on how many cores the machine has.
    torch.set_num_threads(1)
    # A fresh interpreter seeds numpy's and python's global generators from the OS; so do the children
    # (forked, they would all inherit one state), so that an unseeded use of them shows up as a difference.
    np.random.seed()
    random.seed()
    from neurovox.cli import main

    sys.exit(main(argv))


class _Child:
    """A running `neurovox ARGV` (see `_cli_child`)."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.log = Path(env["NEUROVOX_CACHE"]).parent / f"log-{time.monotonic_ns()}.txt"
        self.process = _SERVER.Process(target=_cli_child, args=(argv, env, str(self.log)))
        self.process.start()

    def wait(self) -> tuple[int, str]:
        self.process.join(TIMEOUT_S)
        if self.process.exitcode is None:
            self.process.kill()
            self.process.join()
        return self.process.exitcode, self.log.read_text() if self.log.exists() else ""


def _run(argv: list[str], env: dict[str, str]) -> str:
    code, out = _Child(argv, env).wait()
    assert code == 0, out[-4000:]
    return out


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino  # checkpoints are renamed into place: a new one is a new inode
    except FileNotFoundError:
        return None


def _kill_at_checkpoint(argv: list[str], env: dict[str, str], ckpt: Path, sig: int) -> str:
    """Start `neurovox ARGV`, wait until it writes a new `ckpt`, send `sig`; returns its output. It must not
    have finished by then (exit status 143 after SIGTERM, -9 after SIGKILL)."""
    before = _inode(ckpt)
    child = _Child(argv, env)
    t0 = time.monotonic()
    while _inode(ckpt) in (None, before) and child.process.is_alive() and time.monotonic() - t0 < TIMEOUT_S:
        time.sleep(0.02)
    if child.process.is_alive():
        os.kill(child.process.pid, sig)
    code, out = child.wait()
    expected = -signal.SIGKILL if sig == signal.SIGKILL else 128 + sig
    assert code == expected, f"exit status {code} (the run ended before the kill?):\n{out[-4000:]}"
    return out


def _interrupted_twice(cmd: list[str], env: dict[str, str], run_dir: Path, ckpt_name: str) -> tuple[str, str]:
    """SIGTERM after the first checkpoint, SIGKILL after the rerun's next one, then rerun to the end."""
    ckpt = run_dir / "checkpoints" / ckpt_name
    term = _kill_at_checkpoint(cmd, env, ckpt, signal.SIGTERM)
    _kill_at_checkpoint(cmd, env, ckpt, signal.SIGKILL)
    assert not (run_dir / "DONE").exists()
    return term, _run(cmd, env)


def _assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f"weights differ from the uninterrupted run: {differ}"


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def _numbers(d: dict, drop: tuple[str, ...]) -> dict:
    return {k: v for k, v in d.items() if k not in drop and "time" not in k and "seconds" not in k}


# --------------------------------------------------------------------------- speech autoencoder

@pytest.fixture(scope="module")
def speech_reference(tiny):
    out = tiny[1] / "speech_ref"
    _run(_command(tiny, "speech", out, SPEECH), tiny[2])
    return out


def test_speech_training_resumes_bitwise_after_sigterm_and_sigkill(tiny, speech_reference):
    out = tiny[1] / "speech_killed"
    term, final = _interrupted_twice(_command(tiny, "speech", out, SPEECH), tiny[2], out, "last.ckpt")
    assert "terminated (SIGTERM). Rerun the same command to resume" in term
    assert "resuming from" in final
    ref, got = _load(speech_reference / "model.pt"), _load(out / "model.pt")
    _assert_same_weights(ref["encoder_state"], got["encoder_state"])
    _assert_same_weights(ref["synth_state"], got["synth_state"])
    m_ref = json.loads((speech_reference / "metrics.json").read_text())
    m_got = json.loads((out / "metrics.json").read_text())
    # nan != nan: compare the JSON text of everything but the timings
    assert json.dumps(_numbers(m_got, ())) == json.dumps(_numbers(m_ref, ()))


# --------------------------------------------------------------------------- deep decoder

@pytest.fixture(scope="module")
def decoder_reference(tiny, speech_reference):
    out = tiny[1] / "decoder_ref"
    _run(_command(tiny, "decoder", out, DECODER + ["--speech", str(speech_reference)]), tiny[2])
    return out


def test_decoder_training_resumes_bitwise_after_sigterm_and_sigkill(tiny, speech_reference, decoder_reference):
    out = tiny[1] / "decoder_killed"
    cmd = _command(tiny, "decoder", out, DECODER + ["--speech", str(speech_reference)])
    term, final = _interrupted_twice(cmd, tiny[2], out, "last.ckpt")
    assert "terminated (SIGTERM). Rerun the same command to resume" in term
    assert "resuming from" in final
    _assert_same_weights(_load(decoder_reference / "model.pt")["state_dict"], _load(out / "model.pt")["state_dict"])
    ref = json.loads((decoder_reference / "DONE").read_text())
    got = json.loads((out / "DONE").read_text())
    assert _numbers(got, ("finished",)) == _numbers(ref, ("finished",))
    assert ref["epochs"] == 4 and ref["val_pcc"] is not None


def test_truncated_checkpoint_is_refused_with_advice(tiny, speech_reference, decoder_reference, tmp_path):
    """A last.ckpt cut short (what a kill during a non-atomic write leaves) stops the rerun with a RunError
    naming the file and the two ways out, instead of a torch traceback or a silent fresh start."""
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(decoder_reference, run_dir)
    for name in ("DONE", "model.pt"):  # an unfinished run
        (run_dir / name).unlink()
    last = run_dir / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    code, out = _Child(_command(tiny, "decoder", run_dir, DECODER + ["--speech", str(speech_reference)]),
                       tiny[2]).wait()
    assert code == 2, out[-4000:]
    assert f"error: Checkpoint {str(last)!r} cannot be read" in out and "Delete it" in out and "--overwrite" in out
    assert not (run_dir / "DONE").exists()


# --------------------------------------------------------------------------- likelihood model (own loop)

def test_likelihood_training_resumes_bitwise_after_sigkill(tiny):
    ref_dir, out = tiny[1] / "lik_ref", tiny[1] / "lik_killed"
    _run(_command(tiny, "likelihood", ref_dir, LIKELIHOOD), tiny[2])
    cmd = _command(tiny, "likelihood", out, LIKELIHOOD)
    _kill_at_checkpoint(cmd, tiny[2], out / "checkpoints" / "last.pt", signal.SIGKILL)
    assert "resuming from" in _run(cmd, tiny[2])
    _assert_same_weights(_load(ref_dir / "likelihood.pt")["state_dict"], _load(out / "likelihood.pt")["state_dict"])
    m_ref = json.loads((ref_dir / "metrics.json").read_text())
    m_got = json.loads((out / "metrics.json").read_text())
    assert _numbers(m_got, ("train_s",)) == _numbers(m_ref, ("train_s",))


def test_ctrl_c_during_decoder_training_exits_130_and_resumes(tiny, speech_reference, decoder_reference):
    """Ctrl+C (SIGINT) inside Lightning's loop: our message and status 130 (not Lightning's exit 1), and the
    rerun ends with the uninterrupted run's weights."""
    out = tiny[1] / "decoder_ctrl_c"
    cmd = _command(tiny, "decoder", out, DECODER + ["--speech", str(speech_reference)])
    first = _kill_at_checkpoint(cmd, tiny[2], out / "checkpoints" / "last.ckpt", signal.SIGINT)
    assert "interrupted (Ctrl+C). Rerun the same command to resume" in first
    assert not (out / "DONE").exists()
    assert "resuming from" in _run(cmd, tiny[2])
    _assert_same_weights(_load(decoder_reference / "model.pt")["state_dict"], _load(out / "model.pt")["state_dict"])
