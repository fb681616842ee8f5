"""neurovox.diffusion: generative decoding with a mel diffusion prior (approach B).

    schedule.py        NoiseSchedule (VP, cosine/linear; buffers; epsilon/v/x0 conversions)
    denoiser.py        MelUNet (2-D U-Net over 1 x 80 x T) and TemporalUNet (1-D, CPU-friendly), one body
    ddim.py            DDIMSampler, DDPMSampler (set_timesteps / step -> StepOutput(prev_sample, pred_x0))
    dps.py             PosteriorSampler (Diffusion Posterior Sampling, gradient through the denoiser)
    likelihood.py      LikelihoodModel A: mel -> z-scored neural features (two-sided temporal convs)
    whisper.py         optional Whisper-encoder features from a local directory
    features.py        the prior's fixed mel scale, Griffin-Lim vocoding
    train_prior.py     `neurovox train prior`; train_likelihood.py `neurovox train likelihood`
    decode.py          "dps" runs: make_dps_run, load_trial_decoder (TrialDecoder)
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "NoiseSchedule": "schedule", "MelUNet": "denoiser", "DenoiserConfig": "denoiser", "TemporalUNet": "denoiser",
    "DDIMSampler": "ddim", "DDPMSampler": "ddim", "StepOutput": "ddim", "PosteriorSampler": "dps",
    "posterior_sample": "dps", "LikelihoodModel": "likelihood", "LikelihoodConfig": "likelihood",
    "train_prior": "train_prior", "load_prior": "train_prior", "train_likelihood": "train_likelihood",
    "load_likelihood": "train_likelihood", "make_dps_run": "decode", "load_trial_decoder": "decode",
    "DpsConfig": "decode",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"neurovox.diffusion.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'neurovox.diffusion' has no attribute {name!r}")
