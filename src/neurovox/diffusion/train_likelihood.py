"""Training of the neural likelihood model A (`neurovox train likelihood`).

build (prepare the recording, split, Normalizer fitted on training frames, window datasets) ->
loop (A(mel window) vs the simultaneous z-scored neural frames, MSE) -> eval (validation MSE and
per-channel correlation) -> checkpoint (best validation). The observation DPS will compare with
A's output is normalised by exactly the saved Normalizer.

Run directory: config.yaml, run.json, likelihood.pt (model config + weights), normalizer.json,
metrics.json (validation/test MSE and correlation), DONE.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from neurovox.diffusion.features import windows_to_images
from neurovox.diffusion.likelihood import LikelihoodConfig, LikelihoodModel
from neurovox.errors import DataError, RunError
from neurovox.preprocess.config import PrepareConfig
from neurovox.preprocess.splits import SplitConfig
from neurovox.runs import Run, load_run_weights, start_run
from neurovox.utils.files import atomic_path, write_json_atomic
from neurovox.utils.resume import (load_checkpoint_file, remove_stale_temporaries, rng_state, save_checkpoint_file,
                                   set_rng_state)

LIKELIHOOD_FILE = "likelihood.pt"


@dataclass
class WindowConfig:
    n_target_frames: int = 128       # mel frames per window (1.024 s at 125 Hz), count
    n_lead_frames: int = 16          # extra neural frames before the window, count


@dataclass
class LikelihoodRunConfig:
    seed: int = 0                                                     # RNG seed, set once by the CLI
    prepare: PrepareConfig = field(default_factory=PrepareConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    window: WindowConfig = field(default_factory=WindowConfig)
    likelihood: LikelihoodConfig = field(default_factory=LikelihoodConfig)


QUICK_LIKELIHOOD = {"likelihood": {"hidden": 64, "max_epochs": 25, "patience_epochs": 6}}


def _batches(ds, batch_size: int, shuffle: bool, generator: torch.Generator | None):
    from neurovox.preprocess import make_loader

    return make_loader(ds, batch_size, shuffle=shuffle, generator=generator)


def _forward(model: LikelihoodModel, batch: dict[str, torch.Tensor], n_lead: int, noise: float = 0.0,
             generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    x0 = windows_to_images(batch["mel_db"])                  # (b, 1, 80, n_target)
    if noise > 0:
        x0 = x0 + noise * torch.randn(x0.shape, generator=generator)
    target = batch["neural"][:, n_lead:]                     # simultaneous frames (b, n_target, n_channels)
    return model(x0), target


@torch.no_grad()
def evaluate_likelihood(model: LikelihoodModel, ds, n_lead: int, good: np.ndarray) -> dict[str, float]:
    """MSE and mean per-channel Pearson r (good channels, concatenated frames) of A on a dataset."""
    model.eval()
    preds, targets = [], []
    for batch in _batches(ds, 64, False, None):
        p, t = _forward(model, batch, n_lead)
        preds.append(p.reshape(-1, p.shape[-1]))
        targets.append(t.reshape(-1, t.shape[-1]))
    p = torch.cat(preds)[:, good].double()
    t = torch.cat(targets)[:, good].double()
    mse = float((p - t).square().mean())
    pc, tc = p - p.mean(0), t - t.mean(0)
    r = (pc * tc).sum(0) / (pc.norm(dim=0) * tc.norm(dim=0)).clamp_min(1e-12)
    return {"mse": mse, "mean_r": float(r.mean()), "n_frames": int(p.shape[0])}


def check_generative_runs(prepared: Any, split: Any, data_path: str | Path, *, prior_run: str | Path | None = None,
                          speech_run: str | Path | None = None, seed: int | None = None) -> None:
    """Refuse a prior (or a formant-vocoder speech run) that heard the test trials of `split`, or, on a simulated
    participant, its corpus voice (`neurovox.preprocess.leakage`); RunError naming what to retrain."""
    from neurovox.preprocess.leakage import audio_sha256, check_prior_run, check_speech_run

    sha = audio_sha256(prepared.audio, prepared.trials)
    if prior_run:
        check_prior_run(prior_run, prepared, split, data=data_path, audio_sha=sha)
    if speech_run:
        check_speech_run(speech_run, prepared, split, data=data_path, seed=seed, audio_sha=sha)


def train_likelihood(data_path: str | Path, out: str | Path, cfg: LikelihoodRunConfig, *,
                     overwrite: bool = False, progress: bool = True, cache_dir: str | Path | None = None,
                     prior_run: str | Path | None = None, speech_run: str | Path | None = None) -> Run:
    """Train A on the training trials of `data_path` into run directory `out`.

    `prior_run` / `speech_run`: the prior (and formant-vocoder speech run) the dps run will combine with this
    model; they are checked against this run's test trials before anything is written
    (`check_generative_runs`). The training trials are recorded in run.json ("training_data").
    """
    from neurovox.io import read_recording
    from neurovox.preprocess import Normalizer, WindowDataset, prepare
    from neurovox.preprocess.leakage import record_training_data, recording_source
    from neurovox.preprocess.splits import split_from_config

    lc, wc = cfg.likelihood, cfg.window
    rec = read_recording(data_path)
    prepared = prepare(rec, cfg.prepare, cache_dir)
    split = split_from_config(prepared, cfg.split, n_target_frames=wc.n_target_frames, n_lead_frames=wc.n_lead_frames)
    check_generative_runs(prepared, split, data_path, prior_run=prior_run, speech_run=speech_run, seed=cfg.split.seed)
    if len(split.val_trials) == 0:  # they pick the epoch and set the noise variance DPS assumes
        raise DataError(f"The {cfg.split.scheme!r} split of {str(data_path)!r} has no validation trials "
                        f"({len(prepared.trials)} trials in the file); the likelihood model needs them. Record more "
                        "trials or choose a split that leaves some.")
    norm = Normalizer().fit(prepared.neural, split.train_frame_mask)
    g = torch.Generator().manual_seed(cfg.seed)
    kw = dict(n_target_frames=wc.n_target_frames, n_lead_frames=wc.n_lead_frames)
    train_ds = WindowDataset(prepared, split, norm, "train", generator=g, **kw)
    val_ds = WindowDataset(prepared, split, norm, "val", **kw)
    test_ds = WindowDataset(prepared, split, norm, "test", **kw)
    # The run directory is made only now: a refused input (bad data, empty split, a prior that heard the test
    # trials) leaves nothing behind.
    run = start_run(out, kind="likelihood", config=cfg, seed=cfg.seed, data_path=data_path, overwrite=overwrite)
    record_training_data(run, [recording_source(prepared, split, path=data_path, seed=cfg.split.seed)])
    good = np.asarray(prepared.good_mask, dtype=bool)
    whisper = None
    if lc.whisper_dir:
        from neurovox.diffusion.whisper import WhisperFeatures

        whisper = WhisperFeatures(lc.whisper_dir, lc.whisper_dim)
    torch.manual_seed(cfg.seed)  # weight init; the CLI seeds, this keeps library calls reproducible too
    model = LikelihoodModel(prepared.n_channels, lc, whisper=whisper)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lc.lr, weight_decay=lc.weight_decay)
    print(f"[likelihood] {len(train_ds)} training trials, {prepared.n_channels} channels "
          f"({int(good.sum())} good); A has {sum(p.numel() for p in params) / 1e6:.2f} M trainable parameters, "
          f"receptive field +-{model.receptive_field_frames} frames; up to {lc.max_epochs} epochs.", flush=True)
    ckpt = run.checkpoint_dir / "last.pt"
    state = {"epoch": 0, "best": float("inf"), "best_state": None, "bad_epochs": 0, "history": []}
    remove_stale_temporaries(run.checkpoint_dir)
    if ckpt.exists():  # resume where the last finished epoch left off (bit for bit on CPU)
        print(f"resuming from {ckpt}", flush=True)
        saved = load_checkpoint_file(ckpt)
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["opt"])
        g.set_state(saved["generator"])
        if "rng" not in saved:
            raise RunError(f"Checkpoint {str(ckpt)!r} was written by an older neurovox (no random-generator "
                           "states, so it cannot resume exactly); rerun with --overwrite to start again.")
        set_rng_state(saved["rng"])  # dropout draws from the global generators
        state = saved["state"]
    mask = torch.from_numpy(good)
    t0 = time.perf_counter()
    bar = tqdm(range(state["epoch"], lc.max_epochs), desc="likelihood", disable=not progress)
    for epoch in bar:
        model.train()
        losses = []
        for batch in _batches(train_ds, lc.batch_size, True, g):
            pred, target = _forward(model, batch, wc.n_lead_frames, lc.input_noise, g)
            loss = (pred - target)[..., mask].square().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        val = evaluate_likelihood(model, val_ds, wc.n_lead_frames, good)
        state["history"].append({"epoch": epoch + 1, "train_mse": float(np.mean(losses)), "val_mse": val["mse"],
                                 "val_r": val["mean_r"]})
        bar.set_postfix(train=f"{np.mean(losses):.3f}", val=f"{val['mse']:.3f}", r=f"{val['mean_r']:.3f}")
        if val["mse"] < state["best"] - 1e-4:
            state.update(best=val["mse"], bad_epochs=0,
                         best_state={k: v.detach().clone() for k, v in model.state_dict().items()})
        else:
            state["bad_epochs"] += 1
        state["epoch"] = epoch + 1
        save_checkpoint_file({"model": model.state_dict(), "opt": opt.state_dict(), "generator": g.get_state(),
                              "rng": rng_state(), "state": state}, ckpt)
        if state["bad_epochs"] >= lc.patience_epochs:
            break
    if state["best_state"] is not None:
        model.load_state_dict(state["best_state"])
    test = evaluate_likelihood(model, test_ds, wc.n_lead_frames, good)
    val = evaluate_likelihood(model, val_ds, wc.n_lead_frames, good)
    train_s = time.perf_counter() - t0
    save_likelihood(run.path / LIKELIHOOD_FILE, model, good)
    write_json_atomic(run.path / "normalizer.json", norm.state_dict())
    metrics = {"val": val, "test": test, "train_s": train_s, "epochs": state["epoch"], "history": state["history"]}
    write_json_atomic(run.path / "metrics.json", metrics)
    run.mark_done({"test_mse": test["mse"], "test_mean_r": test["mean_r"], "train_s": train_s})
    print(f"[likelihood] done in {train_s:.0f} s; test MSE {test['mse']:.3f}, mean per-channel r {test['mean_r']:.3f}")
    return run


def save_likelihood(path: Path, model: LikelihoodModel, good_channels: np.ndarray) -> None:
    """Weights (without the frozen Whisper encoder, reloaded from its directory) + the good-channel mask."""
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("whisper.encoder.")}
    with atomic_path(path) as tmp:
        torch.save({"config": model.config(), "state_dict": state,
                    "good_channels": np.asarray(good_channels, dtype=bool).tolist()}, tmp)


def load_likelihood(run_dir: str | Path, device: str | torch.device = "cpu") -> tuple[LikelihoodModel, Any, Run, np.ndarray]:
    """(A in eval mode, its Normalizer, the run, good-channel mask (n_channels,) bool) of a finished likelihood run."""
    from neurovox.preprocess import Normalizer

    run, payload = load_run_weights(run_dir, "likelihood", LIKELIHOOD_FILE, ("config", "state_dict", "good_channels"),
                                    device=device)
    path = run.path / LIKELIHOOD_FILE
    conf = dict(payload["config"])
    n_channels = conf.pop("n_channels")
    lc = LikelihoodConfig(**conf)
    whisper = None
    if lc.whisper_dir:
        from neurovox.diffusion.whisper import WhisperFeatures

        whisper = WhisperFeatures(lc.whisper_dir, lc.whisper_dim)
    model = LikelihoodModel(n_channels, lc, whisper=whisper)
    missing, unexpected = model.load_state_dict(payload["state_dict"], strict=False)
    if unexpected or any(not k.startswith("whisper.encoder.") for k in missing):
        raise RunError(f"Likelihood weights in {str(path)!r} do not match the model: missing {missing[:3]}, "
                       f"unexpected {unexpected[:3]}.")
    norm = Normalizer.from_state_dict(json.loads((run.path / "normalizer.json").read_text()))
    good = np.asarray(payload["good_channels"], dtype=bool)
    return model.to(device).eval(), norm, run, good
