"""Training of the mel diffusion prior (`neurovox train prior`).

build (speech streams -> windows; MelUNet + NoiseSchedule) -> loop (random t, noise, MSE on the
schedule's target; EMA of the weights) -> eval (validation loss at fixed t) -> checkpoint.
Lightning is a thin wrapper that provides checkpoints + resume, TensorBoard and a progress bar.
The final EMA weights are saved as RUN/prior.pt and load with `load_prior(run_dir)`.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from neurovox.diffusion import features
from neurovox.diffusion.denoiser import DenoiserConfig, build_denoiser
from neurovox.diffusion.prior_report import write_prior_samples
from neurovox.diffusion.schedule import NoiseSchedule
from neurovox.diffusion.speech_data import MelWindows, RecordingSplit, collect_speech, split_streams
from neurovox.errors import ConfigError, RunError
from neurovox.preprocess.leakage import record_training_data
from neurovox.runs import Run, load_run_weights, start_run
from neurovox.utils.check import check_option, check_range
from neurovox.utils.memory import MemoryEstimate, check_fits
from neurovox.utils.training import ddp_settings, ema_update, lr_factor

PRIOR_FILE = "prior.pt"


@dataclass
class PriorTrainConfig:
    n_frames: int = 128                 # window length, frames at 125 Hz (1.024 s)
    schedule: str = "cosine"            # "cosine" or "linear" VP schedule
    prediction: str = "epsilon"         # denoiser target: "epsilon", "v" or "x0"
    n_train_steps: int = 1000           # diffusion steps T, count
    batch_size: int = 16                # windows per optimiser step, count
    lr: float = 2e-4                    # peak AdamW learning rate, 1/step
    warmup_steps: int = 200             # linear warm-up, optimiser steps
    max_steps: int = 20000              # optimiser steps (cosine decay to 10 % of lr, utils/training.py), count
    ema_decay: float = 0.999            # EMA of weights per step, fraction
    val_fraction: float = 0.05          # tail of each stream held out for validation, fraction
    n_val_windows: int = 64             # validation windows, count
    val_every_steps: int = 500          # validation interval, optimiser steps
    use_corpus: bool = True             # add the shipped multi-voice corpus
    corpus_copies: int = 4              # corpus passes with different pauses/noise/gain, count
    speech_paths: tuple[str, ...] = ()  # audio files/dirs and recordings (set by --speech), paths
    exclude_voices: tuple[str, ...] = ()  # corpus voices left out (a simulated participant's own voice), names
    split_scheme: str = "flinker"       # recordings in speech_paths: only trials outside this split's test set
    split_fold: int = 0                 # test fold of split_scheme (kfold / lowo / swpd), index
    split_n_folds: int = 10             # folds of split_scheme (kfold / swpd), count
    num_threads: int = 0                # torch CPU threads (0 = torch default), count
    devices: int = 1                    # processes per node (GPUs or CPU processes): > 1 trains with DDP, each
                                        # process taking batch_size / (devices x num_nodes) windows of every step
    num_nodes: int = 1                  # machines (DDP across nodes), count

    def __post_init__(self) -> None:
        check_range("prior.devices", self.devices, 1, None)
        check_range("prior.num_nodes", self.num_nodes, 1, None)
        if self.batch_size % (self.devices * self.num_nodes):
            raise ConfigError(f"prior.batch_size ({self.batch_size}) must be a multiple of prior.devices x "
                              f"prior.num_nodes ({self.devices} x {self.num_nodes}).")
        check_option("prior.schedule", self.schedule, ("cosine", "linear"))
        check_option("prior.prediction", self.prediction, ("epsilon", "v", "x0"))
        check_range("prior.ema_decay", self.ema_decay, 0.0, 1.0)
        check_range("prior.val_fraction", self.val_fraction, 0.0, 0.5)
        check_option("prior.split_scheme", self.split_scheme, ("flinker", "kfold", "lowo", "swpd"))


@dataclass
class PriorRunConfig:
    seed: int = 0                                                   # RNG seed, set once by the CLI
    denoiser: DenoiserConfig = field(default_factory=DenoiserConfig)
    prior: PriorTrainConfig = field(default_factory=PriorTrainConfig)


QUICK_PRIOR = {"denoiser": {"arch": "unet1d", "channels": [128, 160, 192], "n_res_blocks": 1, "n_heads": 4, "time_dim": 64},
               "prior": {"max_steps": 1500, "batch_size": 16, "lr": 1e-3, "warmup_steps": 100, "val_every_steps": 500,
                         "corpus_copies": 2, "ema_decay": 0.995}}


def diffusion_loss(denoiser: torch.nn.Module, schedule: NoiseSchedule, x0: torch.Tensor,
                   generator: torch.Generator | None = None, t: torch.Tensor | None = None) -> torch.Tensor:
    """E_t,eps || f(x_t, t) - target ||^2 (Ho et al. 2020, eq. 14; target per `schedule.prediction`)."""
    if t is None:
        t = torch.randint(0, schedule.n_train_steps, (x0.shape[0],), generator=generator, device=x0.device)
    noise = torch.randn(x0.shape, generator=generator, device=x0.device)
    xt = schedule.add_noise(x0, noise, t)
    return F.mse_loss(denoiser(xt, t), schedule.training_target(x0, noise, t))


def _lightning_module(cfg: PriorRunConfig, denoiser: torch.nn.Module, schedule: NoiseSchedule):
    import lightning as L

    class PriorModule(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.denoiser = denoiser
            self.ema = copy.deepcopy(denoiser).requires_grad_(False)
            self.schedule = schedule
            self.generator = torch.Generator().manual_seed(cfg.seed)

        def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
            for group in self.optimizers().param_groups:
                group["lr"] = cfg.prior.lr * lr_factor(self.global_step, cfg.prior.max_steps, cfg.prior.warmup_steps)
            loss = diffusion_loss(self.denoiser, self.schedule, batch, self.generator)
            self.log("train/loss", loss, prog_bar=True, on_step=True)
            return loss

        def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
            ema_update(self.ema, self.denoiser, self.global_step, cfg.prior.ema_decay)

        def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
            g = torch.Generator().manual_seed(1000 + batch_idx)
            losses = []
            for t_frac in (0.05, 0.25, 0.5, 0.75):  # fixed timesteps: comparable across checkpoints
                t = torch.full((batch.shape[0],), int(t_frac * schedule.n_train_steps), dtype=torch.long)
                losses.append(diffusion_loss(self.ema, self.schedule, batch, g, t))
            self.log("val/loss", torch.stack(losses).mean(), prog_bar=True, batch_size=batch.shape[0])

        def on_train_epoch_start(self) -> None:
            self.trainer.train_dataloader.dataset.epoch = self.current_epoch

        def configure_optimizers(self):
            return torch.optim.AdamW(self.denoiser.parameters(), lr=cfg.prior.lr, weight_decay=0.0)

    return PriorModule()


def train_prior(out: str | Path, cfg: PriorRunConfig, *, overwrite: bool = False, progress: bool = True) -> Run:
    """Train the diffusion prior into run directory `out` (resumes an unfinished run)."""
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import TensorBoardLogger

    pc = cfg.prior
    if pc.n_frames % 2 ** (len(cfg.denoiser.channels) - 1):
        raise ConfigError(f"prior.n_frames ({pc.n_frames}) must be divisible by 2**(levels-1) = "
                          f"{2 ** (len(cfg.denoiser.channels) - 1)}.")
    check_prior_fits(cfg)  # ResourceError before anything is written when a step will not fit in memory
    # The speech (and what it is: files, SHA-256, trials, corpus voices) before the run directory exists, so
    # bad input leaves nothing behind; the sources go into run.json for the likelihood stage and `evaluate`,
    # which refuse a prior that heard their test trials or a simulated participant's voice.
    rng = np.random.default_rng(cfg.seed)
    sources: list[dict] = []
    streams = collect_speech(list(pc.speech_paths), use_corpus=pc.use_corpus, corpus_copies=pc.corpus_copies, rng=rng,
                             exclude_voices=pc.exclude_voices, sources=sources,
                             split=RecordingSplit(pc.split_scheme, pc.split_fold, pc.split_n_folds))
    run = start_run(out, kind="prior", config=cfg, seed=cfg.seed, overwrite=overwrite)
    record_training_data(run, sources)
    if pc.num_threads:
        torch.set_num_threads(pc.num_threads)
    train_streams, val_streams = split_streams(streams, pc.val_fraction, pc.n_frames)
    n_windows = pc.batch_size * max(1, min(pc.max_steps, 200))  # "epoch" = up to 200 steps
    train_ds = MelWindows(train_streams, pc.n_frames, n_windows, seed=cfg.seed)
    val_ds = MelWindows(val_streams or train_streams, pc.n_frames, pc.n_val_windows, seed=cfg.seed + 1, fixed=True)
    denoiser = build_denoiser(cfg.denoiser)
    schedule = NoiseSchedule(pc.n_train_steps, pc.schedule, pc.prediction)
    n_params = sum(p.numel() for p in denoiser.parameters())
    print(f"[prior] {len(streams)} speech streams, {train_ds.n_total_frames / 125:.0f} s of training speech; "
          f"denoiser {n_params / 1e6:.2f} M parameters; {pc.max_steps} steps of {pc.batch_size} windows "
          f"({pc.max_steps * pc.batch_size * pc.n_frames / 125 / 3600:.1f} h of mel seen).", flush=True)
    module = _lightning_module(cfg, denoiser, schedule)
    g = torch.Generator().manual_seed(cfg.seed)
    # Under DDP Lightning's distributed sampler deals the windows in turn (no shuffle: the windows are random
    # already), so each step's global batch is the one a single process would take.
    world = pc.devices * pc.num_nodes
    train_dl = torch.utils.data.DataLoader(train_ds, batch_size=pc.batch_size // world, shuffle=False, drop_last=True,
                                           generator=g)
    val_dl = torch.utils.data.DataLoader(val_ds, batch_size=pc.batch_size)
    ckpt = ModelCheckpoint(dirpath=run.checkpoint_dir, filename="step{step}", save_last=True,
                           every_n_train_steps=pc.val_every_steps, auto_insert_metric_name=False)
    trainer = L.Trainer(max_steps=pc.max_steps, accelerator="auto", **ddp_settings(pc.devices, pc.num_nodes), logger=TensorBoardLogger(run.path / "logs", name=""),
                        callbacks=[ckpt], val_check_interval=min(pc.val_every_steps, len(train_dl)),
                        check_val_every_n_epoch=None, enable_progress_bar=progress, enable_model_summary=False,
                        num_sanity_val_steps=0, log_every_n_steps=20, deterministic=False)
    last = run.checkpoint_dir / "last.ckpt"
    t0 = time.perf_counter()
    trainer.fit(module, train_dl, val_dl, ckpt_path=str(last) if last.exists() else None)
    train_s = time.perf_counter() - t0
    if not trainer.is_global_zero:  # DDP: the first process writes the run's files
        return run
    val_loss = float(trainer.callback_metrics.get("val/loss", float("nan")))
    save_prior(run.path / PRIOR_FILE, module.ema, schedule)
    val = torch.stack([val_ds[i] for i in range(len(val_ds))])
    real = val[val.mean(dim=(1, 2, 3)).argsort(descending=True)[:4]]  # the most speech-filled held-out windows
    samples = write_prior_samples(run.path, module.ema, schedule, real, seed=cfg.seed)
    run.mark_done({"val_loss": val_loss, "train_s": train_s, "n_params": n_params, "steps": int(trainer.global_step),
                   "samples": samples})
    s, r = samples["prior_samples"], samples["real_windows"]
    print(f"[prior] done in {train_s:.0f} s; validation loss (EMA) {val_loss:.4f}; weights in {run.path / PRIOR_FILE}\n"
          f"[prior] unconditional samples vs real windows: spectral-profile r {s['profile_pcc']:.2f} (noise "
          f"{samples['gaussian_noise']['profile_pcc']:.2f}), frame-energy std {s['energy_std_db']:.1f} dB (real "
          f"{r['energy_std_db']:.1f}); see {run.path / 'report.html'}")
    return run


def check_prior_fits(cfg: PriorRunConfig, device: str | None = None) -> MemoryEstimate:
    """Raise ResourceError if one training step of this prior will not fit on `device` (default: the GPU when
    there is one, else CPU RAM). The denoiser, its EMA copy and the schedule are built on the meta device, so
    nothing is allocated and no random number is drawn; returns the `MemoryEstimate`."""
    pc = cfg.prior
    with torch.device("meta"):
        denoiser = build_denoiser(cfg.denoiser)
        ema = copy.deepcopy(denoiser).requires_grad_(False)
        schedule = NoiseSchedule(pc.n_train_steps, pc.schedule, pc.prediction)
    window = torch.zeros(1, 1, cfg.denoiser.n_mels, pc.n_frames, device="meta")
    n_params = sum(p.numel() for p in denoiser.parameters())
    return check_fits(denoiser, window, device or ("cuda" if torch.cuda.is_available() else "cpu"),
                      batch_size=pc.batch_size, loss_fn=lambda x0: diffusion_loss(denoiser, schedule, x0),
                      extra_models=[ema], what=f"prior training ({n_params / 1e6:.1f} M parameters, windows of "
                      f"{pc.n_frames} frames)", reduce="prior.batch_size, prior.n_frames or denoiser.channels")


def save_prior(path: Path, denoiser: torch.nn.Module, schedule: NoiseSchedule) -> None:
    from neurovox.utils.files import atomic_path

    state = {"denoiser_config": asdict(denoiser.cfg), "schedule": schedule.config(),
             "state_dict": denoiser.state_dict(),
             "mel_scale": {"floor_db": features.MEL_DB_FLOOR, "center_db": features.MEL_DB_CENTER,
                           "half_range_db": features.MEL_DB_HALF_RANGE}}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_prior(run_dir: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, NoiseSchedule, int]:
    """(EMA denoiser in eval mode, schedule, window length in frames) of a finished prior run."""
    run, state = load_run_weights(run_dir, "prior", PRIOR_FILE, ("denoiser_config", "state_dict", "schedule"),
                                  device=device)
    path = run.path / PRIOR_FILE
    dc = dict(state["denoiser_config"])
    dc["channels"] = tuple(dc["channels"])
    denoiser = build_denoiser(DenoiserConfig(**dc))
    try:
        denoiser.load_state_dict(state["state_dict"])
    except RuntimeError as exc:  # weights saved by an incompatible version of the denoiser
        raise RunError(f"The weights in {str(path)!r} do not fit the denoiser its config describes (made by another "
                       f"neurovox version?): {str(exc).splitlines()[-1].strip()} Re-train the prior with "
                       "`neurovox train prior ... --overwrite`.") from None
    schedule = NoiseSchedule(**state["schedule"]).to(device)
    n_frames = int(run.config.get("prior", {}).get("n_frames", 128))
    return denoiser.to(device).eval(), schedule, n_frames
