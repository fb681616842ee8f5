"""Stage-2 training: neural decoder -> frozen formant synthesizer, plus the linear baseline.

`train_decoder(data_path, out, cfg, speech_run=...)` reads the recording, prepares it (high gamma +
speech features), makes the split, fits the Normalizer on training frames, and then

- for `model="linear"`: fits the stacked-context PCA + linear regression on the training windows;
- for the deep models: trains with Lightning (a thin wrapper around `DecoderModule`): spectral
  loss through the frozen synthesizer, reference loss against the frozen speech encoder's parameters,
  optional differentiable-STOI loss; checkpoints in RUN/checkpoints (a rerun resumes from last.ckpt),
  early stopping on the validation loss, an exponential moving average of the weights (the EMA
  weights are validated and saved), TensorBoard logs in RUN/logs and a progress bar.

The run directory holds everything decoding needs: config.yaml (prepare, split, decoder sections),
model.pt (model name, args, EMA weights, synthesizer config and state) or linear.npz, normalizer.json,
layout.json, and DONE.
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neurovox.decoders.base import GRID_MODELS, NeuralDecoder, build_decoder
from neurovox.decoders.layout import GridLayout, layout_from_channels
from neurovox.decoders.losses import reference_loss, spectral_loss
from neurovox.errors import ConfigError, DataError
from neurovox.preprocess.config import PrepareConfig
from neurovox.utils.check import check_option, check_range
from neurovox.utils.files import atomic_path, write_json_atomic

MODELS = ("linear", "resnet", "swin", "lstm", "gru")


@dataclass
class SplitConfig:
    """Which trials train, validate and test (`neurovox.preprocess.make_split`)."""

    scheme: str = "flinker"              # "flinker" (last 10 trials of each task), "kfold", "lowo", "swpd"
    fold: int = 0                        # fold index for kfold / lowo / swpd
    n_folds: int = 10                    # folds for kfold / swpd
    seed: int = 0                        # seed of the trial shuffling of the split


@dataclass
class DecoderTrainConfig:
    """Stage-2 decoder training (flat; sizes of every model live here, the chosen one is used)."""

    model: str = "resnet"                # decoder: "linear" | "resnet" | "swin" | "lstm" | "gru"
    causal: bool = False                 # strictly causal model (output frame t sees neural frames <= t)
    n_target_frames: int = 128           # frames (8 ms) of audio target per window
    n_lead_frames: int = 16              # frames of neural lead before the first target frame
    batch_size: int = 16                 # windows per optimisation step
    train_crop_frames: int = 0           # frames, random target crop of each training batch (0 = whole window)
    max_epochs: int = 300                # epochs, upper bound (early stopping usually ends sooner)
    max_minutes: float = 0.0             # min, wall-clock limit of training (0 = none)
    patience: int = 30                   # epochs without validation improvement before stopping
    lr: float = 1e-3                     # AdamW learning rate (cosine decay to 5 % over max_epochs)
    warmup_steps: int = 20               # steps of linear learning-rate warm-up
    ref_only_steps: int = 300            # steps, first phase: reference loss alone (no synthesis, fast steps)
    weight_decay: float = 1e-4           # AdamW weight decay
    ema_decay: float = 0.995             # per-step decay of the weight EMA, reached after warm-up (0 = no EMA)
    grad_clip: float = 1.0               # gradient-norm clip (0 = none)
    w_spec: float = 1.0                  # weight of the spectral loss (linear dB, multi-resolution)
    w_mel: float = 1.0                   # weight of the mel-dB spectral term
    w_coarse: float = 1.0                # weight of the coarse spectral term (frame energy + 8 broad bands, dB)
    w_ref: float = 1.0                   # weight of the reference-parameter loss (needs a speech run)
    w_stoi: float = 0.0                  # weight of the differentiable STOI loss (0 = off)
    silence_weight: float = 0.3          # weight of frames outside the speech segment in the losses
    spec_ffts: tuple[int, ...] = (256, 512, 1024)  # STFT sizes (samples) of the multi-resolution spectral loss
    resnet_widths: tuple[int, ...] = (16, 32, 64)  # ResNet3D features per stage
    resnet_blocks: int = 1               # ResNet3D residual blocks per stage
    swin_dim: int = 32                   # Swin3D token features of the first stage
    swin_depths: tuple[int, ...] = (2, 2)  # Swin3D blocks per stage
    swin_window_t: int = 16              # frames, Swin3D temporal attention window
    rnn_hidden: int = 128                # LSTM/GRU hidden size per direction
    rnn_layers: int = 2                  # LSTM/GRU layers
    dropout: float = 0.1                 # dropout inside the decoder
    linear_components: int = 50          # PCA components of the linear baseline
    linear_passes: int = 4               # random training windows drawn per training trial (linear fit)
    device: str = "auto"                 # "auto" (GPU when available), "cpu" or "cuda"

    def __post_init__(self) -> None:
        check_option("decoder.model", self.model, MODELS)
        check_range("decoder.n_target_frames", self.n_target_frames, 1, None)
        check_range("decoder.n_lead_frames", self.n_lead_frames, 0, None)
        check_range("decoder.batch_size", self.batch_size, 1, None)
        check_range("decoder.ema_decay", self.ema_decay, 0.0, 1.0, inclusive=True)
        check_range("decoder.ref_only_steps", self.ref_only_steps, 0, None)
        check_range("decoder.warmup_steps", self.warmup_steps, 0, None)
        check_option("decoder.device", self.device, ("auto", "cpu", "cuda"))


@dataclass
class DecoderRunConfig:
    """What `neurovox train decoder` ran: prepare + split + decoder sections and the seed."""

    seed: int = 0                        # RNG seed, set once by the CLI
    prepare: PrepareConfig = field(default_factory=PrepareConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    decoder: DecoderTrainConfig = field(default_factory=DecoderTrainConfig)


def quick_settings(model: str) -> dict[str, Any]:
    """Overrides of `--quick`: small models and about 1-2 minutes of training on 2 CPU cores."""
    return {"decoder": {"max_epochs": 300, "max_minutes": 1.5, "patience": 100, "batch_size": 8, "lr": 3e-3,
                        "ref_only_steps": 100000,  # the whole quick run is the reference phase (no synthesis)
                        "resnet_widths": [8, 16, 32], "swin_dim": 16, "swin_depths": [2], "swin_window_t": 8,
                        "train_crop_frames": 64,
                        "rnn_hidden": 64, "rnn_layers": 1, "spec_ffts": [512], "linear_passes": 2,
                        "ema_decay": 0.95}}


def model_kwargs(cfg: DecoderTrainConfig) -> dict[str, Any]:
    if cfg.model == "resnet":
        return {"widths": tuple(cfg.resnet_widths), "blocks_per_stage": cfg.resnet_blocks, "dropout": cfg.dropout}
    if cfg.model == "swin":
        return {"dim": cfg.swin_dim, "depths": tuple(cfg.swin_depths), "window_t": cfg.swin_window_t,
                "dropout": cfg.dropout}
    return {"hidden": cfg.rnn_hidden, "n_layers": cfg.rnn_layers, "dropout": cfg.dropout}


def derive_layout(channels: Any, model: str) -> GridLayout | None:
    """Grid layout for grid models (DataError with a hint if impossible); bad-contact mask otherwise."""
    if model in GRID_MODELS:
        return layout_from_channels(channels, model=model)
    try:
        return layout_from_channels(channels, model=model)
    except DataError:
        return None


# Speech model (frozen) ------------------------------------------------------------------------------

class FrozenSpeech(torch.nn.Module):
    """The frozen synthesizer and (optionally) the frozen speech encoder of a speech run."""

    def __init__(self, synth: torch.nn.Module, encoder: Any = None):
        super().__init__()
        self.synth = synth
        self.encoder = encoder
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "FrozenSpeech":
        """Always in eval mode (no dropout in the frozen encoder), whatever the trainer asks."""
        return super().train(False)

    @torch.no_grad()
    def reference_controls(self, spec_power: torch.Tensor) -> dict[str, torch.Tensor] | None:
        """Encoder controls of the real spectrogram (batch, n_frames, 256), or None without an encoder."""
        if self.encoder is None:
            return None
        raw = self.encoder(spec_power)
        raw = raw.raw if hasattr(raw, "raw") else raw
        return self.synth.get_controls(raw)


def load_frozen_speech(speech_run: str | Path | None, noise_power: np.ndarray | None = None) -> FrozenSpeech:
    """Synth + encoder from a speech run; without one, the default synthesizer and no reference loss."""
    from neurovox.synth import FormantSynth, SynthConfig

    if speech_run is None:
        return FrozenSpeech(FormantSynth(SynthConfig(), noise_power=noise_power))
    from neurovox.encoder import load_speech_model

    model = load_speech_model(speech_run)
    synth = getattr(model, "synth", None)
    encoder = getattr(model, "encoder", None)
    if synth is None or encoder is None:
        raise DataError(f"The speech run {str(speech_run)!r} does not provide a synthesizer and an encoder; "
                        "pass the --out directory of `neurovox train speech`.")
    return FrozenSpeech(synth, encoder)


# Lightning module ---------------------------------------------------------------------------------

def _lightning():
    import lightning.pytorch as pl
    return pl


class DecoderModule(_lightning().LightningModule):
    """Thin Lightning wrapper: decoder (+ EMA copy) -> frozen synth; losses; AdamW with cosine decay."""

    def __init__(self, decoder: NeuralDecoder, speech: FrozenSpeech, cfg: DecoderTrainConfig, seed: int = 0):
        super().__init__()
        self.decoder = decoder
        self.ema = copy.deepcopy(decoder).eval() if cfg.ema_decay > 0 else None
        if self.ema is not None:
            for p in self.ema.parameters():
                p.requires_grad_(False)
        self.speech = speech
        self.cfg = cfg
        self.seed = seed
        self._stoi = _stoi_loss_fn() if cfg.w_stoi > 0 else None
        self._crop_gen: torch.Generator | None = None
        # Per-frame reference controls of the whole recording (`reference_frames`), sliced per window by
        # start frame; a plain attribute (not a buffer) so checkpoints stay small. None: encoder per batch.
        self.ref_frames: dict[str, torch.Tensor] | None = None

    def reference(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
        """Reference controls of the batch's target frames (precomputed slice, else the encoder on the fly)."""
        if self.cfg.w_ref <= 0:
            return None
        if self.ref_frames is None:
            return self.speech.reference_controls(batch["spec_power"])
        n_target = batch["mel_db"].shape[1]
        idx = batch["start_frame"].long()[:, None] + torch.arange(n_target, device=batch["start_frame"].device)
        return {k: v.to(batch["mel_db"].device)[idx] for k, v in self.ref_frames.items()}

    def in_ref_phase(self) -> bool:
        """First phase of the curriculum: reference loss alone while global_step < ref_only_steps."""
        has_ref = self.cfg.w_ref > 0 and (self.ref_frames is not None or self.speech.encoder is not None)
        return has_ref and self.global_step < self.cfg.ref_only_steps

    def losses(self, model: NeuralDecoder, batch: dict[str, torch.Tensor], synth: bool = True) -> dict[str, torch.Tensor]:
        """Loss terms of a batch; synth=False (reference phase) skips the synthesizer and the spectral terms."""
        cfg = self.cfg
        n_target = batch["mel_db"].shape[1]
        raw = model(batch["neural"], n_target)
        mask = batch["speech_mask"].float()
        fw = cfg.silence_weight + (1 - cfg.silence_weight) * mask
        ref = self.reference(batch)
        terms: dict[str, torch.Tensor] = {}
        total = raw.new_zeros(())
        if synth or ref is None:
            out = self.speech.synth(raw)
            controls = out.controls
            terms.update(spectral_loss(out.wave, batch["audio"], tuple(cfg.spec_ffts), mel_weight=1.0,
                                       frame_weight=fw))
            total = total + (cfg.w_spec * terms["spec_lin"] + cfg.w_mel * terms["spec_mel"]
                             + cfg.w_coarse * terms["spec_coarse"])
            if self._stoi is not None:
                terms["stoi"] = self._stoi(batch["audio"], out.wave)
                total = total + cfg.w_stoi * terms["stoi"]
            terms["_mel_db"] = 10.0 * torch.log10(out.spec_power @ _mel_t(out.spec_power) + 1e-10)
        else:
            controls = self.speech.synth.get_controls(raw)
        if ref is not None:
            terms["ref"] = reference_loss(controls, ref, fw)
            total = total + cfg.w_ref * terms["ref"]
        terms["loss"] = total
        return terms

    def crop(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Random target crop of a training batch (cheaper synthesis); the neural lead moves with it."""
        n_target = batch["mel_db"].shape[1]
        n = self.cfg.train_crop_frames
        if n <= 0 or n >= n_target:
            return batch
        if self._crop_gen is None:
            self._crop_gen = torch.Generator().manual_seed(self.seed)
        o = int(torch.randint(n_target - n + 1, (1,), generator=self._crop_gen))
        n_lead = batch["neural"].shape[1] - n_target
        out = dict(batch)
        out["start_frame"] = batch["start_frame"] + o
        out["neural"] = batch["neural"][:, o: o + n_lead + n]
        out["audio"] = batch["audio"][:, o * 128: (o + n) * 128]
        for k in ("spec_power", "mel_db", "speech_mask"):
            out[k] = batch[k][:, o: o + n]
        return out

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        if self.in_ref_phase():  # whole windows, no synthesis
            terms = self.losses(self.decoder, batch, synth=False)
        else:
            batch = self.crop(batch)
            terms = self.losses(self.decoder, batch)
        bs = batch["neural"].shape[0]
        for k, v in terms.items():
            if not k.startswith("_"):
                self.log(f"train/{k}", v.detach(), prog_bar=(k == "loss"), batch_size=bs)
        return terms["loss"]

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.ema is None:
            return
        n = self.global_step  # EMA warm-up: the decay grows from 0.1 to ema_decay (short runs still move)
        d = min(self.cfg.ema_decay, (1.0 + n) / (10.0 + n))
        with torch.no_grad():
            for pe, p in zip(self.ema.parameters(), self.decoder.parameters()):
                pe.lerp_(p, 1.0 - d)

    def eval_model(self) -> NeuralDecoder:
        return self.ema if self.ema is not None else self.decoder

    def ref_only_run(self) -> bool:
        """The whole run is the reference phase (ref_only_steps >= every step the run can take)."""
        if self.cfg.w_ref <= 0 or (self.ref_frames is None and self.speech.encoder is None):
            return False
        total = self.trainer.estimated_stepping_batches if self._trainer is not None else float("inf")
        return self.cfg.ref_only_steps >= total

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        # A reference-only run validates (and early-stops) on the reference loss alone, without synthesis;
        # a run with a spectral phase validates on the full loss throughout (one definition per run).
        synth = not self.ref_only_run()
        terms = self.losses(self.eval_model(), batch, synth=synth)
        bs = batch["neural"].shape[0]
        self.log("val_loss", terms["loss"], prog_bar=True, batch_size=bs)
        if synth:
            pcc = _batch_pcc(terms["_mel_db"], batch["mel_db"], batch["speech_mask"])
            self.log("val_pcc", pcc, prog_bar=True, batch_size=bs)

    def configure_optimizers(self) -> Any:
        opt = torch.optim.AdamW(self.decoder.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total, self.cfg.warmup_steps))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up over `warmup` steps, then cosine decay to 5 % at `total` steps (multiplies lr)."""
    if step < warmup:
        return (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t))


def _mel_t(x: torch.Tensor) -> torch.Tensor:
    from neurovox import dsp
    return torch.from_numpy(dsp.mel_filterbank()).to(x).T


def _batch_pcc(dec_mel: torch.Tensor, ref_mel: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over windows of the Pearson r of mel dB over speech frames (flattened time x bins)."""
    rs = []
    for d, r, m in zip(dec_mel, ref_mel, mask.bool()):
        if m.sum() < 2:
            continue
        a, b = d[m].flatten(), r[m].flatten()
        a, b = a - a.mean(), b - b.mean()
        rs.append((a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-8))
    return torch.stack(rs).mean() if rs else dec_mel.new_zeros(())


def _stoi_loss_fn():
    for mod in ("neurovox.evaluate.metrics", "neurovox.evaluate.stoi_loss"):
        try:
            m = __import__(mod, fromlist=["stoi_loss"])
            if hasattr(m, "stoi_loss"):
                return m.stoi_loss
        except ImportError:
            continue
    raise ConfigError("decoder.w_stoi > 0 needs neurovox.evaluate.stoi_loss, which is not available; "
                      "set decoder.w_stoi=0.")


# Data ----------------------------------------------------------------------------------------------

def _collate_windows(dataset: Any, n: int | None = None) -> dict[str, np.ndarray]:
    items = [dataset[i] for i in range(len(dataset) if n is None else n)]
    return {k: np.stack([np.asarray(it[k]) for it in items]) for k in items[0]}


def prepare_data(data_path: str | Path, cfg: Any, cache_dir: Path | None = None) -> tuple[Any, Any, Any]:
    """Read + prepare the recording, make the split and fit the Normalizer on training frames."""
    from neurovox.io import read_recording
    from neurovox.preprocess import Normalizer, make_split, prepare

    rec = read_recording(data_path)
    prepared = prepare(rec, cfg.prepare, cache_dir)
    split = make_split(prepared, cfg.split.scheme, fold=cfg.split.fold, n_folds=cfg.split.n_folds,
                       seed=cfg.split.seed, n_target_frames=cfg.decoder.n_target_frames,
                       n_lead_frames=cfg.decoder.n_lead_frames)
    normalizer = Normalizer().fit(prepared.neural, split.train_frame_mask)  # never test or validation frames
    return prepared, split, normalizer


def _datasets(prepared: Any, split: Any, normalizer: Any, cfg: DecoderTrainConfig, seed: int) -> dict[str, Any]:
    from neurovox.preprocess import WindowDataset

    out = {}
    for i, part in enumerate(("train", "val", "test")):
        out[part] = WindowDataset(prepared, split, normalizer, part=part, n_target_frames=cfg.n_target_frames,
                                  n_lead_frames=cfg.n_lead_frames, generator=torch.Generator().manual_seed(seed + i))
    return out


# Entry point ----------------------------------------------------------------------------------------

def train_decoder(data_path: str | Path, out: str | Path, cfg: Any, *, speech_run: str | Path | None = None,
                  overwrite: bool = False, progress: bool = True, cache_dir: Path | None = None) -> Path:
    """Train a decoding run (see the module docstring); returns the run directory."""
    from neurovox.runs import start_run

    dcfg: DecoderTrainConfig = cfg.decoder
    if dcfg.model != "linear" and speech_run is None and dcfg.w_ref > 0:
        print("note: no --speech run given: training through the default synthesizer with the spectral loss only "
              "(no reference-parameter loss).")
    extra = {"speech_run": str(Path(speech_run).resolve()) if speech_run else None, "model": dcfg.model,
             "causal": dcfg.causal}
    run = start_run(out, kind="decoder", config=cfg, seed=cfg.seed, data_path=data_path, overwrite=overwrite,
                    extra_meta=extra)
    prepared, split, normalizer = prepare_data(data_path, cfg, cache_dir)
    layout = derive_layout(prepared.channels, dcfg.model)
    data = _datasets(prepared, split, normalizer, dcfg, cfg.seed)
    if len(data["train"]) == 0:
        raise DataError(f"The {cfg.split.scheme!r} split of {str(data_path)!r} has no training trials.")
    write_json_atomic(run.path / "normalizer.json", normalizer.state_dict())
    write_json_atomic(run.path / "layout.json", layout.to_dict() if layout is not None else None)
    t0 = time.time()
    if dcfg.model == "linear":
        summary = _fit_linear(run.path, data, dcfg, prepared)
    else:
        summary = _fit_deep(run, data, dcfg, layout, prepared, speech_run, cfg.seed, progress)
    summary["train_seconds"] = round(time.time() - t0, 1)
    run.mark_done(summary)
    return run.path


def save_npz(path: Path, state: dict[str, Any]) -> None:
    """Write a dict of arrays atomically (np.savez to a file handle, so no suffix is appended)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **{k: np.asarray(v) for k, v in state.items()})


def _fit_linear(run_dir: Path, data: dict[str, Any], cfg: DecoderTrainConfig, prepared: Any) -> dict[str, Any]:
    from neurovox.decoders.linear import LinearBaseline

    print(f"linear baseline: stacking context for {len(data['train'])} training trials x {cfg.linear_passes} windows")
    chunks = [_collate_windows(data["train"]) for _ in range(cfg.linear_passes)]
    neural = np.concatenate([c["neural"] for c in chunks])
    mel = np.concatenate([c["mel_db"] for c in chunks])
    model = LinearBaseline(cfg.causal, float(prepared.frame_rate_hz), cfg.linear_components).fit(neural, mel)
    save_npz(run_dir / "linear.npz", model.state_dict())
    summary: dict[str, Any] = {"model": "linear", "causal": cfg.causal, "n_params": int(model.state["coef"].size +
                               model.state["pca_components"].size)}
    if len(data["val"]):
        val = _collate_windows(data["val"])
        pred = model.predict(val["neural"], cfg.n_target_frames)
        summary["val_pcc"] = float(_batch_pcc(torch.from_numpy(pred), torch.from_numpy(val["mel_db"]),
                                              torch.from_numpy(val["speech_mask"]).bool()))
    print(f"linear baseline fitted: {json.dumps(summary)}")
    return summary


def _device(cfg: DecoderTrainConfig) -> str:
    if cfg.device == "auto":
        return "gpu" if torch.cuda.is_available() else "cpu"
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("decoder.device='cuda' but no CUDA GPU is available; use decoder.device=auto or cpu.")
    return "gpu" if cfg.device == "cuda" else "cpu"


def _fit_deep(run: Any, data: dict[str, Any], cfg: DecoderTrainConfig, layout: GridLayout | None, prepared: Any,
              speech_run: Any, seed: int, progress: bool) -> dict[str, Any]:
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
    from lightning.pytorch.loggers import TensorBoardLogger
    from torch.utils.data import DataLoader

    from neurovox.synth import N_RAW

    speech = load_frozen_speech(speech_run, getattr(prepared, "noise_power", None))
    n_channels = prepared.neural.shape[1]
    decoder = build_decoder("gru" if cfg.model == "gru" else cfg.model, n_channels=n_channels, n_out=N_RAW,
                            causal=cfg.causal, layout=layout, **model_kwargs(cfg))
    use_ref = cfg.w_ref > 0 and speech.encoder is not None
    module = DecoderModule(decoder, speech, cfg if use_ref else _replace(cfg, w_ref=0.0), seed)
    if use_ref:  # the encoder's controls of the whole recording, once (not per step)
        t0 = time.perf_counter()
        ref_raw, module.ref_frames = reference_frames(speech, prepared.spec_power)
        weight = np.where(data["train"]._any_speech.numpy(), 1.0, cfg.silence_weight)
        weight = weight * data["train"].split.train_frame_mask
        init_output_bias(decoder, ref_raw, torch.from_numpy(weight).float())
        print(f"reference controls of {ref_raw.shape[0]} frames precomputed in {time.perf_counter() - t0:.1f} s; "
              "decoder output starts at their mean over training frames", flush=True)
    else:
        calibrate_loudness(decoder, speech.synth, _collate_windows(data["train"], min(8, len(data["train"]))))
    gen = torch.Generator().manual_seed(seed)
    train_loader = DataLoader(data["train"], batch_size=cfg.batch_size, shuffle=True, generator=gen, drop_last=False)
    val_part = data["val"] if len(data["val"]) else data["train"]
    val_loader = DataLoader(val_part, batch_size=cfg.batch_size, shuffle=False)
    _print_cost(module, train_loader, cfg, decoder)
    ckpt_dir = run.path / "checkpoints"
    callbacks = [ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val_loss", mode="min", save_last=True),
                 _phase_early_stopping(EarlyStopping)(monitor="val_loss", mode="min", patience=cfg.patience)]
    trainer = pl.Trainer(max_epochs=cfg.max_epochs, max_time=({"minutes": cfg.max_minutes} if cfg.max_minutes else None),
                         accelerator=_device(cfg), devices=1, logger=TensorBoardLogger(str(run.path), name="logs"),
                         callbacks=callbacks, enable_progress_bar=progress, gradient_clip_val=cfg.grad_clip or None,
                         log_every_n_steps=5, enable_model_summary=False, num_sanity_val_steps=0,
                         deterministic=False)
    last = ckpt_dir / "last.ckpt"
    trainer.fit(module, train_loader, val_loader, ckpt_path=str(last) if last.exists() else None)
    best = callbacks[0].best_model_path
    if best and Path(best).exists():
        state = torch.load(best, map_location="cpu", weights_only=False)["state_dict"]
        module.load_state_dict(state)
    final = module.eval_model()
    save_model(run.path / "model.pt", cfg.model, final, speech.synth)
    return {"model": cfg.model, "causal": cfg.causal, "n_params": decoder.n_params,
            "epochs": int(trainer.current_epoch), "best_val_loss": _f(callbacks[0].best_model_score),
            "val_pcc": _f(trainer.callback_metrics.get("val_pcc"))}


def _phase_early_stopping(base: type) -> type:
    """EarlyStopping that waits through the reference phase of the curriculum (a plateau of the reference
    loss must not end the run before the spectral loss has had its say)."""

    class PhaseEarlyStopping(base):
        def _run_early_stopping_check(self, trainer: Any) -> None:
            if trainer.lightning_module.in_ref_phase():
                return
            super()._run_early_stopping_check(trainer)

    return PhaseEarlyStopping


@torch.no_grad()
def reference_frames(speech: FrozenSpeech, spec_power: np.ndarray, chunk: int = 4096,
                     context: int = 256) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The frozen encoder's raw controls and bounded controls for every frame of a recording.

    Parameters
    ----------
    spec_power : ndarray, shape (n_frames, 256)
        Power spectrogram of the whole recording.
    chunk, context : int
        Frames per encoder call and extra frames of context on each side (the encoder is a centred
        convolution network; context beyond its receptive field makes chunking exact).

    Returns
    -------
    raw : Tensor, shape (n_frames, N_RAW)
    controls : dict of Tensor, (n_frames,) or (n_frames, 6) each
    """
    spec = torch.as_tensor(np.asarray(spec_power), dtype=torch.float32)
    n = spec.shape[0]
    parts = []
    for a in range(0, n, chunk):
        lo, hi = max(0, a - context), min(n, a + chunk + context)
        raw = speech.encoder(spec[None, lo:hi])
        raw = raw.raw if hasattr(raw, "raw") else raw
        parts.append(raw[0, a - lo: a - lo + min(chunk, n - a)])
    raw = torch.cat(parts)
    controls = {k: v[0] for k, v in speech.synth.get_controls(raw[None]).items()}
    return raw, controls


@torch.no_grad()
def init_output_bias(decoder: NeuralDecoder, ref_raw: torch.Tensor, weight: torch.Tensor) -> None:
    """Start the decoder at the weighted mean of the reference raw controls (a neutral voice of this speaker
    at its typical loudness), so that training starts from speech-like output, not from silence."""
    w = weight[:, None].to(ref_raw)
    decoder.out.bias.copy_((ref_raw * w).sum(0) / w.sum().clamp_min(1e-6))


@torch.no_grad()
def calibrate_loudness(decoder: NeuralDecoder, synth: torch.nn.Module, batch: dict[str, np.ndarray]) -> float:
    """Set the output bias of the loudness control so that the untrained decoder's speech is as loud as the
    reference speech (mean mel dB over speech frames). Starting far too loud or too quiet pushes the
    loudness into the flat end of its exp-sigmoid, where the spectral loss has almost no gradient.

    Returns the chosen raw loudness bias.
    """
    from neurovox import dsp

    mask = torch.as_tensor(batch["speech_mask"]).bool()
    ref = torch.as_tensor(batch["mel_db"])[mask].mean()
    n = int(mask.shape[1])
    best, best_err = 0.0, float("inf")
    for bias in np.linspace(-8.0, 4.0, 13):
        raw = torch.zeros(mask.shape[0], n, decoder.out.out_features)
        raw[..., 1] = float(bias)  # raw channel 1 = loudness (neurovox.synth.PARAM_NAMES order)
        out = synth(raw, generator=torch.Generator().manual_seed(0))
        level = dsp.power_to_db(dsp.power_to_mel(out.spec_power))[mask].mean()
        err = abs(float(level - ref))
        if err < best_err:
            best, best_err = float(bias), err
    decoder.out.bias[1] = best
    return best


def _f(x: Any) -> float | None:
    return None if x is None else float(x)


def _replace(cfg: DecoderTrainConfig, **changes: Any) -> DecoderTrainConfig:
    return DecoderTrainConfig(**{**asdict(cfg), **changes})


def _print_cost(module: DecoderModule, loader: Any, cfg: DecoderTrainConfig, decoder: NeuralDecoder) -> None:
    """Time one training step of each curriculum phase and print the expected cost of the run up front."""
    full = next(iter(loader))

    def step_s(synth: bool) -> float:
        batch = module.crop(full) if synth else full
        for _ in range(2):  # the second step is timed (the first one warms up)
            t0 = time.perf_counter()
            module.losses(module.decoder, batch, synth=synth)["loss"].backward()
            module.decoder.zero_grad(set_to_none=True)
            dt = time.perf_counter() - t0
        return dt

    steps = len(loader)
    total = steps * cfg.max_epochs
    n_ref = min(total, cfg.ref_only_steps) if module.in_ref_phase() else 0
    ref_s = step_s(False) if n_ref else 0.0
    spec_s = step_s(True)
    total_min = (ref_s * n_ref + spec_s * (total - n_ref)) * 1.3 / 60  # +30 % for validation
    limit = f", capped at {cfg.max_minutes:g} min" if cfg.max_minutes else ""
    phases = (f"{n_ref} reference-only steps x ~{ref_s:.2f} s, then " if n_ref else "")
    print(f"decoder {cfg.model}{' (causal)' if cfg.causal else ''}: {decoder.n_params / 1e6:.2f} M parameters; "
          f"{steps} steps/epoch x up to {cfg.max_epochs} epochs: {phases}{total - n_ref} spectral+reference steps "
          f"x ~{spec_s:.2f} s = up to ~{total_min:.0f} min on this machine{limit} (early stopping after "
          f"{cfg.patience} epochs without improvement usually ends sooner)", flush=True)


def save_model(path: Path, name: str, model: NeuralDecoder, synth: torch.nn.Module) -> None:
    """model.pt: name, constructor args, weights, and the frozen synthesizer (config + state)."""
    synth_cfg = asdict(synth.cfg) if hasattr(synth, "cfg") else {}
    payload = {"model_name": name, "model_args": model.model_args, "state_dict": model.state_dict(),
               "synth_config": synth_cfg, "synth_state": synth.state_dict()}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
