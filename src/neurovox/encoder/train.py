"""Stage 1: train the speech autoencoder (SpeechEncoder -> FormantSynth) on a participant's speech.

    metrics = train_speech_run(data_path, out, cfg)    # run dir, training, held-out metrics, DONE
    model = load_speech_model(run.path)          # SpeechModel(encoder, synth), frozen by stage 2

Build -> loop (Lightning, a thin wrapper: checkpoints, TensorBoard, progress bar) -> held-out
evaluation (resynthesis of the split's test trials: mel-dB PCC per trial over the speech segment,
STOI, Praat pitch error) -> `model.pt`, `metrics.json`, example WAVs and spectrogram plots.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch

from neurovox.encoder.losses import multires_loss, praat_loss, regularisers, spectral_loss
from neurovox.encoder.model import EncoderConfig, SpeechEncoder
from neurovox.preprocess.config import PrepareConfig
from neurovox.preprocess.splits import SplitConfig
from neurovox.synth import FormantSynth, SynthConfig
from neurovox.utils.check import check_option, check_range
from neurovox.utils.files import atomic_path, write_json_atomic
from neurovox.utils.training import choose_device, lr_factor


@dataclass
class SpeechTrainConfig:
    max_steps: int = 3000             # optimiser steps
    batch_size: int = 8               # windows per step
    n_frames: int = 128               # window length, frames of 8 ms (training and held-out evaluation)
    lr: float = 2e-3                  # peak AdamW learning rate
    weight_decay: float = 1e-4        # AdamW weight decay
    warmup_steps: int = 100           # linear warm-up steps, then cosine decay to 10 % of lr
    w_linear_db: float = 1.0          # weight of the linear-dB spectral L1 (dB / 10)
    w_mel_db: float = 1.0             # weight of the mel-dB spectral L1 (dB / 10)
    w_multires: float = 0.5           # weight of the multi-resolution (1024, 256) log-power L1
    w_praat: float = 2.0              # initial weight of the Praat f0/formant supervision (octaves)
    praat_decay_frac: float = 1.0     # Praat weight decays linearly to zero at this fraction of max_steps
    w_order: float = 1.0              # formant-ordering penalty weight
    w_smooth: float = 0.05            # temporal smoothness weight (log f0, log formants)
    w_silence: float = 10.0           # silence -> low loudness weight
    auto_voice: bool = True           # pick synth pitch/formant ranges from the participant's sex (M/F)
    device: str = "auto"              # "auto" (GPU if present) | "cpu" | "cuda"
    checkpoint_every: int = 100       # steps between last.ckpt saves
    n_examples: int = 4               # held-out trials written as WAV + PNG

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        check_range("speech.max_steps", self.max_steps, 1, 10_000_000)
        check_range("speech.batch_size", self.batch_size, 1, 4096)
        check_range("speech.n_frames", self.n_frames, 32, 4096)
        check_range("speech.lr", self.lr, 0.0, 1.0, inclusive=False)
        check_range("speech.praat_decay_frac", self.praat_decay_frac, 0.0, 1.0)
        check_option("speech.device", self.device, ("auto", "cpu", "cuda"))


@dataclass
class SpeechRunConfig:
    seed: int = 0                                                           # RNG seed, set once by the CLI
    prepare: PrepareConfig = field(default_factory=PrepareConfig)           # features / Praat settings
    split: SplitConfig = field(default_factory=SplitConfig)                 # held-out trials (as the decoders')
    synth: SynthConfig = field(default_factory=SynthConfig)                 # synthesizer
    encoder: EncoderConfig = field(default_factory=EncoderConfig)           # speech encoder
    speech: SpeechTrainConfig = field(default_factory=SpeechTrainConfig)    # training


QUICK_OVERRIDES = {"speech": {"max_steps": 150, "batch_size": 4, "lr": 3e-3, "warmup_steps": 10,
                              "checkpoint_every": 50, "n_examples": 2},
                   "encoder": {"hidden": 128, "n_blocks": 4}}


class SpeechModel(NamedTuple):
    encoder: SpeechEncoder
    synth: FormantSynth


def resolve_synth_config(cfg: SynthConfig, sex: str, auto_voice: bool) -> SynthConfig:
    """The synthesizer config a run uses: with auto_voice, ranges follow the sex ("M" male, "F" female)."""
    if not auto_voice:
        return cfg
    voice = {"M": "male", "F": "female"}.get(str(sex).upper()[:1], "wide")
    return dataclasses.replace(cfg, pitch_range=voice, formant_range=voice)


def neutral_raw(synth: FormantSynth) -> torch.Tensor:
    """Raw controls of a quiet neutral voice (start of the encoder's output bias), shape (N_RAW,)."""
    lo, hi = synth.f0_range_hz
    ctl = {"f0_hz": torch.tensor([[math.sqrt(lo * hi)]]), "loudness": torch.tensor([[0.01]]),
           "voicing": torch.tensor([[0.5]]),
           "formant_hz": torch.sqrt(synth.formant_min_hz * synth.formant_max_hz).reshape(1, 1, -1),
           "formant_amp": torch.tensor([0.4, 0.3, 0.15, 0.08, 0.04, 0.03]).reshape(1, 1, -1),
           "unvoiced_hz": torch.tensor([[6000.0]]), "unvoiced_bw_hz": torch.tensor([[1000.0]]),
           "unvoiced_amp": torch.tensor([[0.1]])}
    return synth.controls_to_raw(ctl).reshape(-1)


def praat_weight(step: int, cfg: SpeechTrainConfig) -> float:
    end = cfg.praat_decay_frac * cfg.max_steps
    return cfg.w_praat * max(0.0, 1.0 - step / end) if end > 0 else 0.0


def compute_losses(encoder: SpeechEncoder, synth: FormantSynth, batch: dict[str, torch.Tensor],
                   cfg: SpeechTrainConfig, step: int, generator: torch.Generator | None) -> dict[str, torch.Tensor]:
    """All stage-1 loss terms for one batch of windows (WindowDataset items) and their weighted total."""
    raw = encoder(batch["spec_power"])
    out = synth(raw, generator=generator)
    c = out.controls
    losses = {"spectral": spectral_loss(out.spec_power, batch["spec_power"], mel_weight=cfg.w_mel_db,
                                        linear_weight=cfg.w_linear_db),
              "multires": multires_loss(out.wave, batch["audio"], n_ffts=(1024, 256)),
              "praat": praat_loss(c, batch["f0_hz"], batch["voiced"], batch["formants_hz"])}
    losses.update(regularisers(c, batch["speech_mask"]))
    w_praat = praat_weight(step, cfg)
    losses["total"] = (losses["spectral"] + cfg.w_multires * losses["multires"] + w_praat * losses["praat"]
                       + cfg.w_order * losses["order"] + cfg.w_smooth * losses["smooth"]
                       + cfg.w_silence * losses["silence"])
    return losses


# Lightning wrapper ------------------------------------------------------------------------------

def _module_class():
    import lightning.pytorch as pl

    class SpeechModule(pl.LightningModule):
        def __init__(self, encoder: SpeechEncoder, synth: FormantSynth, cfg: SpeechTrainConfig, seed: int):
            super().__init__()
            self.encoder, self.synth, self.cfg, self.seed = encoder, synth, cfg, seed

        def training_step(self, batch, batch_idx):
            step = int(self.global_step)
            gen = torch.Generator(device=self.device).manual_seed(self.seed * 1_000_003 + step)
            losses = compute_losses(self.encoder, self.synth, batch, self.cfg, step, gen)
            self.log_dict({f"train/{k}": v.detach() for k, v in losses.items()}, prog_bar=False,
                          batch_size=batch["audio"].shape[0])
            self.log("loss", losses["total"].detach(), prog_bar=True, batch_size=batch["audio"].shape[0])
            return losses["total"]

        def configure_optimizers(self):
            opt = torch.optim.AdamW(self.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, self.cfg.max_steps, self.cfg.warmup_steps))
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    return SpeechModule


def _as_prepared(data: Any, cfg: SpeechRunConfig):
    from neurovox.io.recording import Recording
    from neurovox.preprocess import prepare

    if isinstance(data, Recording):
        return prepare(data, cfg.prepare)
    if not hasattr(data, "spec_power") or not hasattr(data, "trials"):
        raise TypeError(f"data must be a Recording or a Prepared, got {type(data).__name__}.")
    return data


def _time_one_step(encoder, synth, loader, cfg: SpeechTrainConfig, device: str) -> float:
    batch = {k: v.to(device) for k, v in next(iter(loader)).items()}
    t0 = time.perf_counter()
    losses = compute_losses(encoder, synth, batch, cfg, 0, torch.Generator(device=device).manual_seed(0))
    losses["total"].backward()
    encoder.zero_grad(set_to_none=True)
    synth.zero_grad(set_to_none=True)
    return time.perf_counter() - t0


def train_speech_model(data: Any, cfg: SpeechRunConfig, run: Any, *, progress: bool = True) -> dict[str, Any]:
    """Train the speech autoencoder on `data` (Recording or Prepared) into the run directory.

    Resumes from ``run.path/checkpoints/last.ckpt`` (written atomically every `checkpoint_every` steps)
    when present, ending with the weights an uninterrupted run would have (bit for bit on CPU: the
    batches and the synthesizer noise are functions of (seed, step), the global RNG states travel in
    the checkpoint). Writes ``model.pt``, ``metrics.json``, ``examples/`` and returns the held-out
    metrics. Seeds are the caller's business (the CLI calls `lightning.seed_everything`).
    """
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import TensorBoardLogger

    from neurovox.preprocess import Normalizer, WindowDataset
    from neurovox.preprocess.splits import split_from_config
    from neurovox.preprocess.leakage import record_training_data, recording_source
    from neurovox.preprocess.prepared import training_noise_power
    from neurovox.utils.resume import remove_stale_temporaries, resume_from, step_loader
    from neurovox.utils.resume_lightning import AtomicCheckpointIO, ResumeState

    tcfg = cfg.speech
    tcfg.validate()
    prepared = _as_prepared(data, cfg)
    device = choose_device(tcfg.device, "speech.device")
    sc = cfg.split
    split = split_from_config(prepared, sc, n_target_frames=tcfg.n_frames, n_lead_frames=0)
    # What this model hears, in run.json before training starts (so an unfinished run says it too): the
    # decoders, likelihood models and evaluations that use it refuse it when it heard their test trials
    # (neurovox.preprocess.leakage). The test trials of a split do not depend on the window sizes.
    record_training_data(run, [recording_source(prepared, split, seed=sc.seed)])
    norm = Normalizer().fit(prepared.neural, split.train_frame_mask)
    train_ds = WindowDataset(prepared, split, norm, "train", n_target_frames=tcfg.n_frames, n_lead_frames=0)
    # Batches are a pure function of (seed, global step): a run resumed mid-epoch draws what an
    # uninterrupted one would (neurovox.utils.resume).
    loader = step_loader(train_ds, tcfg.batch_size, cfg.seed)

    synth_cfg = resolve_synth_config(cfg.synth, prepared.meta.sex, tcfg.auto_voice)
    noise_power, noise_note = training_noise_power(prepared, cfg.prepare, split.train_frame_mask)  # no test trials
    synth = FormantSynth(synth_cfg, noise_power=noise_power)
    encoder = SpeechEncoder(cfg.encoder, init_raw=neutral_raw(synth))
    encoder.set_input_stats(prepared.spec_power[split.train_frame_mask])
    encoder.to(device)
    synth.to(device)

    step_s = _time_one_step(encoder, synth, loader, tcfg, device)
    print(f"neurovox train speech: {len(train_ds)} training trials, {len(split.test_trials)} held-out trials; "
          f"encoder {encoder.n_parameters / 1e6:.2f} M parameters; synth {synth_cfg.pitch_range} voice, "
          f"{synth.n_partials} partials; device {device}.\n"
          f"  estimated cost: {tcfg.max_steps} steps x {step_s:.2f} s = {tcfg.max_steps * step_s / 60:.1f} min "
          f"(+ evaluation); --quick for a first look.", flush=True)

    module = _module_class()(encoder, synth, tcfg, cfg.seed)
    ckpt_dir = Path(run.path) / "checkpoints"
    remove_stale_temporaries(ckpt_dir)
    checkpoint = ModelCheckpoint(dirpath=ckpt_dir, save_last=True, save_top_k=0, enable_version_counter=False,
                                 every_n_train_steps=tcfg.checkpoint_every)
    trainer = pl.Trainer(max_steps=tcfg.max_steps, accelerator=device, devices=1,
                         logger=TensorBoardLogger(str(Path(run.path) / "logs"), name="", version=""),
                         callbacks=[checkpoint, ResumeState(loader.sampler)], plugins=[AtomicCheckpointIO()],
                         enable_progress_bar=progress, enable_model_summary=False,
                         log_every_n_steps=10, num_sanity_val_steps=0, limit_val_batches=0,
                         gradient_clip_val=1.0, deterministic=False)
    last = ckpt_dir / "last.ckpt"
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        # Lightning warns that a mid-epoch resume with a plain DataLoader is unreliable; ours is exact
        # (the sampler restarts at the checkpoint's global step).
        warnings.filterwarnings("ignore", message=".*resuming from a checkpoint that ended before the epoch ended")
        trainer.fit(module, train_dataloaders=loader, ckpt_path=resume_from(last))
    train_s = time.perf_counter() - t0
    trainer.save_checkpoint(str(last), weights_only=False)

    encoder.eval()
    synth.eval()
    save_speech_model(Path(run.path) / "model.pt", encoder, synth, extra={"seed": cfg.seed})
    from neurovox.encoder.evaluate import evaluate_speech_model

    metrics = evaluate_speech_model(SpeechModel(encoder, synth), prepared, split, Path(run.path) / "examples",
                                    n_examples=tcfg.n_examples, seed=cfg.seed)
    metrics.update(train_time_s=round(train_s, 1), max_steps=tcfg.max_steps, step_time_s=round(step_s, 3),
                   encoder_parameters=encoder.n_parameters, device=device,
                   synth_config=dataclasses.asdict(synth_cfg), data_sha256=prepared.source_sha256,
                   split=split.scheme, fold=split.fold, n_folds=split.n_folds, noise_spectrum=noise_note)
    write_json_atomic(Path(run.path) / "metrics.json", metrics)
    return metrics


def save_speech_model(path: Path, encoder: SpeechEncoder, synth: FormantSynth, extra: dict | None = None) -> Path:
    payload = {"encoder_config": dataclasses.asdict(encoder.cfg), "encoder_state": encoder.cpu().state_dict(),
               "synth_config": dataclasses.asdict(synth.cfg), "synth_state": synth.cpu().state_dict(),
               **(extra or {})}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def train_speech_run(data_path: str | Path, out: str | Path, cfg: SpeechRunConfig, *, overwrite: bool = False,
                     progress: bool = True) -> dict[str, Any]:
    """Read the recording, open (or resume) the run directory, train, evaluate, mark done; returns the metrics.

    With speech.auto_voice the synthesizer's pitch and formant ranges follow the participant's sex; they are
    resolved here, before the run directory is made, so that config.yaml holds the ranges that ran.
    """
    from neurovox.io import read_recording
    from neurovox.runs import start_run

    rec = read_recording(data_path)
    cfg = dataclasses.replace(cfg, synth=resolve_synth_config(cfg.synth, rec.meta.sex, cfg.speech.auto_voice))
    run = start_run(out, kind="speech", config=cfg, seed=cfg.seed, data_path=data_path, overwrite=overwrite)
    metrics = train_speech_model(rec, cfg, run, progress=progress)
    run.mark_done({"pcc_mel_db": metrics["pcc_mel_db"], "stoi": metrics["stoi"]})
    return metrics


def load_speech_model(run_dir: str | Path, device: str = "cpu") -> SpeechModel:
    """(encoder, synth) of a finished `neurovox train speech` run, in eval mode on `device`.

    Returns a NamedTuple, so both ``encoder, synth = load_speech_model(d)`` and ``.encoder`` work.
    """
    from neurovox.runs import load_run_weights

    _, payload = load_run_weights(run_dir, "speech", "model.pt",
                                  ("synth_config", "synth_state", "encoder_config", "encoder_state"), require_done=False)
    synth = FormantSynth(SynthConfig(**payload["synth_config"]))
    synth.load_state_dict(payload["synth_state"])
    encoder = SpeechEncoder(EncoderConfig(**payload["encoder_config"]))
    encoder.load_state_dict(payload["encoder_state"])
    return SpeechModel(encoder.eval().to(device), synth.eval().to(device))
