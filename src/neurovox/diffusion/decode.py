"""Posterior-sampling decoding runs: prior + likelihood + sampler settings, loaded as a `TrialDecoder`.

The run kind is "dps" (diffusion posterior sampling in the broad sense); `dps.algorithm` picks the
sampler: "daps" (default; `neurovox.diffusion.daps`, Langevin on x0 at each noise level) or "dps"
(`neurovox.diffusion.dps`, Chung et al.'s gradient through the denoiser). On the default realistic
participant with a CPU-sized prior DAPS beats its trial-shuffled chance level but not the no-neural
baseline (BENCHMARKS.md, "Generative decoding").

A "dps" run directory (`make_dps_run`) holds no weights of its own: its config references a
finished prior run and a finished likelihood run, copies the likelihood run's `prepare`, `split`
and `window` sections (so evaluation rebuilds exactly the same test windows, normalised by the
likelihood run's Normalizer) and fixes the sampler settings (`DpsConfig`).

    dec = load_trial_decoder("runs/dps")
    out = dec.decode(neural_windows)        # (n, n_lead + n_target, n_channels), normalised
    out["mel_db"]                           # (n, n_target, 80); out["audio"] (n, n_target * 128)

`neurovox.decode.decode_run` writes a dps run's per-trial WAVs, PNGs and decoded.npz like any decoder's.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neurovox import dsp
from neurovox.config import from_dict
from neurovox.diffusion.daps import daps_sample
from neurovox.diffusion.ddim import make_sampler
from neurovox.diffusion.dps import PosteriorSampler, posterior_sample
from neurovox.diffusion.features import MEL_DB_FLOOR, griffin_lim, images_to_windows, mel_db_to_power, windows_to_images
from neurovox.diffusion.train_likelihood import LikelihoodRunConfig, WindowConfig, load_likelihood
from neurovox.diffusion.train_prior import load_prior
from neurovox.errors import ConfigError, DataError, RunError
from neurovox.preprocess.config import PrepareConfig
from neurovox.preprocess.splits import SplitConfig
from neurovox.runs import Run, open_run, start_run
from neurovox.utils.check import check_option, check_range


@dataclass
class DpsConfig:
    prior_run: str = ""              # finished prior run directory, path
    likelihood_run: str = ""         # finished likelihood run directory, path
    algorithm: str = "daps"          # "daps" (Langevin on x0 per noise level) or "dps" (gradient through the denoiser)
    n_steps: int = 100               # noise levels / reverse steps (cold start: spread over all T), count
    langevin_steps: int = 10         # DAPS: Langevin updates per noise level, count
    langevin_step_scale: float = 0.5  # DAPS: Langevin step x the stiffest curvature 1/sigma_t^2 + ||J_A||^2/tau^2, unitless (< 2)
    sampler: str = "ddpm"            # DPS base sampler: "ddpm" (as in DPS) or "ddim"
    eta: float = 1.0                 # DDIM stochasticity (sampler "ddim" only), 0..1
    guidance_scale: float = 1.0      # weight of the likelihood (1 = calibrated, 0 = prior only); DPS rule "residual": zeta
    guidance_rule: str = "likelihood"  # DPS: "likelihood" (tau^2-calibrated, PiGDM-widened) or "residual" (zeta / ||r||, the paper's)
    signal_scaled: bool = True       # DPS rule "residual": zeta_t = zeta * sqrt(abar_t) / ||r|| (a step of zeta in x0 space); False = paper's rule
    clip_x0: float = 1.2             # clip x0_hat to [-1, clip_x0] for the measurement and the step (unit mel scale); 0 = off
    warm_start_run: str = ""         # direct decoder run whose mel output starts the chain ("" = cold), path
    warm_start_t: float = 0.4        # warm start: noise level as a fraction of T (t_start = frac * T), fraction
    n_samples: int = 1               # posterior samples averaged per trial (mel dB mean), count
    batch_size: int = 16             # trials sampled together, count
    griffin_lim_iters: int = 32      # Griffin-Lim iterations for the audio, count
    vocoder: str = "griffin_lim"     # mel -> audio: "griffin_lim" or "formant" (speech run's encoder + synthesizer)
    speech_run: str = ""             # finished `neurovox train speech` run, needed by vocoder "formant", path

    def __post_init__(self) -> None:
        check_option("dps.algorithm", self.algorithm, ("daps", "dps"))
        check_option("dps.vocoder", self.vocoder, ("griffin_lim", "formant"))
        if self.vocoder == "formant" and not self.speech_run:
            raise ConfigError("dps.vocoder='formant' needs dps.speech_run=RUN (a finished `neurovox train speech` run).")
        check_range("dps.langevin_steps", self.langevin_steps, 0, None)
        check_range("dps.langevin_step_scale", self.langevin_step_scale, 0.0, None)
        check_option("dps.sampler", self.sampler, ("ddpm", "ddim"))
        check_option("dps.guidance_rule", self.guidance_rule, ("likelihood", "residual"))
        check_range("dps.eta", self.eta, 0.0, 1.0)
        check_range("dps.n_steps", self.n_steps, 1, None)
        check_range("dps.guidance_scale", self.guidance_scale, 0.0, None)
        check_range("dps.warm_start_t", self.warm_start_t, 0.0, 1.0, inclusive=False)
        check_range("dps.n_samples", self.n_samples, 1, None)


@dataclass
class DpsRunConfig:
    seed: int = 0                                                     # RNG seed of the sampler noise
    dps: DpsConfig = field(default_factory=DpsConfig)
    prepare: PrepareConfig = field(default_factory=PrepareConfig)     # copied from the likelihood run
    split: SplitConfig = field(default_factory=SplitConfig)           # copied from the likelihood run
    window: WindowConfig = field(default_factory=WindowConfig)        # copied from the likelihood run


def make_dps_run(out: str | Path, prior_run: str | Path, likelihood_run: str | Path, *,
                 overrides: dict[str, Any] | None = None, seed: int = 0, overwrite: bool = False) -> Run:
    """Create a finished "dps" run in `out` from a prior run, a likelihood run and sampler settings.

    `overrides` are DpsConfig fields (e.g. {"n_steps": 50, "guidance_scale": 0.5}).
    """
    prior = open_run(prior_run, expect_kind="prior", require_done=True)
    lik = open_run(likelihood_run, expect_kind="likelihood", require_done=True)
    lcfg = lik.typed_config(LikelihoodRunConfig)
    prior_frames = int(prior.config.get("prior", {}).get("n_frames", 128))
    if prior_frames != lcfg.window.n_target_frames:
        raise ConfigError(f"The prior generates windows of {prior_frames} frames but the likelihood run uses "
                          f"{lcfg.window.n_target_frames}; train both with the same window length.")
    dps = from_dict(DpsConfig, {**(overrides or {}), "prior_run": str(prior.path.resolve()),
                                "likelihood_run": str(lik.path.resolve())}, prefix="dps.")
    if dps.warm_start_run:
        dps.warm_start_run = str(open_run(dps.warm_start_run, expect_kind="decoder", require_done=True).path.resolve())
    if dps.speech_run:
        dps.speech_run = str(open_run(dps.speech_run, expect_kind="speech", require_done=True).path.resolve())
    cfg = DpsRunConfig(seed=seed, dps=dps, prepare=lcfg.prepare, split=lcfg.split, window=lcfg.window)
    run = start_run(out, kind="dps", config=cfg, seed=seed, data_path=lik.meta.get("data_path"), overwrite=overwrite)
    run.mark_done({"prior_run": dps.prior_run, "likelihood_run": dps.likelihood_run})
    return run


class DpsTrialDecoder:
    """TrialDecoder for a "dps" run: posterior samples of the mel prior given the neural window."""

    def __init__(self, run: Run, device: str = "cpu") -> None:
        cfg = run.typed_config(DpsRunConfig)
        self.run_dir = run.path
        self.config = cfg.dps
        self.seed = cfg.seed
        self.device = device
        self.denoiser, self.schedule, _ = load_prior(cfg.dps.prior_run, device)
        self.likelihood, self.normalizer, lik_run, good = load_likelihood(cfg.dps.likelihood_run, device)
        self.good = torch.from_numpy(good).to(device)
        self.noise_var = likelihood_noise_var(lik_run.path)
        self.n_lead_frames = cfg.window.n_lead_frames
        self.n_target_frames = cfg.window.n_target_frames
        self.prepare_config = cfg.prepare
        self.model_name = cfg.dps.algorithm + (" (warm start)" if cfg.dps.warm_start_run else "")
        self.causal = False
        self.warm = None
        if cfg.dps.warm_start_run:
            from neurovox.decoders import load_trial_decoder as load_direct

            self.warm = load_direct(cfg.dps.warm_start_run)
        self.speech = None
        # the mel is sampled from the prior, never rendered by the formant model: no resynthesis ceiling
        self.synthesis = f"diffusion mel, {cfg.dps.vocoder} vocoder"
        if cfg.dps.vocoder == "formant":
            from neurovox.encoder import load_speech_model

            self.speech = load_speech_model(cfg.dps.speech_run, device)
        self.last_timing: dict[str, float] = {}

    def info(self) -> dict[str, Any]:
        """What decode.json records about the decoder: the sampler settings and the last call's timing."""
        return {"model": self.model_name, "causal": self.causal, "synthesis": self.synthesis,
                "dps": asdict(self.config), "timing": self.last_timing}

    def _check(self, neural_windows: np.ndarray) -> np.ndarray:
        x = np.asarray(neural_windows, dtype=np.float32)
        want = self.n_lead_frames + self.n_target_frames
        if x.ndim != 3 or x.shape[1] != want or x.shape[2] != len(self.good):
            raise DataError(f"decode() expects neural windows of shape (n, {want}, {len(self.good)}) "
                            f"({self.n_lead_frames} lead + {self.n_target_frames} target frames), got {x.shape}.")
        return x

    def residual_norm(self, neural_windows: np.ndarray, mel_db: np.ndarray) -> np.ndarray:
        """||y - A(mel)|| per window (good channels): how well a mel (n, n_target, 80) explains the neural data."""
        x = self._check(neural_windows)
        y = torch.from_numpy(x[:, self.n_lead_frames:]).to(self.device)[..., self.good]
        with torch.no_grad():
            pred = self.likelihood(windows_to_images(torch.from_numpy(np.asarray(mel_db, np.float32)).to(self.device)))
        return (y - pred[..., self.good]).flatten(1).norm(dim=1).cpu().numpy()

    def sample_mel(self, neural_windows: np.ndarray, generator: torch.Generator | None = None, *,
                   n_steps: int | None = None, guidance_scale: float | None = None,
                   x_init_mel_db: np.ndarray | None = None, t_start: int | None = None) -> np.ndarray:
        """Posterior mel dB (n, n_target, 80) for normalised neural windows (n, n_lead + n_target, n_channels).

        Keyword arguments override the run's settings (for benchmarks); `x_init_mel_db` warm-starts.
        """
        c = self.config
        x = self._check(neural_windows)
        n_steps = c.n_steps if n_steps is None else n_steps
        zeta = c.guidance_scale if guidance_scale is None else guidance_scale
        good = self.good

        def measurement(x0: torch.Tensor) -> torch.Tensor:
            return self.likelihood(x0)[..., good]

        y_all = torch.from_numpy(x[:, self.n_lead_frames:]).to(self.device)[..., good]
        out = np.zeros((len(x), self.n_target_frames, 80), np.float32)
        for i in range(0, len(x), c.batch_size):
            y = y_all[i:i + c.batch_size]
            b = y.shape[0]
            shape = (b, 1, 80, self.n_target_frames)
            x_init = None
            if x_init_mel_db is not None:
                x_init = windows_to_images(torch.from_numpy(np.asarray(x_init_mel_db[i:i + b], np.float32))).to(self.device)
            acc = torch.zeros(b, self.n_target_frames, 80)
            for _ in range(c.n_samples):
                if c.algorithm == "daps":
                    # guidance_scale weighs the likelihood (tau^2 / zeta); 0 turns it off: each level's
                    # Tweedie estimate is re-noised as is, an unconditional annealed sample of the prior
                    img = daps_sample(self.denoiser, self.schedule, measurement, y, shape,
                                      noise_var=self.noise_var / max(zeta, 1e-12), n_steps=n_steps,
                                      n_langevin=c.langevin_steps if zeta > 0 else 0,
                                      step_scale=c.langevin_step_scale,
                                      x0_range=(-1.0, c.clip_x0) if c.clip_x0 else None,
                                      x_init=x_init, t_start=t_start, generator=generator)
                else:
                    base = make_sampler(self.schedule, c.sampler, eta=c.eta, clip_x0=c.clip_x0 or None)
                    sampler = PosteriorSampler(base, measurement, guidance_scale=zeta, signal_scaled=c.signal_scaled,
                                               rule=c.guidance_rule, noise_var=self.noise_var,
                                               x0_range=(-1.0, c.clip_x0) if c.clip_x0 else None)
                    img = posterior_sample(self.denoiser, sampler, y, shape, n_steps=n_steps, x_init=x_init,
                                           t_start=t_start if x_init is not None else None, generator=generator)
                acc += images_to_windows(img.clamp(-1.0, 1.5)).cpu()
            out[i:i + b] = (acc / c.n_samples).numpy()
        return np.maximum(out, MEL_DB_FLOOR)

    def vocode(self, mel_db: np.ndarray, seed: int) -> np.ndarray:
        """Audio (n, n_target * 128) from mel dB (n, n_target, 80) with the run's vocoder."""
        if self.speech is None:
            return np.stack([griffin_lim(m, n_iter=self.config.griffin_lim_iters, seed=seed + k)
                             for k, m in enumerate(mel_db)])
        from neurovox.encoder.evaluate import resynthesize

        # the mel's linear-power approximation is what the speech encoder reads (it was trained on
        # 256-bin power spectrograms); the synthesizer renders the 18 parameters it infers
        power = np.stack([mel_db_to_power(m) for m in mel_db])
        return resynthesize(self.speech, power, seed=seed)["wave"]

    def decode(self, neural_windows: np.ndarray, generator: Any = None) -> dict[str, np.ndarray]:
        x = self._check(neural_windows)
        gen = generator if isinstance(generator, torch.Generator) else torch.Generator().manual_seed(self.seed)
        t0 = time.perf_counter()
        x_init, t_start = None, None
        if self.warm is not None:
            x_init = self.warm.decode(x, generator=generator)["mel_db"]
            t_start = int(round(self.config.warm_start_t * (self.schedule.n_train_steps - 1)))
        mel = self.sample_mel(x, gen, x_init_mel_db=x_init, t_start=t_start)
        t1 = time.perf_counter()
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
        audio = self.vocode(mel, seed)
        self.last_timing = {"sampling_s": t1 - t0, "vocoding_s": time.perf_counter() - t1,
                            "decoded_s": len(x) * self.n_target_frames / dsp.FRAME_RATE_HZ}
        return {"mel_db": mel, "audio": audio.astype(np.float32)}


def likelihood_noise_var(likelihood_run: str | Path) -> float:
    """tau^2 of the measurement model: the likelihood run's validation MSE per element (z-scored neural
    units), i.e. how far held-out neural frames lie from A(true mel)."""
    import json

    path = Path(likelihood_run) / "metrics.json"
    try:
        return float(json.loads(path.read_text())["val"]["mse"])
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise RunError(f"Likelihood run {str(likelihood_run)!r} has no readable validation MSE in {path.name} "
                       f"({exc}); re-run `neurovox train likelihood`.") from exc


def load_trial_decoder(run_dir: str | Path, device: str = "cpu") -> DpsTrialDecoder:
    """Load a finished "dps" run as a TrialDecoder."""
    run = open_run(run_dir, expect_kind="dps", require_done=True)
    for key in ("prior_run", "likelihood_run"):
        path = run.config.get("dps", {}).get(key, "")
        if not path or not Path(path).is_dir():
            raise RunError(f"DPS run {str(run.path)!r} references {key} {path!r}, which does not exist. "
                           "Re-create it with `neurovox train likelihood ... --prior PRIOR --dps-out DPS`.")
    return DpsTrialDecoder(run, device=device)
