"""Stage-2 training: neural decoder -> frozen formant synthesizer, plus the linear baseline.

`train_decoder(data_path, out, cfg, speech_run=...)` reads the recording, prepares it (high gamma +
speech features), makes the split, fits the Normalizer on training frames, and then

- for `model="linear"`: fits the stacked-context PCA + linear regression on the training windows
  (`_fit_linear`);
- for the deep models (`_fit_deep`): trains `DecoderModule` (decoders/lightning_module.py) with
  Lightning: spectral loss through the frozen synthesizer, reference loss against the frozen speech
  encoder's parameters (decoders/speech.py), optional differentiable-STOI loss; early stopping on the
  validation loss, an exponential moving average of the weights (the EMA weights are validated and
  saved), TensorBoard logs in RUN/logs and a progress bar. With target "mel" (the default) the decoder
  outputs standardised mel dB (mean squared error) and, with `linear_branch`, is mixed after training with
  the linear baseline fitted on the same training windows, the weight chosen on the validation trials
  (decoders/linear_branch.py, `_choose_branch_mix`).

Checkpoints (RUN/checkpoints/last.ckpt after every epoch, best.ckpt) are written atomically and hold
everything a resumed run needs to end bit-for-bit where an uninterrupted one would (on CPU): weights,
EMA, optimiser, schedule, early-stopping state and the global RNG states; the data order and the
random window starts and crops are functions of (seed, step) (neurovox.utils.resume). Rerunning the
same command on an unfinished run resumes from last.ckpt.

The run directory holds everything decoding needs: config.yaml (prepare, split, decoder sections),
model.pt (model name, args, EMA weights, synthesizer config and state) or linear.npz, normalizer.json,
layout.json, and DONE. Configuration: decoders/config.py.
"""

from __future__ import annotations

import dataclasses
import json
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neurovox.decoders.base import GRID_MODELS, NeuralDecoder, build_decoder
from neurovox.decoders.config import (MODELS, DecoderRunConfig, DecoderTrainConfig, SplitConfig, model_kwargs,
                                      quick_settings)
from neurovox.decoders.layout import GridLayout, layout_from_channels
from neurovox.decoders.lightning_module import DecoderModule, batch_pcc, phase_early_stopping
from neurovox.decoders.linear_branch import WithLinearBranch
from neurovox.decoders.speech import (FrozenSpeech, calibrate_loudness, init_output_bias, load_frozen_speech,
                                      reference_frames)
from neurovox.errors import ConfigError, DataError
from neurovox.utils.files import atomic_path, write_json_atomic
from neurovox.utils.memory import check_fits
from neurovox.utils.training import choose_device, ddp_settings

# Names other modules import from here (the configuration and the speech helpers live in their own modules).
__all__ = ["MODELS", "DecoderRunConfig", "DecoderTrainConfig", "SplitConfig", "model_kwargs", "quick_settings",
           "DecoderModule", "batch_pcc", "FrozenSpeech", "load_frozen_speech", "reference_frames",
           "init_output_bias", "calibrate_loudness", "derive_layout", "prepare_data", "train_decoder",
           "save_model", "save_npz"]


def derive_layout(channels: Any, model: str) -> GridLayout | None:
    """Grid layout for grid models (DataError with a hint if impossible); bad-contact mask otherwise."""
    if model in GRID_MODELS:
        return layout_from_channels(channels, model=model)
    try:
        return layout_from_channels(channels, model=model)
    except DataError:
        return None


# Data ----------------------------------------------------------------------------------------------

def _collate_windows(dataset: Any, n: int | None = None) -> dict[str, np.ndarray]:
    items = [dataset[i] for i in range(len(dataset) if n is None else n)]
    return {k: np.stack([np.asarray(it[k]) for it in items]) for k in items[0]}


def prepare_data(data_path: str | Path, cfg: Any, cache_dir: Path | None = None) -> tuple[Any, Any, Any]:
    """Read + prepare the recording, make the split and fit the Normalizer on training frames."""
    from neurovox.io import read_recording
    from neurovox.preprocess import Normalizer, prepare
    from neurovox.preprocess.splits import split_from_config

    rec = read_recording(data_path)
    prepared = prepare(rec, cfg.prepare, cache_dir)
    split = split_from_config(prepared, cfg.split, n_target_frames=cfg.decoder.n_target_frames,
                              n_lead_frames=cfg.decoder.n_lead_frames)
    normalizer = Normalizer().fit(prepared.neural, split.train_frame_mask)  # never test or validation frames
    if getattr(cfg.decoder, "causal", False):  # what a live stream must carry for this run (`neurovox stream`)
        from neurovox.preprocess.prepared import stream_input_description

        prepared.stream_input = stream_input_description(rec, cfg.prepare)
    return prepared, split, normalizer


# How `extract_high_gamma` names its mode in the notes it leaves (preprocess/highgamma.py)
OFFLINE_HG_NOTE = "offline (sosfiltfilt"
CAUSAL_HG_NOTE = "causal (sosfilt"


def direction_note(cfg: Any) -> str:
    """" (causal)", " (anticausal)" or "" for a decoder section or a saved decoder config dict."""
    get = cfg.get if isinstance(cfg, dict) else lambda k, d=None: getattr(cfg, k, d)
    return " (causal)" if get("causal", False) else " (anticausal)" if get("anticausal", False) else ""


def check_causal_config(cfg: Any) -> None:
    """A causal decoder needs causal features: decoder.causal=true requires prepare.causal=true (forward-only
    filters and a streaming envelope when the input is raw voltage; `neurovox train decoder --causal` sets it)."""
    if cfg.decoder.causal and not cfg.prepare.causal:
        raise ConfigError("decoder.causal=true needs prepare.causal=true (zero-phase high gamma would let future "
                          "voltage into past frames); drop --set prepare.causal=false or pass both.")


def causal_input_provenance(prepared: Any, data_path: str | Path) -> str:
    """How the neural frames of a causal run were made: "causal" (raw voltage prepared causally, or a file
    `neurovox preprocess --causal` wrote), or a warning for high gamma of unknown provenance (e.g. the
    Flinker files), which is used as given. High gamma that records offline (zero-phase) extraction is
    refused with a DataError."""
    notes = [str(n) for n in list(prepared.meta.notes) + list(getattr(prepared, "notes", []))]
    if any(OFFLINE_HG_NOTE in n for n in notes):
        raise DataError(f"{str(data_path)!r} holds high gamma extracted offline (zero-phase filters), which a causal "
                        "decoder must not use: run `neurovox preprocess --causal` on the raw recording or pass the raw recording.")
    if any(CAUSAL_HG_NOTE in n for n in notes):
        return "causal"
    msg = (f"warning: {str(data_path)!r} holds high gamma of unknown provenance (not made by neurovox): the causal "
           "decoder is causal in its neural frames, not necessarily in how they were extracted")
    warnings.warn(msg, stacklevel=2)
    return msg


def _datasets(prepared: Any, split: Any, normalizer: Any, cfg: DecoderTrainConfig, seed: int) -> dict[str, Any]:
    from neurovox.preprocess import WindowDataset

    out = {}
    for i, part in enumerate(("train", "val", "test")):
        out[part] = WindowDataset(prepared, split, normalizer, part=part, n_target_frames=cfg.n_target_frames,
                                  n_lead_frames=cfg.n_lead_frames, generator=torch.Generator().manual_seed(seed + i))
    return out


# Entry point ---------------------------------------------------------------------------------------

def train_decoder(data_path: str | Path, out: str | Path, cfg: Any, *, speech_run: str | Path | None = None,
                  overwrite: bool = False, progress: bool = True, cache_dir: Path | None = None) -> Path:
    """Train a decoding run (see the module docstring); returns the run directory."""
    from neurovox.runs import start_run

    dcfg: DecoderTrainConfig = cfg.decoder
    formant = dcfg.model != "linear" and dcfg.target == "formant"
    if speech_run is not None and not formant:
        raise ConfigError(f"--speech is used only by deep decoders with decoder.target=formant; this run is "
                          f"{dcfg.model} with target {dcfg.target!r}. Drop --speech or set decoder.target=formant.")
    if formant and speech_run is None and dcfg.w_ref > 0:
        # Without a speech encoder there are no reference parameters: w_ref=0 is what runs, so it is what
        # config.yaml says.
        print("note: no --speech run given: training through the default synthesizer with the spectral loss only "
              "(decoder.w_ref=0).")
        dcfg = dataclasses.replace(dcfg, w_ref=0.0)
        cfg = dataclasses.replace(cfg, decoder=dcfg)
    extra = {"speech_run": str(Path(speech_run).resolve()) if speech_run else None, "model": dcfg.model,
             "causal": dcfg.causal, "anticausal": dcfg.anticausal}
    # Everything that can refuse the data (layout, empty split) runs before the run directory exists, so a
    # refusal leaves no half-made run behind (preparation is cached, so a resumed run does not redo it).
    check_causal_config(cfg)
    prepared, split, normalizer = prepare_data(data_path, cfg, cache_dir)
    if dcfg.causal:
        extra["causal_input"] = causal_input_provenance(prepared, data_path)
    if speech_run is not None:  # no test audio in the frozen speech model (issue #14)
        from neurovox.preprocess.leakage import check_speech_run

        check_speech_run(speech_run, prepared, split, data=data_path, seed=cfg.split.seed)
    # Flat, noisy and spiky channels, judged on the training frames only, are masked like the file's own bad
    # channels (the layout's good mask: grid models and the recurrent models' input both drop them).
    from neurovox.preprocess.bad_channels import find_bad_channels, with_bad_channels

    bad_report = find_bad_channels(prepared.neural[split.train_frame_mask.astype(bool)], prepared.channels,
                                   float(prepared.frame_rate_hz))
    extra["auto_bad_channels"] = bad_report.found_details()
    if bad_report.found:
        print(f"bad channels found on the training frames and masked: "
              f"{', '.join(f'{n} ({r})' for n, r in bad_report.found.items())}")
    layout = derive_layout(with_bad_channels(prepared.channels, bad_report), dcfg.model)
    data = _datasets(prepared, split, normalizer, dcfg, cfg.seed)
    for part in ("train", "val"):  # validation trials choose the regularisation, the epoch and when to stop
        if len(data[part]) == 0:
            raise DataError(f"The {cfg.split.scheme!r} split of {str(data_path)!r} has no {part} trials "
                            f"({len(prepared.trials)} trials in the file); a decoder needs both. Record more trials "
                            "or choose a split that leaves some (see neurovox.preprocess.splits).")
    module = None if dcfg.model == "linear" else _build_checked_module(data, dcfg, layout, prepared, split, speech_run,
                                                                        cfg.seed, cfg.prepare)
    run = start_run(out, kind="decoder", config=cfg, seed=cfg.seed, data_path=data_path, overwrite=overwrite,
                    extra_meta=extra)
    write_json_atomic(run.path / "normalizer.json", normalizer.state_dict())
    if prepared.stream_input is not None:
        write_json_atomic(run.path / "stream_input.json", prepared.stream_input)
    write_json_atomic(run.path / "layout.json", layout.to_dict() if layout is not None else None)
    t0 = time.time()
    if dcfg.model == "linear":
        summary = _fit_linear(run.path, data, dcfg, prepared, layout)
    else:
        summary = _fit_deep(run, data, dcfg, module, cfg.seed, progress)
        if summary is None:  # a DDP process other than the first: its share of training is done
            return run.path
    summary["train_seconds"] = round(time.time() - t0, 1)
    run.mark_done(summary)
    return run.path


def save_npz(path: Path, state: dict[str, Any]) -> None:
    """Write a dict of arrays atomically (np.savez to a file handle, so no suffix is appended)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **{k: np.asarray(v) for k, v in state.items()})


def fit_linear_baseline(data: dict[str, Any], cfg: DecoderTrainConfig, prepared: Any,
                        layout: GridLayout | None) -> tuple[Any, dict[str, np.ndarray]]:
    """The linear baseline of cfg's direction fitted on `linear_passes` random windows of every training trial,
    its PCA size and ridge penalty chosen on the validation windows; returns it and those validation windows."""
    from neurovox.decoders.linear import LinearBaseline

    print(f"linear baseline: stacking context for {len(data['train'])} training trials x {cfg.linear_passes} windows")
    chunks = [_collate_windows(data["train"]) for _ in range(cfg.linear_passes)]
    train = {k: np.concatenate([c[k] for c in chunks]) for k in ("neural", "mel_db", "speech_mask")}
    val = _collate_windows(data["val"])
    good = None if layout is None else np.asarray(layout.good, bool)  # bad contacts zeroed, as in the deep decoders
    model = LinearBaseline(cfg.causal, float(prepared.frame_rate_hz), anticausal=cfg.anticausal).fit(
        train["neural"], train["mel_db"], train["speech_mask"], val=(val["neural"], val["mel_db"], val["speech_mask"]),
        good=good)
    return model, val


def _fit_linear(run_dir: Path, data: dict[str, Any], cfg: DecoderTrainConfig, prepared: Any,
                layout: GridLayout | None) -> dict[str, Any]:
    model, val = fit_linear_baseline(data, cfg, prepared, layout)
    save_npz(run_dir / "linear.npz", model.state_dict())
    summary: dict[str, Any] = {"model": "linear", "causal": cfg.causal, "anticausal": cfg.anticausal, "n_params": int(model.state["coef"].size +
                               model.state["pca_components"].size), "chosen_on_val": model.chosen}
    if len(data["val"]):
        pred = model.predict(val["neural"], cfg.n_target_frames)
        summary["val_pcc"] = float(batch_pcc(torch.from_numpy(pred), torch.from_numpy(val["mel_db"]),
                                              torch.from_numpy(val["speech_mask"]).bool()))
    print(f"linear baseline fitted: {json.dumps(summary)}")
    return summary


def _build_checked_module(data: dict[str, Any], cfg: DecoderTrainConfig, layout: GridLayout | None, prepared: Any,
                          split: Any, speech_run: Any, seed: int, prepare_cfg: Any) -> DecoderModule:
    """The training module, after checking that a step at cfg.batch_size fits in memory: refuse up front (with
    the batch size that would fit) rather than die of OOM after minutes. The estimate runs the uncropped window
    through the synthesizer, the most a step can hold."""
    from neurovox.utils.resume import plain_loader

    if cfg.target == "mel":
        module = _build_mel_module(cfg, layout, prepared, split, seed, data)
    else:  # without a speech run, the default synthesizer's background noise comes from training frames only
        from neurovox.preprocess.prepared import training_noise_power

        noise_power, _ = training_noise_power(prepared, prepare_cfg, split.train_frame_mask)
        speech = load_frozen_speech(speech_run, noise_power)
        module = _build_module(data, cfg, layout, prepared, speech, seed)
    check_fits(module, next(iter(plain_loader(data["train"], 1))), choose_device(cfg.device, "decoder.device"), batch_size=cfg.batch_size,
               loss_fn=lambda b: module.losses(module.decoder, b, synth=True)["loss"],
               what=f"{cfg.model} decoder training ({module.decoder.n_params / 1e6:.2f} M parameters, windows of "
                    f"{cfg.n_lead_frames}+{cfg.n_target_frames} frames)",
               reduce="decoder.batch_size, decoder.n_target_frames or the decoder widths")
    return module


def _fit_deep(run: Any, data: dict[str, Any], cfg: DecoderTrainConfig, module: DecoderModule, seed: int,
              progress: bool) -> dict[str, Any] | None:
    """Train a deep decoder with Lightning (resuming from RUN/checkpoints/last.ckpt), save model.pt; under DDP
    only the first process saves and summarises (the others return None)."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    from neurovox.utils.resume import load_checkpoint_file, plain_loader, resume_from, step_loader
    from neurovox.utils.resume_lightning import ResumeState

    train_loader = step_loader(data["train"], cfg.batch_size, seed, world_size=cfg.devices * cfg.num_nodes)
    val_loader = plain_loader(data["val"], cfg.batch_size)
    _print_cost(module, train_loader, cfg, module.decoder)
    checkpoint = ModelCheckpoint(dirpath=run.checkpoint_dir, filename="best", monitor="val_loss", mode="min",
                                 save_last=True, enable_version_counter=False)
    trainer = _trainer(run, cfg, progress, [checkpoint, ResumeState(train_loader.sampler)])
    with warnings.catch_warnings():
        # The frozen speech model is in eval mode on purpose (no dropout in the reference it provides).
        warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode at the start of training")
        fit_t0 = time.perf_counter()
        trainer.fit(module, train_loader, val_loader, ckpt_path=resume_from(run.checkpoint_dir / "last.ckpt"))
        fit_s = time.perf_counter() - fit_t0
    if not trainer.is_global_zero:  # DDP: the first process writes the run's files
        return None
    if checkpoint.best_model_path and Path(checkpoint.best_model_path).exists():
        module.load_state_dict(load_checkpoint_file(Path(checkpoint.best_model_path))["state_dict"])
    branch_mix = _choose_branch_mix(module, data) if isinstance(module.eval_model(), WithLinearBranch) else None
    if cfg.target == "mel":
        save_model(run.path / "model.pt", cfg.model, module.eval_model(), mel_stats=(module.mel_mean_db, module.mel_sd_db))
    else:
        save_model(run.path / "model.pt", cfg.model, module.eval_model(), synth=module.speech.synth)
    return {"model": cfg.model, "causal": cfg.causal, "anticausal": cfg.anticausal, "n_params": module.decoder.n_params,
            "epochs": int(trainer.current_epoch), "steps": int(trainer.global_step),
            "windows_per_step": cfg.batch_size, "fit_seconds": round(fit_s, 2),  # of this process's run (resumed: since)
            "peak_gpu_memory_gb": _peak_gpu_gb(),
            "best_val_loss": _f(checkpoint.best_model_score),
            "val_pcc": module.mel_pcc(val_loader), "linear_branch": branch_mix}


def _choose_branch_mix(module: DecoderModule, data: dict[str, Any]) -> dict[str, float]:
    """Weight of the linear branch, chosen on the validation windows (`WithLinearBranch.choose_mix`)."""
    from neurovox.preprocess.splits import train_speech_mean_db

    model = module.eval_model()
    val = {k: torch.from_numpy(v) for k, v in _collate_windows(data["val"]).items() if k in ("neural", "mel_db", "speech_mask")}
    device = next(model.parameters()).device
    tilt = torch.from_numpy(train_speech_mean_db(data["train"].prepared, data["train"].split)).to(device)
    chosen = model.choose_mix(val["neural"].to(device), val["mel_db"].to(device), val["speech_mask"].to(device).bool(),
                              module.mel_mean_db, module.mel_sd_db, tilt)
    print(f"linear branch weight chosen on {len(val['neural'])} validation windows: {json.dumps(chosen)}", flush=True)
    return chosen


def mel_stats(prepared: Any, train_frame_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and SD (dB) of each mel bin over the training frames, shapes (80,) and (80,): the scale of the
    mel target (training frames only, never validation or test)."""
    mel = prepared.mel_db[np.asarray(train_frame_mask, bool)].astype(np.float64)
    return mel.mean(0).astype(np.float32), np.maximum(mel.std(0), 1e-3).astype(np.float32)


def _build_mel_module(cfg: DecoderTrainConfig, layout: GridLayout | None, prepared: Any, split: Any,
                      seed: int, data: dict[str, Any]) -> DecoderModule:
    """A decoder with one output per mel bin (standardised mel dB), its output layer started at 0 (the
    training mean spectrum), with `linear_branch` wrapped with its linear branch (weight 0 until training ends),
    in a DecoderModule without a speech model."""
    from neurovox import dsp

    n_channels = prepared.neural.shape[1]
    decoder = build_decoder("gru" if cfg.model == "gru" else cfg.model, n_channels=n_channels,
                            n_out=dsp.N_MELS, causal=cfg.causal, anticausal=cfg.anticausal, layout=layout,
                            **model_kwargs(cfg))
    torch.nn.init.zeros_(decoder.out.bias)
    mean, sd = mel_stats(prepared, split.train_frame_mask)
    if cfg.linear_branch:  # fitted before training, so a resumed run consumes the same random windows
        baseline, _ = fit_linear_baseline(data, cfg, prepared, layout)
        decoder = WithLinearBranch(decoder, list(baseline.lags_frames), n_channels)
        decoder.set_from_baseline(baseline, mean, sd)
        print(f"linear branch fitted (frozen, weight 0 while the {cfg.model} trains; its weight is chosen on the "
              f"validation trials afterwards): {json.dumps(baseline.chosen)}")
    return DecoderModule(decoder, None, cfg, seed, mel_stats=(torch.from_numpy(mean), torch.from_numpy(sd)))


def _build_module(data: dict[str, Any], cfg: DecoderTrainConfig, layout: GridLayout | None, prepared: Any,
                  speech: FrozenSpeech, seed: int) -> DecoderModule:
    """The decoder, its output layer started at the speaker's mean voice (or a calibrated loudness without
    a speech encoder), wrapped with the frozen speech model in a DecoderModule."""
    from neurovox.synth import N_RAW

    decoder = build_decoder("gru" if cfg.model == "gru" else cfg.model, n_channels=prepared.neural.shape[1],
                            n_out=N_RAW, causal=cfg.causal, anticausal=cfg.anticausal, layout=layout,
                            **model_kwargs(cfg))
    use_ref = cfg.w_ref > 0
    if use_ref and speech.encoder is None:  # train_decoder sets w_ref=0 without a speech run
        raise ConfigError("decoder.w_ref > 0 needs a speech run (--speech RUN) for the reference parameters.")
    module = DecoderModule(decoder, speech, cfg, seed)
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
    return module


def _trainer(run: Any, cfg: DecoderTrainConfig, progress: bool, callbacks: list[Any]) -> Any:
    """Lightning trainer: early stopping after the reference phase, checkpoints written atomically."""
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import EarlyStopping
    from lightning.pytorch.loggers import TensorBoardLogger

    from neurovox.utils.resume import remove_stale_temporaries
    from neurovox.utils.resume_lightning import AtomicCheckpointIO

    remove_stale_temporaries(run.checkpoint_dir)
    # strict=False: a budget shorter than one epoch (decoder.max_steps) ends before the first validation
    stopping = phase_early_stopping(EarlyStopping)(monitor="val_loss", mode="min", patience=cfg.patience, strict=False)
    return pl.Trainer(max_epochs=cfg.max_epochs, max_steps=cfg.max_steps or -1,
                      accelerator=choose_device(cfg.device, "decoder.device"),
                      # the StepSampler deals each step's batch out itself: no distributed sampler in front of it
                      **ddp_settings(cfg.devices, cfg.num_nodes), use_distributed_sampler=False,
                      precision=cfg.precision, logger=TensorBoardLogger(str(run.path), name="logs"),
                      callbacks=[stopping, *callbacks], plugins=[AtomicCheckpointIO()], enable_progress_bar=progress,
                      gradient_clip_val=cfg.grad_clip or None, log_every_n_steps=5, enable_model_summary=False,
                      num_sanity_val_steps=0, deterministic=False)


def _peak_gpu_gb() -> float | None:
    """Peak GPU memory this process allocated (GiB), None on CPU."""
    return round(torch.cuda.max_memory_allocated() / 2**30, 3) if torch.cuda.is_available() else None


def _f(x: Any) -> float | None:
    return None if x is None else float(x)


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
    total = steps * cfg.max_epochs if not cfg.max_steps else min(cfg.max_steps, steps * cfg.max_epochs)
    n_ref = min(total, cfg.ref_only_steps) if module.in_ref_phase() else 0
    ref_s = step_s(False) if n_ref else 0.0
    spec_s = step_s(True) if total > n_ref else 0.0  # a reference-only run never synthesises
    total_s = (ref_s * n_ref + spec_s * (total - n_ref)) * 1.3  # +30 % for validation
    cost = f"{total_s:.0f} s" if total_s < 90 else f"{total_s / 60:.0f} min"
    if cfg.target == "mel":
        phases = f"{total} steps x ~{spec_s:.2f} s"
    else:
        phases = (f"{n_ref} reference-only steps x ~{ref_s:.2f} s, then " if n_ref else "") + \
                 f"{total - n_ref} steps through the synthesizer x ~{spec_s:.2f} s"
    budget = f"{steps} steps/epoch x up to {cfg.max_epochs} epochs" + (f", at most {cfg.max_steps} steps" if cfg.max_steps else "")
    print(f"decoder {cfg.model}{direction_note(cfg)}, target {cfg.target}: {decoder.n_params / 1e6:.2f} M "
          f"parameters; {budget}: {phases} = up to ~{cost} on this machine"
          + (f" (early stopping after {cfg.patience} epochs without improvement may end sooner)"
             if cfg.patience < cfg.max_epochs else ""), flush=True)


def save_model(path: Path, name: str, model: NeuralDecoder, *, synth: torch.nn.Module | None = None,
               mel_stats: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
    """model.pt: name, constructor args, weights, and what turns the output into a spectrogram: the frozen
    formant synthesizer (config + state; target "formant") or the mel scale, dB mean and SD per bin (80,)
    each (target "mel"). Exactly one of `synth` and `mel_stats`."""
    if (synth is None) == (mel_stats is None):
        raise ValueError("save_model needs exactly one of synth (target formant) and mel_stats (target mel)")
    payload: dict[str, Any] = {"model_name": name, "model_args": model.model_args, "state_dict": model.state_dict()}
    if mel_stats is not None:
        payload.update(target="mel", mel_mean_db=mel_stats[0].detach().cpu(), mel_sd_db=mel_stats[1].detach().cpu())
    else:
        payload.update(target="formant", synth_config=asdict(synth.cfg), synth_state=synth.state_dict())
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
