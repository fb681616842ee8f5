"""End to end on the tiny simulated participant (conftest `sim_hg_path`, 60 trials, SNR 0 dB): a
small prior (shipped corpus, 400 optimiser steps, ~45 s) + a likelihood model (~8 s), combined in a
"dps" run; loading as a TrialDecoder, decoding, determinism, and that posterior sampling really
conditions on the neural data: DAPS samples beat unconditional samples of the same prior and the
trial-shuffled chance level on PCC against the reference mel, and explain their own trial's neural
window better than other trials' windows. (Larger priors and step counts: benchmarks/bench_diffusion.py.)"""

import numpy as np
import pytest
import torch

from neurovox.config import from_dict
from neurovox.errors import ConfigError, RunError

PRIOR = {"denoiser": {"arch": "unet1d", "channels": [32, 48, 64], "n_res_blocks": 1, "n_heads": 2, "time_dim": 32},
         "prior": {"max_steps": 400, "batch_size": 16, "lr": 3e-3, "warmup_steps": 30, "val_every_steps": 400,
                   "corpus_copies": 1, "ema_decay": 0.98, "n_val_windows": 8}}
LIKELIHOOD = {"prepare": {"praat": False},
              "likelihood": {"hidden": 96, "n_blocks": 4, "max_epochs": 40, "patience_epochs": 40, "lr": 2e-3}}


@pytest.fixture(scope="module")
def dps_setup(sim_hg_path, tmp_path_factory):
    from neurovox.diffusion.decode import make_dps_run
    from neurovox.diffusion.train_likelihood import LikelihoodRunConfig, train_likelihood
    from neurovox.diffusion.train_prior import PriorRunConfig, train_prior

    root = tmp_path_factory.mktemp("dps")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small convolutions: one thread is faster than two on a shared machine
    try:
        from neurovox.io import read_recording
        from neurovox.preprocess.leakage import simulated_voice

        # the prior must not have heard the simulated participant's voice (its test words), issue 14
        voice = simulated_voice(read_recording(sim_hg_path).meta, sim_hg_path)
        assert voice, "the simulated file names the corpus voice it speaks"
        cfg = {**PRIOR, "prior": {**PRIOR["prior"], "exclude_voices": [voice]}}
        torch.manual_seed(0)
        prior = train_prior(root / "prior", from_dict(PriorRunConfig, cfg), progress=False)
        torch.manual_seed(0)
        lik = train_likelihood(sim_hg_path, root / "lik", from_dict(LikelihoodRunConfig, LIKELIHOOD), progress=False,
                               cache_dir=root / "cache")
        dps = make_dps_run(root / "dps", prior.path, lik.path)
        yield root, prior, lik, dps
    finally:
        torch.set_num_threads(threads)


def test_prior_report_shows_samples_next_to_real_windows(dps_setup):
    """`train prior` ends with RUN/report.html: unconditional samples beside real held-out windows, and two
    numbers that tell speech from noise. Even this 400-step prior has the spectral profile of speech
    (measured r 0.88 vs 0.11 for noise) and words-and-pauses loudness contrast (frame-energy std 10.4 dB vs
    1.8 for noise and 19.1 for real windows); the 2000-step benchmark prior: r 0.92, 17.5 dB vs 22.9."""
    import json

    _, prior, _, _ = dps_setup
    stats = json.loads((prior.path / "samples.json").read_text())
    assert "figures/samples.png" in (prior.path / "report.html").read_text()
    assert (prior.path / "figures" / "samples.png").stat().st_size > 10_000
    assert json.loads((prior.path / "DONE").read_text())["samples"] == stats
    real, noise, fake = stats["real_windows"], stats["gaussian_noise"], stats["prior_samples"]
    assert real["profile_pcc"] > 0.999 and abs(noise["profile_pcc"]) < 0.5
    assert real["energy_std_db"] > 2 * noise["energy_std_db"]     # words and pauses vs flat noise
    assert fake["profile_pcc"] > 0.75                               # the tilt and bumps of speech
    assert fake["energy_std_db"] > 3 * noise["energy_std_db"]       # bursts and pauses


@pytest.mark.slow  # ~1.5 min of sampling on 2 idle cores: a long bar
def test_posterior_samples_beat_unconditional_and_chance(dps_setup, sim_hg_path):
    """PCC (per trial, speech segment) of DAPS samples vs the reference mel, against (a) unconditional
    samples of the same prior (guidance off, same noise) and (b) chance: DAPS fed trial-shuffled
    neural windows. Measured on 12 test trials: 0.44 vs 0.18 unconditional vs 0.27 chance
    (a 1500-step 3.4 M-parameter prior reaches 0.78 vs 0.08 vs 0.44, BENCHMARKS.md)."""
    from neurovox.decode import trial_windows
    from neurovox.diffusion.decode import load_trial_decoder
    from neurovox.evaluate.metrics import pcc_per_trial

    _, _, _, dps = dps_setup
    dec = load_trial_decoder(dps.path)
    assert dec.config.algorithm == "daps" and dec.noise_var > 0
    win = trial_windows(dec, dps, sim_hg_path, "test")
    n = 12
    y, ref, mask = win["neural"][:n], win["mel_db"][:n], win["speech_mask"][:n]
    shuffled = y[np.roll(np.arange(n), 1)]
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    pcc = pcc_per_trial(ref, dec.sample_mel(y, g()), mask).mean()
    free = pcc_per_trial(ref, dec.sample_mel(y, g(), guidance_scale=0.0), mask).mean()
    chance = pcc_per_trial(ref, dec.sample_mel(shuffled, g()), mask).mean()
    print(f"PCC daps {pcc:.3f}, unconditional {free:.3f}, chance (shuffled neural) {chance:.3f}")
    assert pcc > free + 0.15
    assert pcc > chance + 0.1


def test_dps_conditions_on_neural_data(dps_setup, sim_hg_path):
    from neurovox.decode import trial_windows
    from neurovox.diffusion.decode import load_trial_decoder

    from neurovox.diffusion.decode import make_dps_run

    root, prior, lik, _ = dps_setup
    assert lik.is_done and (lik.path / "normalizer.json").is_file()
    dps = make_dps_run(root / "dps_chung", prior.path, lik.path, overrides={"algorithm": "dps", "n_steps": 20},
                       overwrite=True)
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
    assert r_dps.mean() < 0.92 * r_free.mean()   # measured 108.3 vs 138.3
    assert r_dps.mean() < 0.95 * r_other.mean()  # measured 108.3 vs 139.9
    assert np.mean(r_dps < r_free) >= 0.6           # per trial: 4 of 6 (quiet unconditional samples can fit well)
    # determinism with a generator
    assert np.array_equal(dec.sample_mel(y[:2], g()), dec.sample_mel(y[:2], g()))
    assert dps_mel.shape == (n, 128, 80) and dps_mel.min() >= -80.0


@pytest.mark.slow  # ~55 s on 2 cores, most of it evaluating 30 trials; the sampler itself is in the default suite
def test_decode_outputs_and_run_files(dps_setup, sim_hg_path, tmp_path, capsys):
    from neurovox.decode import decode_run
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
    # neurovox evaluate scores a dps run like any decoder: metrics with the trial-shuffled chance, a report
    import json

    from neurovox.cli import main

    assert main(["evaluate", "--run", str(cheap.path), "--data", str(sim_hg_path), "--out", str(tmp_path / "eval"),
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    printed = capsys.readouterr().out  # every metric with chance, the no-neural baseline and the gain over it
    assert "no-neural" in printed and "gain over no-neural [95% CI]" in printed, printed
    assert sum(line.startswith("PCC, tilt removed") and "[" in line for line in printed.splitlines()) == 1, printed
    result = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert result["metrics"]["pcc"]["n"] == 30 and np.isfinite(result["metrics"]["pcc"]["mean"])
    assert np.isfinite(result["chance"]["shuffled"]["pcc"]["mean"])
    assert (tmp_path / "eval" / "report.html").stat().st_size > 0
    # the formant vocoder: a speech run's encoder reads the mel's power approximation, its synthesizer renders
    speech = _untrained_speech_run(tmp_path / "speech")
    with pytest.raises(ConfigError, match="needs dps.speech_run"):
        make_dps_run(tmp_path / "f0", cfg["prior_run"], cfg["likelihood_run"], overrides={"vocoder": "formant"})
    formant = make_dps_run(tmp_path / "formant", cfg["prior_run"], cfg["likelihood_run"],
                           overrides={"n_steps": 2, "vocoder": "formant", "speech_run": str(speech)})
    dec = load_trial_decoder(formant.path)
    mel = np.full((2, 128, 80), -20.0, np.float32)
    mel[:, 40:90, 5:30] = 20.0                      # a loud low-frequency segment in the middle
    audio = dec.vocode(mel, seed=0)
    assert audio.shape == (2, 128 * 128) and np.isfinite(audio).all() and audio.std() > 0
    from neurovox.diffusion.features import mel_db_to_power, griffin_lim
    from neurovox.encoder import load_speech_model
    from neurovox.encoder.evaluate import resynthesize

    direct = resynthesize(load_speech_model(speech), np.stack([mel_db_to_power(m) for m in mel]), seed=0)["wave"]
    np.testing.assert_array_equal(audio, direct)    # exactly the speech run's encoder + synthesizer
    assert not np.allclose(audio[0], griffin_lim(mel[0], n_iter=4))
    # a dps run made with the formant vocoder is a decoder with a ceiling: evaluate finds its speech run
    from neurovox.evaluate.evaluate import find_speech_run

    assert find_speech_run(formant.config, formant.meta) == str(speech.resolve())


def _untrained_speech_run(path):
    """A finished speech run holding a freshly initialised (small) encoder and the default synthesizer
    (the test checks the mel -> parameters -> audio wiring, not the audio's quality)."""
    from neurovox.encoder import EncoderConfig, SpeechEncoder
    from neurovox.encoder.train import SpeechRunConfig, save_speech_model
    from neurovox.runs import start_run
    from neurovox.synth import FormantSynth, SynthConfig

    run = start_run(path, kind="speech", config=SpeechRunConfig(), seed=0)
    torch.manual_seed(0)
    save_speech_model(run.path / "model.pt", SpeechEncoder(EncoderConfig(hidden=16, n_blocks=1)),
                      FormantSynth(SynthConfig()))
    run.mark_done()
    return run.path


def test_dps_run_errors(dps_setup, tmp_path):
    from neurovox.diffusion.decode import load_trial_decoder, make_dps_run

    _, prior, lik, _ = dps_setup
    with pytest.raises(RunError, match="a prior run is needed"):
        make_dps_run(tmp_path / "x", lik.path, lik.path)
    with pytest.raises(ConfigError, match="dps.sampler"):
        make_dps_run(tmp_path / "y", prior.path, lik.path, overrides={"sampler": "euler"})
    with pytest.raises(RunError, match="a dps run is needed"):
        load_trial_decoder(lik.path)
