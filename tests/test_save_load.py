"""Save -> load -> identical outputs, for every kind of model a run holds.

Each model is built small with random weights (training is not what is tested), saved the way its
trainer saves it, loaded the way every consumer loads it (`load_trial_decoder`, `load_prior`,
`load_likelihood`), and must give bit-identical outputs on the same input.
"""

import json

import numpy as np
import pytest
import torch

from neurovox.config import from_dict
from neurovox.runs import start_run

N_CH, N_LEAD, N_TARGET = 16, 8, 32


def _normalizer_json(path, n_channels: int) -> None:
    from neurovox.preprocess import Normalizer

    x = np.random.default_rng(0).normal(size=(500, n_channels)).astype(np.float32)
    (path / "normalizer.json").write_text(json.dumps(Normalizer().fit(x, np.ones(500, bool)).state_dict()))


def _decoder_run(tmp_path, model: str):
    from neurovox.decoders.config import DecoderRunConfig

    cfg = from_dict(DecoderRunConfig, {"decoder": {"model": model, "n_lead_frames": N_LEAD,
                                                   "n_target_frames": N_TARGET}})
    run = start_run(tmp_path / model, kind="decoder", config=cfg, seed=0)
    _normalizer_json(run.path, N_CH)
    return run


@pytest.mark.parametrize("model, kwargs", [("resnet", {"widths": (4, 8), "blocks_per_stage": 1}),
                                           ("swin", {"dim": 8, "depths": (1,), "n_heads": 2, "window_t": 8, "time_dilations": (1,)}),
                                           ("lstm", {"hidden": 8}), ("gru", {"hidden": 8})])
def test_deep_decoder_reloads_to_identical_outputs(tmp_path, model, kwargs):
    from neurovox.decoders import build_decoder, load_trial_decoder, rectangular_layout
    from neurovox.decoders.train import save_model
    from neurovox.synth import N_RAW, FormantSynth, SynthConfig

    torch.manual_seed(0)
    net = build_decoder(model, n_channels=N_CH, n_out=N_RAW, causal=False, layout=rectangular_layout(4, 4), **kwargs)
    synth = FormantSynth(SynthConfig(pitch_range="female"))
    with torch.no_grad():  # weights away from their initial values, so a missed tensor would show
        for p in list(net.parameters()) + list(synth.parameters()):
            p.add_(0.01 * torch.randn_like(p))
    run = _decoder_run(tmp_path, model)
    save_model(run.path / "model.pt", model, net, synth=synth)
    run.mark_done()

    x = np.random.default_rng(1).normal(size=(3, N_LEAD + N_TARGET, N_CH)).astype(np.float32)
    net.eval()
    with torch.no_grad():
        expected = synth(net(torch.from_numpy(x), N_TARGET), generator=torch.Generator().manual_seed(5))
    loaded = load_trial_decoder(run.path)
    out = loaded.decode(x, generator=torch.Generator().manual_seed(5))
    assert np.array_equal(out["audio"], expected.wave.numpy())
    assert np.array_equal(loaded.decode(x, generator=torch.Generator().manual_seed(5))["mel_db"], out["mel_db"])


def test_mel_target_decoder_reloads_to_identical_outputs(tmp_path):
    from neurovox.decoders import build_decoder, load_trial_decoder
    from neurovox.decoders.linear import mel_db_to_audio
    from neurovox.decoders.train import save_model

    torch.manual_seed(0)
    net = build_decoder("lstm", n_channels=N_CH, n_out=80, causal=True, hidden=8)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.01 * torch.randn_like(p))
    mean, sd = -40.0 + torch.randn(80), 1.0 + torch.rand(80)
    run = _decoder_run(tmp_path, "lstm")
    save_model(run.path / "model.pt", "lstm", net, mel_stats=(mean, sd))
    run.mark_done()
    x = np.random.default_rng(1).normal(size=(3, N_LEAD + N_TARGET, N_CH)).astype(np.float32)
    net.eval()
    with torch.no_grad():
        expected = (net(torch.from_numpy(x), N_TARGET) * sd + mean).numpy()
    out = load_trial_decoder(run.path).decode(x, generator=np.random.default_rng(5))
    assert np.array_equal(out["mel_db"], expected) and "params" not in out
    assert np.array_equal(out["audio"], mel_db_to_audio(expected, generator=np.random.default_rng(5)))


def test_linear_decoder_reloads_to_identical_outputs(tmp_path):
    from neurovox.decoders import LinearBaseline, load_trial_decoder

    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, N_LEAD + N_TARGET, N_CH)).astype(np.float32)
    mel = rng.normal(size=(20, N_TARGET, 80)).astype(np.float32)
    model = LinearBaseline(n_components=5).fit(x, mel)
    run = _decoder_run(tmp_path, "linear")
    np.savez(run.path / "linear.npz", **model.state_dict())
    run.mark_done()
    loaded = load_trial_decoder(run.path)
    assert np.array_equal(loaded.decode(x[:4])["mel_db"], model.predict(x[:4], N_TARGET))


@pytest.mark.parametrize("arch", ["unet1d", "unet2d"])
def test_prior_reloads_to_identical_outputs(tmp_path, arch):
    from neurovox.diffusion.denoiser import DenoiserConfig, build_denoiser
    from neurovox.diffusion.schedule import NoiseSchedule
    from neurovox.diffusion.train_prior import PRIOR_FILE, PriorRunConfig, load_prior, save_prior

    torch.manual_seed(0)
    dcfg = DenoiserConfig(arch=arch, channels=(8, 16), n_res_blocks=1, n_heads=2, time_dim=16)
    net = build_denoiser(dcfg)
    with torch.no_grad():  # the zero-initialised output layers would hide a weight that is not reloaded
        for p in net.parameters():
            p.add_(0.01 * torch.randn_like(p))
    schedule = NoiseSchedule(200, "cosine", "v")
    run = start_run(tmp_path / "prior", kind="prior", config=from_dict(PriorRunConfig, {"denoiser": {"arch": arch}}),
                    seed=0)
    save_prior(run.path / PRIOR_FILE, net, schedule)
    run.mark_done()
    loaded, loaded_schedule, _ = load_prior(run.path)
    x, t = torch.randn(2, 1, 80, 32), torch.tensor([3, 150])
    net.eval()
    with torch.no_grad():
        assert torch.equal(loaded(x, t), net(x, t))
    assert loaded_schedule.config() == schedule.config()


def test_likelihood_reloads_to_identical_outputs(tmp_path):
    from neurovox.diffusion.likelihood import LikelihoodConfig, LikelihoodModel
    from neurovox.diffusion.train_likelihood import LIKELIHOOD_FILE, LikelihoodRunConfig, load_likelihood, save_likelihood

    torch.manual_seed(0)
    model = LikelihoodModel(N_CH, LikelihoodConfig(hidden=16))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    good = np.ones(N_CH, bool)
    good[3] = False
    run = start_run(tmp_path / "lik", kind="likelihood", config=LikelihoodRunConfig(), seed=0)
    save_likelihood(run.path / LIKELIHOOD_FILE, model, good)
    _normalizer_json(run.path, N_CH)
    run.mark_done()
    loaded, _, _, loaded_good = load_likelihood(run.path)
    mel = torch.randn(2, 1, 80, 32)
    model.eval()
    with torch.no_grad():
        assert torch.equal(loaded(mel), model(mel))
    assert np.array_equal(loaded_good, good)
