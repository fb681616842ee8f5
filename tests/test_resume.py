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
that differ from `neurovox ...` in a shell only by not re-importing. The participant (`tiny_cli`), the
command lines and the child machinery are shared with tests/test_reproducibility.py: they are in
tests/conftest.py.
"""

import json
import os
import signal
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import (CLI_TIMEOUT_S, DECODER_ARGS, LIKELIHOOD_ARGS, SPEECH_ARGS, CliChild, load_pt, run_cli,
                            train_argv)


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino  # checkpoints are renamed into place: a new one is a new inode
    except FileNotFoundError:
        return None


def _kill_at_checkpoint(argv: list[str], env: dict[str, str], ckpt: Path, sig: int) -> str:
    """Start `neurovox ARGV`, wait until it writes a new `ckpt`, send `sig`; returns its output. It must not
    have finished by then (exit status 143 after SIGTERM, -9 after SIGKILL)."""
    before = _inode(ckpt)
    child = CliChild(argv, env)
    t0 = time.monotonic()
    while _inode(ckpt) in (None, before) and child.process.is_alive() and time.monotonic() - t0 < CLI_TIMEOUT_S:
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
    return term, run_cli(cmd, env)


def _assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f"weights differ from the uninterrupted run: {differ}"


def _numbers(d: dict, drop: tuple[str, ...]) -> dict:
    return {k: v for k, v in d.items() if k not in drop and "time" not in k and "seconds" not in k}


# --------------------------------------------------------------------------- speech autoencoder

@pytest.fixture(scope="module")
def speech_reference(tiny_cli):
    out = tiny_cli[1] / "speech_ref"
    run_cli(train_argv(tiny_cli, "speech", out, SPEECH_ARGS), tiny_cli[2])
    return out


def test_speech_training_resumes_bitwise_after_sigterm_and_sigkill(tiny_cli, speech_reference):
    out = tiny_cli[1] / "speech_killed"
    term, final = _interrupted_twice(train_argv(tiny_cli, "speech", out, SPEECH_ARGS), tiny_cli[2], out, "last.ckpt")
    assert "terminated (SIGTERM). Rerun the same command to resume" in term
    assert "resuming from" in final
    ref, got = load_pt(speech_reference / "model.pt"), load_pt(out / "model.pt")
    _assert_same_weights(ref["encoder_state"], got["encoder_state"])
    _assert_same_weights(ref["synth_state"], got["synth_state"])
    m_ref = json.loads((speech_reference / "metrics.json").read_text())
    m_got = json.loads((out / "metrics.json").read_text())
    # nan != nan: compare the JSON text of everything but the timings
    assert json.dumps(_numbers(m_got, ())) == json.dumps(_numbers(m_ref, ()))


# --------------------------------------------------------------------------- deep decoder

@pytest.fixture(scope="module")
def decoder_reference(tiny_cli, speech_reference):
    out = tiny_cli[1] / "decoder_ref"
    run_cli(train_argv(tiny_cli, "decoder", out, DECODER_ARGS + ["--speech", str(speech_reference)]), tiny_cli[2])
    return out


def test_decoder_training_resumes_bitwise_after_sigterm_and_sigkill(tiny_cli, speech_reference, decoder_reference):
    out = tiny_cli[1] / "decoder_killed"
    cmd = train_argv(tiny_cli, "decoder", out, DECODER_ARGS + ["--speech", str(speech_reference)])
    term, final = _interrupted_twice(cmd, tiny_cli[2], out, "last.ckpt")
    assert "terminated (SIGTERM). Rerun the same command to resume" in term
    assert "resuming from" in final
    _assert_same_weights(load_pt(decoder_reference / "model.pt")["state_dict"], load_pt(out / "model.pt")["state_dict"])
    ref = json.loads((decoder_reference / "DONE").read_text())
    got = json.loads((out / "DONE").read_text())
    assert _numbers(got, ("finished",)) == _numbers(ref, ("finished",))
    assert ref["epochs"] == 4 and ref["val_pcc"] is not None


def test_truncated_checkpoint_is_refused_with_advice(tiny_cli, speech_reference, decoder_reference, tmp_path):
    """A last.ckpt cut short (what a kill during a non-atomic write leaves) stops the rerun with a RunError
    naming the file and the two ways out, instead of a torch traceback or a silent fresh start."""
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(decoder_reference, run_dir)
    for name in ("DONE", "model.pt"):  # an unfinished run
        (run_dir / name).unlink()
    last = run_dir / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    code, out = CliChild(train_argv(tiny_cli, "decoder", run_dir, DECODER_ARGS + ["--speech", str(speech_reference)]),
                         tiny_cli[2]).wait()
    assert code == 2, out[-4000:]
    assert f"error: Checkpoint {str(last)!r} cannot be read" in out and "Delete it" in out and "--overwrite" in out
    assert not (run_dir / "DONE").exists()


# --------------------------------------------------------------------------- likelihood model (own loop)

def test_likelihood_training_resumes_bitwise_after_sigkill(tiny_cli):
    ref_dir, out = tiny_cli[1] / "lik_ref", tiny_cli[1] / "lik_killed"
    run_cli(train_argv(tiny_cli, "likelihood", ref_dir, LIKELIHOOD_ARGS), tiny_cli[2])
    cmd = train_argv(tiny_cli, "likelihood", out, LIKELIHOOD_ARGS)
    _kill_at_checkpoint(cmd, tiny_cli[2], out / "checkpoints" / "last.pt", signal.SIGKILL)
    assert "resuming from" in run_cli(cmd, tiny_cli[2])
    _assert_same_weights(load_pt(ref_dir / "likelihood.pt")["state_dict"], load_pt(out / "likelihood.pt")["state_dict"])
    m_ref = json.loads((ref_dir / "metrics.json").read_text())
    m_got = json.loads((out / "metrics.json").read_text())
    assert _numbers(m_got, ("train_s",)) == _numbers(m_ref, ("train_s",))


def test_ctrl_c_during_decoder_training_exits_130_and_resumes(tiny_cli, speech_reference, decoder_reference):
    """Ctrl+C (SIGINT) inside Lightning's loop: our message and status 130 (not Lightning's exit 1), and the
    rerun ends with the uninterrupted run's weights."""
    out = tiny_cli[1] / "decoder_ctrl_c"
    cmd = train_argv(tiny_cli, "decoder", out, DECODER_ARGS + ["--speech", str(speech_reference)])
    first = _kill_at_checkpoint(cmd, tiny_cli[2], out / "checkpoints" / "last.ckpt", signal.SIGINT)
    assert "interrupted (Ctrl+C). Rerun the same command to resume" in first
    assert not (out / "DONE").exists()
    assert "resuming from" in run_cli(cmd, tiny_cli[2])
    _assert_same_weights(load_pt(decoder_reference / "model.pt")["state_dict"], load_pt(out / "model.pt")["state_dict"])
