"""End to end on a tiny simulated participant: a small prior (shipped corpus) + a likelihood model,
combined in a "dps" run. DPS-decoded mel spectrograms must beat unconditional samples of the same
prior and the chance level (trial-shuffled neural windows) by a wide margin in PCC."""

import numpy as np
import pytest
import torch

from neurovox.config import from_dict
from neurovox.errors import ConfigError, RunError

PRIOR = {"denoiser": {"arch": "unet1d", "channels": [32, 48, 64], "n_res_blocks": 1, "n_heads": 2, "time_dim": 32},
         "prior": {"max_steps": 150, "batch_size": 16, "lr": 2e-3, "warmup_steps": 20, "val_every_steps": 150,
                   "corpus_copies": 1, "ema_decay": 0.99, "n_val_windows": 16}}
LIKELIHOOD = {"prepare": {"praat": False}, "likelihood": {"hidden": 48, "n_blocks": 4, "max_epochs": 12, "patience_epochs": 12}}


@pytest.fixture(scope="module")
def dps_setup(sim_hg_path, tmp_path_factory):
    from neurovox.diffusion.decode import make_dps_run
    from neurovox.diffusion.train_likelihood import LikelihoodRunConfig, train_likelihood
    from neurovox.diffusion.train_prior import PriorRunConfig, train_prior

    root = tmp_path_factory.mktemp("dps")
    torch.manual_seed(0)
    prior = train_prior(root / "prior", from_dict(PriorRunConfig, PRIOR), progress=False)
    torch.manual_seed(0)
    lik = train_likelihood(sim_hg_path, root / "lik", from_dict(LikelihoodRunConfig, LIKELIHOOD), progress=False,
                           cache_dir=root / "cache")
    dps = make_dps_run(root / "dps", prior.path, lik.path, overrides={"n_steps": 30, "guidance_scale": 1.0})
    return root, prior, lik, dps


def test_dps_conditions_on_neural_data(dps_setup, sim_hg_path):
    from neurovox.decoders.decode import trial_windows
    from neurovox.diffusion.decode import load_trial_decoder
    from neurovox.evaluate.metrics import pcc_per_trial

    _, _, lik, dps = dps_setup
    assert lik.is_done and (lik.path / "normalizer.json").is_file()
    dec = load_trial_decoder(dps.path)
    assert (dec.n_lead_frames, dec.n_target_frames) == (16, 128)
    win = trial_windows(dec, dps, sim_hg_path, "test")
    n = 12
    y, ref, mask = win["neural"][:n], win["mel_db"][:n], win["speech_mask"][:n]
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    dps_mel = dec.sample_mel(y, g())
    free_mel = dec.sample_mel(y, g(), guidance_scale=0.0)              # unconditional prior samples
    shuffled_mel = dec.sample_mel(y[np.roll(np.arange(n), 1)], g())   # chance: another trial's neural data
    pcc = pcc_per_trial(ref, dps_mel, mask).mean()
    pcc_free = pcc_per_trial(ref, free_mel, mask).mean()
    pcc_chance = pcc_per_trial(ref, shuffled_mel, mask).mean()
    print(f"PCC dps {pcc:.3f}, unconditional {pcc_free:.3f}, shuffled {pcc_chance:.3f}")
    assert pcc > 0.5
    assert pcc > pcc_free + 0.3
    assert pcc > pcc_chance + 0.2
    # determinism with a generator
    assert np.array_equal(dec.sample_mel(y[:2], g()), dec.sample_mel(y[:2], g()))


def test_decode_run_writes_files(dps_setup, sim_hg_path, tmp_path):
    from neurovox.diffusion import decode_run
    from neurovox.diffusion.decode import load_trial_decoder

    _, _, _, dps = dps_setup
    dec = load_trial_decoder(dps.path)
    out = dec.decode(np.zeros((1, 144, dec.likelihood.n_channels), np.float32))
    assert out["mel_db"].shape == (1, 128, 80) and out["audio"].shape == (1, 128 * 128)
    assert np.isfinite(out["audio"]).all()
    with pytest.raises(Exception, match="neural windows of shape"):
        dec.decode(np.zeros((1, 100, dec.likelihood.n_channels), np.float32))


def test_dps_run_errors(dps_setup, tmp_path):
    from neurovox.diffusion.decode import make_dps_run

    root, prior, lik, _ = dps_setup
    with pytest.raises(RunError, match="a prior run is needed"):
        make_dps_run(tmp_path / "x", lik.path, lik.path)
    with pytest.raises(ConfigError, match="dps.sampler"):
        make_dps_run(tmp_path / "y", prior.path, lik.path, overrides={"sampler": "euler"})
