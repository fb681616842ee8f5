"""The same config and seed give the same numbers on CPU (issue 9, point 3).

Two full runs of the command line (train speech, train decoder, evaluate) in separate directories on a
tiny simulated participant must give identical weights and identical metrics.json numbers (ESTOI only
to 1e-12, see below), and every run directory must record what it ran on: config, seed, package
versions, torch threads, data hash and code version. The children run like those of
tests/test_resume.py (forked from a server that has imported torch; one torch thread; numpy and python
generators seeded from the OS, as in a fresh interpreter; `tiny_cli`, `run_cli` and the command lines are
in tests/conftest.py). Per decoder model, a few optimiser steps with dropout and the spectral loss through
the synthesizer, repeated from the same seed with torch's two threads, must give the same weights bit
for bit: no CPU op they use is nondeterministic.
"""

import json
import math
from pathlib import Path

import pytest
import torch

from neurovox.utils.files import sha256_file
from tests.conftest import DECODER_ARGS, SPEECH_ARGS, load_pt, run_cli, train_argv

VOLATILE = ("title", "created", "finished", "date", "time", "seconds", "train_s", "path", "out", "command", "report")


def _numbers(obj, where: str = ""):
    """Flattened {json path: value} of a metrics tree without timings, timestamps and paths."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if not any(word in str(k).lower() for word in VOLATILE):
                out.update(_numbers(v, f"{where}/{k}"))
        return out
    if isinstance(obj, list):
        out = {}
        for i, v in enumerate(obj):
            out.update(_numbers(v, f"{where}[{i}]"))
        return out
    if isinstance(obj, float) and math.isnan(obj):
        return {where: "nan"}
    return {where: obj}


def _assert_provenance(run_dir: Path, data: Path, kind: str) -> None:
    import yaml

    from neurovox.runs import git_hash, package_versions

    meta = json.loads((run_dir / "run.json").read_text())
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert meta["kind"] == kind and meta["seed"] == 3 and config["seed"] == 3
    assert meta["data_sha256"] == sha256_file(data) and meta["data_path"] == str(data.resolve())
    assert meta["git_hash"] == git_hash() and meta["neurovox_version"]
    assert {"numpy", "torch", "lightning", "python"} <= set(meta["packages"])
    assert meta["packages"] == package_versions()
    assert meta["torch_threads"] == 1  # the children's (tests/test_resume.py): results depend on it


@pytest.fixture(scope="module")
def runs(tiny_cli):
    """One speech run and two decoder runs through it, each evaluated, in separate directories. (Two speech
    runs agree bit for bit too: tests/test_resume.py compares one finished over three processes with
    one that never stopped.)"""
    data, root, env = tiny_cli
    speech = root / "speech"
    run_cli(train_argv(tiny_cli, "speech", speech, SPEECH_ARGS), env)
    decoders = (root / "decoder_1", root / "decoder_2")
    for out in decoders:
        run_cli(train_argv(tiny_cli, "decoder", out, DECODER_ARGS + ["--speech", str(speech)]), env)
        run_cli(["evaluate", "--run", str(out), "--data", str(data), "--n-boot", "200", "--seed", "3"], env)
    return speech, decoders


def test_two_runs_give_identical_weights_and_metrics(tiny_cli, runs):
    speech, (a, b) = runs
    wa, wb = load_pt(a / "model.pt")["state_dict"], load_pt(b / "model.pt")["state_dict"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert _numbers(json.loads((a / "DONE").read_text())) == _numbers(json.loads((b / "DONE").read_text()))
    ma, mb = (json.loads((d / "eval" / "metrics.json").read_text()) for d in (a, b))
    na, nb = _numbers(ma), _numbers(mb)
    assert na.keys() == nb.keys()
    # Bit for bit, except ESTOI: pystoi's extended STOI sums with numpy's SIMD loops, whose rounding depends
    # on where in memory its arrays happen to lie (measured: the same inputs at different 8-byte offsets give
    # values one ulp apart), so ESTOI and what is computed from it agree to ~1e-15 between processes.
    exact = {k for k in na if "estoi" not in k or not isinstance(na[k], float)}
    assert {k: na[k] for k in exact} == {k: nb[k] for k in exact}, [k for k in exact if na[k] != nb[k]]
    assert all(math.isclose(na[k], nb[k], rel_tol=1e-12, abs_tol=1e-14) for k in na.keys() - exact)
    assert len([k for k in exact if isinstance(na[k], float)]) > 20  # the comparison covers real numbers

    _assert_provenance(speech, tiny_cli[0], "speech")
    for run_dir in (a, b):
        _assert_provenance(run_dir, tiny_cli[0], "decoder")


def test_two_mel_target_runs_give_identical_weights(tiny_cli):
    """The default mel head (no speech run; augmentation drawn from (seed, step)): two command-line runs give
    the same weights bit for bit."""
    data, root, env = tiny_cli
    runs = (root / "mel_1", root / "mel_2")
    for out in runs:
        run_cli(train_argv(tiny_cli, "decoder", out, DECODER_ARGS + ["--set", "decoder.target=mel"]), env)
    wa, wb = (load_pt(d / "model.pt") for d in runs)
    assert wa["target"] == "mel" and torch.equal(wa["mel_mean_db"], wb["mel_mean_db"])
    assert all(torch.equal(wa["state_dict"][k], wb["state_dict"][k]) for k in wa["state_dict"])


@pytest.mark.parametrize("model", ["resnet", "swin", "lstm", "gru"])
def test_decoder_training_steps_are_deterministic_on_cpu(model):
    """Two threads (conftest), dropout on, spectral loss through the synthesizer: same seed, same bits."""
    from neurovox.decoders.base import build_decoder
    from neurovox.decoders.layout import rectangular_layout
    from neurovox.decoders.losses import spectral_loss
    from neurovox.synth import N_RAW, FormantSynth, SynthConfig

    kwargs = {"resnet": {"widths": (4, 8), "dropout": 0.2}, "swin": {"dim": 8, "depths": (1,), "window_t": 8,
              "dropout": 0.2}, "lstm": {"hidden": 8, "n_layers": 2, "dropout": 0.2},
              "gru": {"hidden": 8, "n_layers": 2, "dropout": 0.2}}[model]
    synth = FormantSynth(SynthConfig())

    def train() -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        dec = build_decoder(model, n_channels=16, n_out=N_RAW, causal=True, layout=rectangular_layout(4, 4),
                            **kwargs)
        opt = torch.optim.AdamW(dec.parameters(), lr=1e-2)
        g = torch.Generator().manual_seed(1)
        for _ in range(2):
            neural = torch.randn(2, 24, 16, generator=g)
            target = torch.randn(2, 16 * 128, generator=g) * 0.1
            terms = spectral_loss(synth(dec(neural, 16)).wave, target, (256,), mel_weight=1.0)
            loss = terms["spec_lin"] + terms["spec_mel"]
            opt.zero_grad()
            loss.backward()
            opt.step()
        return {k: v.clone() for k, v in dec.state_dict().items()}

    first, second = train(), train()
    assert all(torch.equal(first[k], second[k]) for k in first)
