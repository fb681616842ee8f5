"""Resource limits: memory budgets (env overrides) and the "will it fit" check before training
(`neurovox.utils.memory.check_fits`, `neurovox.diffusion.train_prior.check_prior_fits`)."""

from __future__ import annotations

import re

import pytest
import torch

from neurovox.cli import main
from neurovox.errors import ConfigError, ResourceError
from neurovox.utils import memory
from neurovox.utils.memory import check_fits, chunk_bytes, estimate_training_memory, in_memory_limit_bytes

GIB = 1 << 30


def _net(width: int = 32) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Conv1d(8, width, 5, padding=2), torch.nn.BatchNorm1d(width), torch.nn.GELU(),
                               torch.nn.Dropout(0.1), torch.nn.Conv1d(width, 8, 5, padding=2))


def test_budgets_follow_available_memory_and_env(monkeypatch):
    monkeypatch.delenv(memory.ENV_MAX_IN_MEMORY_MB, raising=False)
    monkeypatch.delenv(memory.ENV_CHUNK_MB, raising=False)
    assert memory.available_memory_bytes() > 0
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: 4 * GIB)
    assert in_memory_limit_bytes() == GIB                  # a quarter of what is available ...
    assert chunk_bytes() == 256 << 20                      # min(256 MiB, 4 GiB / 16)
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: 64 * GIB)
    assert in_memory_limit_bytes() == 2 * GIB              # ... capped at 2 GiB
    monkeypatch.setenv(memory.ENV_MAX_IN_MEMORY_MB, "100")
    monkeypatch.setenv(memory.ENV_CHUNK_MB, "0.5")
    assert in_memory_limit_bytes() == 100 << 20 and chunk_bytes() == 1 << 19 and chunk_bytes(3) == 3 << 20
    monkeypatch.setenv(memory.ENV_CHUNK_MB, "lots")
    with pytest.raises(ConfigError, match=r"NEUROVOX_CHUNK_MB must be a number of MiB \(e.g. NEUROVOX_CHUNK_MB=512\), "
                                          r"got 'lots'"):
        chunk_bytes()


def test_estimate_scales_with_batch_and_leaves_model_untouched():
    torch.manual_seed(0)
    net = _net().train()
    x = torch.randn(16, 8, 400)
    stats = {k: v.clone() for k, v in net.state_dict().items()}
    rng = torch.get_rng_state()
    w1, a1, _ = estimate_training_memory(net, x[:1], batch_size=16, loss_fn=lambda b: net(b).mean())  # dropout draws
    w16, a16, _ = estimate_training_memory(net, x, batch_size=16, loss_fn=lambda b: net(b).mean())
    n_weights = sum(p.numel() * 4 for p in net.parameters())
    assert w1 == w16 and w1 >= 4 * n_weights               # parameters + gradients + two AdamW slots (+ BN buffers)
    assert abs(a1 - a16) / a16 < 0.02                      # activations scale linearly with the batch
    assert a16 > 16 * 400 * 4 * (8 + 3 * 32)               # at least the input and the 3 saved width-32 activations
    # BatchNorm statistics, random generator and gradients as before
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in stats.items())
    assert torch.equal(rng, torch.get_rng_state()) and all(p.grad is None for p in net.parameters())


def test_check_fits_refuses_huge_batch_with_a_clear_message(monkeypatch):
    monkeypatch.delenv(memory.ENV_NO_FIT_CHECK, raising=False)
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: 2 * GIB)  # not the shared machine's varying RAM
    net = _net()
    est = check_fits(net, torch.randn(1, 8, 400), "cpu", batch_size=8, loss_fn=lambda x: net(x).mean())
    assert est.fits and est.peak_bytes < 100 << 20
    with pytest.raises(ResourceError) as info:
        check_fits(net, torch.randn(1, 8, 400), "cpu", batch_size=10 ** 9, loss_fn=lambda x: net(x).mean(),
                   what="toy training", reduce="toy.batch_size or toy.window")
    msg = str(info.value)
    assert re.match(r"toy training will not fit in memory: estimated peak [\d.]+ TiB at batch size 1000000000 "
                    r"\(weights, gradients and optimiser state .*, activations .*\) but 2 GiB is free on CPU "
                    r"RAM\. Reduce toy.batch_size or toy.window: a batch size of at most \d+ would fit\.", msg), msg
    n_fit = int(re.search(r"at most (\d+) would fit", msg).group(1))
    assert check_fits(net, torch.randn(1, 8, 400), "cpu", batch_size=n_fit, loss_fn=lambda x: net(x).mean()).fits
    with pytest.raises(ResourceError):
        check_fits(net, torch.randn(1, 8, 400), "cpu", batch_size=n_fit + 1, loss_fn=lambda x: net(x).mean())
    monkeypatch.setenv(memory.ENV_NO_FIT_CHECK, "1")      # the escape hatch named in the message
    assert not check_fits(net, torch.randn(1, 8, 400), "cpu", batch_size=10 ** 9, loss_fn=lambda x: net(x).mean()).fits


def test_check_fits_on_meta_device_allocates_nothing(monkeypatch):
    """A model and a window far beyond any machine's memory, estimated on the meta device."""
    monkeypatch.delenv(memory.ENV_NO_FIT_CHECK, raising=False)
    with torch.device("meta"):
        net = _net(width=1 << 16)                          # 2 x 5 x 8 x 65536 weights; fine, but the window is huge
    window = torch.zeros(1, 8, 10 ** 8, device="meta")     # 10^8 frames (a real tensor would be 3 GiB, its activations TiB)
    with pytest.raises(ResourceError, match=r"will not fit in memory: estimated peak [\d.]+ [PT]iB at batch size 4 .* "
                                            r"even a batch of one does not fit, so shorten the window or narrow"):
        check_fits(net, window, "cpu", batch_size=4, loss_fn=lambda x: net(x).mean())


def test_prior_training_refused_before_anything_is_written(tmp_path, capsys, monkeypatch):
    from neurovox.diffusion.train_prior import PriorRunConfig, check_prior_fits

    monkeypatch.delenv(memory.ENV_NO_FIT_CHECK, raising=False)
    assert check_prior_fits(PriorRunConfig(), "cpu").peak_bytes > 0
    out = tmp_path / "prior"
    code = main(["train", "prior", "--out", str(out), "--set", "prior.batch_size=10000000", "--set", "prior.n_frames=1024"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert re.search(r"prior training \([\d.]+ M parameters, windows of 1024 frames\) will not fit in memory: "
                     r"estimated peak .* at batch size 10000000 .* Reduce prior.batch_size, prior.n_frames or "
                     r"denoiser.channels", err), err
    assert not out.exists()                                # refused before the run directory was made


def test_decoder_training_refused_before_anything_is_written(sim_hg_path, tmp_path, capsys, monkeypatch):
    """A decoder batch that cannot fit stops before the run directory exists, naming the settings to change."""
    monkeypatch.delenv(memory.ENV_NO_FIT_CHECK, raising=False)
    out = tmp_path / "decoder"
    code = main(["train", "decoder", "--data", str(sim_hg_path), "--model", "lstm", "--out", str(out),
                 "--cache-dir", str(tmp_path / "cache"), "--set", "prepare.praat=false",
                 "--set", "decoder.batch_size=100000000"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert re.search(r"lstm decoder training \([\d.]+ M parameters, windows of 16\+128 frames\) will not fit in "
                     r"memory: estimated peak .* at batch size 100000000 .* Reduce decoder.batch_size, "
                     r"decoder.n_target_frames or the decoder widths: a batch size of at most \d+ would fit", err), err
    assert not out.exists()
