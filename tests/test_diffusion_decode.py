"""End to end on the tiny simulated participant (conftest `sim_hg_path`): a small prior (shipped
corpus, a few optimiser steps: it only has to exist) + a likelihood model, combined in a "dps"
run; loading as a TrialDecoder, decoding, determinism, and that the sampler measurably conditions
on the neural data: DPS samples explain their own trial's neural window far better than
unconditional samples of the same prior, and better than they explain other trials' windows.
(PCC against the reference mel is measured by benchmarks/bench_diffusion.py with a trained prior.)"""

import numpy as np
import pytest
import torch

from neurovox.config import from_dict
from neurovox.errors import ConfigError, RunError

PRIOR = {"denoiser": {"arch": "unet1d", "channels": [32, 48, 64], "n_res_blocks": 1, "n_heads": 2, "time_dim": 32},
         "prior": {"max_steps": 120, "batch_size": 8, "lr": 2e-3, "warmup_steps": 10, "val_every_steps": 120,
                   "corpus_copies": 1, "ema_decay": 0.9, "n_val_windows": 8}}
LIKELIHOOD = {"prepare": {"praat": False}, "likelihood": {"hidden": 48, "n_blocks": 4, "max_epochs": 12, "patience_epochs": 12}}


@pytest.fixture(scope="module")
def dps_setup(sim_hg_path, tmp_path_factory):
    from neurovox.diffusion.decode import make_dps_run
    from neurovox.diffusion.train_likelihood import LikelihoodRunConfig, train_likelihood
    from neurovox.diffusion.train_prior import PriorRunConfig, train_prior

    root = tmp_path_factory.mktemp("dps")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small convolutions: one thread is faster than two on a shared machine
    try:
        torch.manual_seed(0)
        prior = train_prior(root / "prior", from_dict(PriorRunConfig, PRIOR), progress=False)
        torch.manual_seed(0)
        lik = train_likelihood(sim_hg_path, root / "lik", from_dict(LikelihoodRunConfig, LIKELIHOOD), progress=False,
                               cache_dir=root / "cache")
        dps = make_dps_run(root / "dps", prior.path, lik.path, overrides={"n_steps": 20, "guidance_scale": 1.0})
        yield root, prior, lik, dps
    finally:
        torch.set_num_threads(threads)


def test_dps_conditions_on_neural_data(dps_setup, sim_hg_path):
    from neurovox.decoders.decode import trial_windows
    from neurovox.diffusion.decode import load_trial_decoder

    _, _, lik, dps = dps_setup
    assert lik.is_done and (lik.path / "normalizer.json").is_file()
    dec = load_trial_decoder(dps.path)
    assert (dec.n_lead_frames, dec.n_target_frames) == (16, 128)
    win = trial_windows(dec, dps, sim_hg_path, "test")
    n = 6
    y = win["neural"][:n]
    shift = np.roll(np.arange(n), 1)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    dps_mel = dec.sample_mel(y, g())
    free_mel = dec.sample_mel(y, g(), guidance_scale=0.0)          # unconditional samples, same noise
    r_dps = dec.residual_norm(y, dps_mel)                           # ||y_i - A(x_i)||
    r_free = dec.residual_norm(y, free_mel)
    r_other = dec.residual_norm(y[shift], dps_mel)                  # the same samples vs other trials' data
    print(f"residual dps {r_dps.mean():.1f}, unconditional {r_free.mean():.1f}, other trials {r_other.mean():.1f}")
    assert r_dps.mean() < 0.92 * r_free.mean()   # measured 95.8 vs 107.8
    assert r_dps.mean() < 0.95 * r_other.mean()  # measured 95.8 vs 105.9
    assert np.all(r_dps < r_free)
    # determinism with a generator
    assert np.array_equal(dec.sample_mel(y[:2], g()), dec.sample_mel(y[:2], g()))
    assert dps_mel.shape == (n, 128, 80) and dps_mel.min() >= -80.0


def test_decode_outputs_and_run_files(dps_setup, sim_hg_path, tmp_path):
    from neurovox.diffusion import decode_run
    from neurovox.diffusion.decode import load_trial_decoder
    from neurovox.errors import DataError

    _, _, _, dps = dps_setup
    dec = load_trial_decoder(dps.path)
    out = dec.decode(np.zeros((1, 144, dec.likelihood.n_channels), np.float32))
    assert out["mel_db"].shape == (1, 128, 80) and out["audio"].shape == (1, 128 * 128)
    assert np.isfinite(out["audio"]).all()
    with pytest.raises(DataError, match="neural windows of shape"):
        dec.decode(np.zeros((1, 100, dec.likelihood.n_channels), np.float32))
    # neurovox decode --run DPS dispatches here (a cheap dps run of the same prior and likelihood)
    from neurovox.diffusion.decode import make_dps_run

    cfg = dps.config["dps"]
    cheap = make_dps_run(tmp_path / "cheap", cfg["prior_run"], cfg["likelihood_run"],
                         overrides={"n_steps": 2, "griffin_lim_iters": 2, "batch_size": 32})
    folder = decode_run(cheap.path, sim_hg_path, tmp_path / "decoded", trials="test", write_png=False)
    with np.load(folder / "decoded.npz") as z:
        assert z["decoded_mel_db"].shape[1:] == (128, 80) and len(z["trial"]) == 30
    assert len(list((folder / "wav").glob("*_decoded.wav"))) == 30


def test_dps_run_errors(dps_setup, tmp_path):
    from neurovox.diffusion.decode import load_trial_decoder, make_dps_run

    _, prior, lik, _ = dps_setup
    with pytest.raises(RunError, match="a prior run is needed"):
        make_dps_run(tmp_path / "x", lik.path, lik.path)
    with pytest.raises(ConfigError, match="dps.sampler"):
        make_dps_run(tmp_path / "y", prior.path, lik.path, overrides={"sampler": "euler"})
    with pytest.raises(RunError, match="a dps run is needed"):
        load_trial_decoder(lik.path)
