"""Cross-participant decoding (issue 20): one decoder core shared by several participants, each with its own
input layer, then fine-tuned on a fraction of a new participant's training trials.

    participant p's normalised high gamma, windows (batch, n_lead + n_target, n_channels_p)
      -> bad contacts zeroed, then p's input layer: one linear map per frame to the core's n_core inputs
         (per frame, so the core's direction - non-causal, causal, anticausal - is kept). It starts by routing
         each electrode to the core input of the reference participant's electrode at the same place (same
         grid row/column, or 3-D position within 1 mm); electrodes without such a match start at 0
      -> the shared core: a recurrent decoder (lstm | gru) with n_core inputs
      -> standardised mel (80 bins), turned into dB with p's own training mean and SD per bin

`cross_participant` runs, each stage saved so that a rerun skips what is done:
 1. pre-training of the core and the training participants' input layers on their training trials
    (each participant's own split; the best step on their validation trials);
 2. for each fraction f of the new participant's training trials (a fixed shuffled order, so the 20 %
    are inside the 50 %): fine-tuning (pre-trained core, new input layer) and training from scratch (new
    core, the same trials, steps and seed); the best step on the new participant's validation trials;
 3. scoring on the new participant's test trials: per-trial PCC and tilt-removed PCC of the mel spectrogram
    (before vocoding), with trial-shuffled chance and the onset-aligned no-neural baseline made from the same
    training trials; fine-tuned minus scratch with a paired bootstrap CI.

The new participant's normaliser and mel scale come from its used training trials only; its validation and
test trials are never trained on.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from neurovox import dsp
from neurovox.errors import ConfigError, DataError
from neurovox.utils.files import write_json_atomic

CORE_MODELS = ("lstm", "gru")
FRACTIONS = (0.1, 0.2, 0.5, 1.0)  # of the new participant's training trials: the learning curve
MIN_STEPS = 100                    # optimiser steps of a stage at least (a 10 % subset is a handful of batches)
EVAL_EVERY = 25                    # steps between validation checks (the best one is kept)


# Participants --------------------------------------------------------------------------------------

@dataclass
class Participant:
    """One recording prepared for cross-participant training (its own split, normaliser and mel scale)."""

    name: str
    path: str
    prepared: Any
    split: Any                 # the recording's split; `train_trials` may be a subset (fine-tuning fractions)
    normalizer: Any
    good: np.ndarray           # (n_channels,) bool, contacts that are not bad
    mel_mean_db: np.ndarray    # (80,) over the used training frames
    mel_sd_db: np.ndarray      # (80,)

    @property
    def n_channels(self) -> int:
        return int(self.prepared.neural.shape[1])


def load_participant(path: str | Path, cfg: Any, cache_dir: Path | None = None, name: str | None = None) -> Participant:
    """Prepare a recording, split it and find its bad channels (training frames only)."""
    from neurovox.decoders.train import prepare_data
    from neurovox.preprocess.bad_channels import find_bad_channels, with_bad_channels

    prepared, split, normalizer = prepare_data(path, cfg, cache_dir)
    report = find_bad_channels(prepared.neural[split.train_frame_mask.astype(bool)], prepared.channels,
                               float(prepared.frame_rate_hz))
    good = ~with_bad_channels(prepared.channels, report)["bad"].to_numpy(bool)
    p = Participant(name or str(prepared.meta.participant_id), str(path), prepared, split, normalizer, good,
                    np.zeros(dsp.N_MELS, np.float32), np.ones(dsp.N_MELS, np.float32))
    return with_training_trials(p, np.asarray(split.train_trials))


def with_training_trials(p: Participant, trials: np.ndarray) -> Participant:
    """`p` trained on `trials` only: its split, normaliser and mel scale restricted to those trials' windows."""
    from neurovox.decoders.train import mel_stats
    from neurovox.preprocess import Normalizer

    split = dataclasses.replace(p.split, train_trials=np.sort(np.asarray(trials, np.int64)))
    used = _window_frames(p.prepared, split) & split.train_frame_mask
    if used.sum() < 2:
        raise DataError(f"{p.path!r}: the {len(trials)} training trials chosen leave no training frames.")
    normalizer = Normalizer().fit(p.prepared.neural, used)
    mean, sd = mel_stats(p.prepared, used)
    return dataclasses.replace(p, split=split, normalizer=normalizer, mel_mean_db=mean, mel_sd_db=sd)


def _window_frames(prepared: Any, split: Any) -> np.ndarray:
    """Frames the training windows of the split's training trials can read, shape (n_frames,) bool."""
    on = prepared.trials["onset_frame"].to_numpy(np.int64)
    off = prepared.trials["offset_frame"].to_numpy(np.int64)
    mask = np.zeros(prepared.n_frames, bool)
    for r in split.train_trials:
        mask[max(0, min(on[r], off[r] - split.n_target_frames) - split.n_lead_frames):
             max(on[r] + split.n_target_frames, off[r])] = True
    return mask


def position_keys(channels: Any) -> list[tuple | None]:
    """Where each electrode is, comparable across participants: (group, row, col) on a grid, else its 3-D
    position rounded to 1 mm, else None."""
    keys: list[tuple | None] = []
    for _, ch in channels.iterrows():
        if int(ch["row"]) >= 0 and int(ch["col"]) >= 0:
            keys.append(("grid", str(ch["group"]), int(ch["row"]), int(ch["col"])))
        elif np.all(np.isfinite([ch["x"], ch["y"], ch["z"]])):
            keys.append(("xyz",) + tuple(int(round(float(ch[k]) * 1e3)) for k in ("x", "y", "z")))
        else:
            keys.append(None)
    return keys


def input_routing(reference: Participant, p: Participant) -> np.ndarray:
    """(n_core, n_channels_p) start of p's input layer: 1 where p's electrode sits where the reference's does.

    Raises DataError when the two channel tables share no electrode position: the shared core would then
    start from nothing it learnt, and the tables are most likely from different coordinate systems."""
    ref_index = {k: i for i, k in enumerate(position_keys(reference.prepared.channels)) if k is not None}
    w = np.zeros((reference.n_channels, p.n_channels), np.float32)
    for j, k in enumerate(position_keys(p.prepared.channels)):
        if k is not None and k in ref_index:
            w[ref_index[k], j] = 1.0
    if not w.any():
        raise DataError(f"The channel table of {p.path!r} ({p.n_channels} channels) shares no electrode position with "
                        f"that of {reference.path!r} ({reference.n_channels} channels): cross-participant decoding "
                        "maps electrodes by grid row/column or 3-D position (mm). Give both tables positions on a "
                        "common grid or in one coordinate space (e.g. MNI), or train on recordings of one layout.")
    return w


# Model ---------------------------------------------------------------------------------------------

class SharedCoreDecoder(nn.Module):
    """Per-participant input layers over one shared core (see the module docstring)."""

    def __init__(self, core: nn.Module):
        super().__init__()
        self.core = core
        self.inputs = nn.ModuleDict()
        self.good: dict[str, torch.Tensor] = {}

    def add_participant(self, name: str, routing: np.ndarray, good: np.ndarray) -> None:
        layer = nn.Linear(routing.shape[1], routing.shape[0], bias=False)
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(routing))
        self.inputs[name] = layer
        self.good[name] = torch.from_numpy(np.asarray(good, np.float32))

    def forward(self, name: str, neural: torch.Tensor, n_target: int) -> torch.Tensor:
        """(batch, n_lead + n_target, n_channels_p) -> standardised mel (batch, n_target, 80)."""
        return self.core(self.inputs[name](neural * self.good[name]), n_target)


def build_core(cfg: Any, n_core: int) -> nn.Module:
    from neurovox.decoders.base import build_decoder
    from neurovox.decoders.config import model_kwargs

    if cfg.model not in CORE_MODELS:
        raise ConfigError(f"Cross-participant decoding uses a recurrent core ({' | '.join(CORE_MODELS)}) behind "
                          f"per-participant input layers; got --model {cfg.model}. Use --model lstm.")
    core = build_decoder(cfg.model, n_channels=n_core, n_out=dsp.N_MELS, causal=cfg.causal, anticausal=cfg.anticausal,
                         layout=None, **model_kwargs(cfg))
    nn.init.zeros_(core.out.bias)  # starts at each participant's training mean spectrum
    return core


# Training ------------------------------------------------------------------------------------------

def _batches(p: Participant, cfg: Any, part: str, seed: int) -> Any:
    from neurovox.preprocess import WindowDataset

    return WindowDataset(p.prepared, p.split, p.normalizer, part=part, n_target_frames=cfg.n_target_frames,
                         n_lead_frames=cfg.n_lead_frames, generator=torch.Generator().manual_seed(seed))


def _collate(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {k: torch.stack([it[k] for it in items]) for k in ("neural", "mel_db", "speech_mask")}


def _loss(model: SharedCoreDecoder, p: Participant, batch: dict[str, torch.Tensor], cfg: Any) -> torch.Tensor:
    """The mel head's loss (decoders' DecoderModule): MSE on standardised mel, speech frames weighted up."""
    n_target = batch["mel_db"].shape[1]
    pred = model(p.name, batch["neural"], n_target)
    target = (batch["mel_db"] - torch.from_numpy(p.mel_mean_db)) / torch.from_numpy(p.mel_sd_db)
    fw = cfg.silence_weight + (1 - cfg.silence_weight) * batch["speech_mask"].float()
    return (((pred - target) ** 2).mean(-1) * fw).sum() / fw.sum()


def stage_steps(cfg: Any, n_trials: int) -> int:
    """Optimiser steps of a stage: the epoch budget over `n_trials` training trials (at least MIN_STEPS),
    capped by decoder.max_steps when set. Steps, never wall clock."""
    steps = max(MIN_STEPS, cfg.max_epochs * math.ceil(n_trials / cfg.batch_size))
    return min(steps, cfg.max_steps) if cfg.max_steps else steps


def train_stage(model: SharedCoreDecoder, parts: list[Participant], cfg: Any, n_steps: int, seed: int,
                label: str, progress: bool = True) -> dict[str, Any]:
    """Train `model` on `parts` (round robin, one participant per batch) for `n_steps`; keeps the weights
    of the validation check with the lowest mean validation loss. Returns the training record."""
    from neurovox.utils.training import lr_factor

    torch.manual_seed(seed)
    train = [_batches(p, cfg, "train", seed + i) for i, p in enumerate(parts)]
    val = [_collate([d[i] for i in range(len(d))]) for d in (_batches(p, cfg, "val", seed) for p in parts)]
    if any(len(d) == 0 for d in train) or any(len(v["neural"]) == 0 for v in val):
        raise DataError(f"{label}: every participant needs training and validation trials.")
    opt = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=cfg.lr,
                            weight_decay=cfg.weight_decay)
    order = torch.Generator().manual_seed(seed)
    # step 0 is a candidate too: a pre-trained core that fine-tuning on a few trials only degrades is kept as it was
    step0 = validation_loss(model, parts, val, cfg)
    best = {"val_loss": step0, "step": 0, "state": copy.deepcopy(model.state_dict())}
    losses: list[float] = []
    bar = _progress(n_steps, label, progress)
    for step in range(n_steps):
        for group in opt.param_groups:
            group["lr"] = cfg.lr * lr_factor(step, n_steps, cfg.warmup_steps)
        k = step % len(parts)
        idx = torch.randint(len(train[k]), (cfg.batch_size,), generator=order).tolist()
        batch = _collate([train[k][i] for i in idx])
        batch["neural"] = _augment(batch["neural"], cfg, order)
        model.train()
        loss = _loss(model, parts[k], batch, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        losses.append(loss.item())
        if (step + 1) % EVAL_EVERY == 0 or step + 1 == n_steps:
            v = validation_loss(model, parts, val, cfg)
            if v < best["val_loss"]:
                best = {"val_loss": v, "step": step + 1, "state": copy.deepcopy(model.state_dict())}
            bar.set_postfix(loss=f"{np.mean(losses[-EVAL_EVERY:]):.3f}", val=f"{v:.3f}")
        bar.update(1)
    bar.close()
    model.load_state_dict(best["state"])
    return {"steps": n_steps, "best_step": best["step"], "best_val_loss": best["val_loss"], "step0_val_loss": step0,
            "first_loss": float(np.mean(losses[:EVAL_EVERY])), "last_loss": float(np.mean(losses[-EVAL_EVERY:]))}


@torch.no_grad()
def validation_loss(model: SharedCoreDecoder, parts: list[Participant], val: list[dict[str, torch.Tensor]],
                    cfg: Any) -> float:
    model.eval()
    return float(np.mean([float(_loss(model, p, v, cfg)) for p, v in zip(parts, val)]))


def _augment(x: torch.Tensor, cfg: Any, gen: torch.Generator) -> torch.Tensor:
    """Per-window, per-channel gain and channel dropout (constant over the window: direction kept)."""
    shape = (x.shape[0], 1, x.shape[2])
    gain = 1.0 + cfg.aug_gain_sd * torch.randn(shape, generator=gen)
    keep = (torch.rand(shape, generator=gen) >= cfg.aug_channel_dropout).float()
    return x * gain * keep


def _progress(total: int, label: str, show: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=label, disable=not show, dynamic_ncols=True, leave=False)


# Scoring -------------------------------------------------------------------------------------------

@torch.no_grad()
def score(model: SharedCoreDecoder, p: Participant, cfg: Any, seed: int) -> dict[str, np.ndarray]:
    """Per-test-trial PCC / tilt-removed PCC of the decoded mel, of the trial-shuffled chance and of the
    no-neural (onset-aligned mean) baseline from the same training trials."""
    from neurovox.evaluate.baselines import baseline_windows
    from neurovox.evaluate.chance import shuffled_windows
    from neurovox.evaluate.metrics import pcc_per_trial, pcc_tilt_removed
    from neurovox.preprocess.splits import train_speech_mean_db

    test = _batches(p, cfg, "test", seed)
    if len(test) < 2:
        raise DataError(f"{p.path!r} has {len(test)} test trials; scoring needs at least 2.")
    items = [test[i] for i in range(len(test))]
    neural = torch.stack([it["neural"] for it in items])
    ref = np.stack([it["mel_db"].numpy() for it in items]).astype(np.float64)
    mask = np.stack([it["speech_mask"].numpy() for it in items]).astype(bool)
    starts = np.array([int(it["start_frame"]) for it in items])

    def decode(x: torch.Tensor) -> np.ndarray:
        model.eval()
        out = model(p.name, x, cfg.n_target_frames).numpy()
        return out * p.mel_sd_db + p.mel_mean_db

    shuffled, _ = shuffled_windows(neural.numpy(), np.random.default_rng(seed))
    tilt = train_speech_mean_db(p.prepared, p.split)
    preds = {"decoded": decode(neural), "chance": decode(torch.from_numpy(shuffled)),
             "no_neural": baseline_windows(p.prepared, p.split, starts)["onset_mean"]}
    return {f"{name}_{metric}": fn(ref, pred.astype(np.float64), *extra, mask)
            for name, pred in preds.items()
            for metric, fn, extra in (("pcc", pcc_per_trial, ()), ("pcc_tilt", pcc_tilt_removed, (tilt,)))}


# The experiment ------------------------------------------------------------------------------------

def cross_participant(train_paths: list[str | Path], test_path: str | Path, out: str | Path, cfg: Any, *,
                      overwrite: bool = False, cache_dir: Path | None = None, progress: bool = True) -> Path:
    """Pre-train on `train_paths`, then fine-tune vs train from scratch on fractions of `test_path`'s training
    trials; writes OUT/cross.json, OUT/learning_curve.png and OUT/report.html. Returns OUT."""
    from neurovox.runs import start_run

    dcfg = cfg.decoder
    if dcfg.target != "mel":
        raise ConfigError("Cross-participant decoding trains the mel head (decoder.target=mel); the formant head needs "
                          "one speech model per participant.")
    if dcfg.causal:
        from neurovox.decoders.train import check_causal_config

        check_causal_config(cfg)
    paths = [str(p) for p in train_paths]
    if str(test_path) in paths:
        raise ConfigError(f"{str(test_path)!r} is both a training recording (--data) and the new participant "
                          "(--test-data); the new participant must be one the core has not seen.")
    # everything that can refuse the data runs before the run directory exists
    sources = [load_participant(path, cfg, cache_dir, name=f"train{i}") for i, path in enumerate(paths)]
    target = load_participant(test_path, cfg, cache_dir, name="new")
    reference = sources[0]
    routing = {p.name: input_routing(reference, p) for p in sources + [target]}
    n_core = reference.n_channels
    build_core(dcfg, n_core)  # refuses a model that cannot be a core
    run = start_run(out, kind="cross", config=cfg, seed=cfg.seed, data_path=test_path, overwrite=overwrite,
                    extra_meta={"train_data": [str(Path(p).resolve()) for p in paths]})

    # 1. pre-training
    pre_path = run.path / "pretrained.pt"
    torch.manual_seed(cfg.seed)
    model = SharedCoreDecoder(build_core(dcfg, n_core))
    for p in sources:
        model.add_participant(p.name, routing[p.name], p.good)
    if pre_path.exists():
        saved = torch.load(pre_path, weights_only=False)
        model.load_state_dict(saved["state_dict"])
        pre_record = saved["record"]
    else:
        n_train = sum(len(p.split.train_trials) for p in sources)
        steps = stage_steps(dcfg, n_train)
        print(f"pre-training a {dcfg.model} core on {len(sources)} participants ({n_train} training trials): "
              f"{steps} steps", flush=True)
        pre_record = train_stage(model, sources, dcfg, steps, cfg.seed, "pre-training", progress)
        _save_torch(pre_path, {"state_dict": model.state_dict(), "record": pre_record})
    print(f"pre-training: loss {pre_record['first_loss']:.3f} -> {pre_record['last_loss']:.3f}, best validation "
          f"loss {pre_record['best_val_loss']:.3f} at step {pre_record['best_step']}", flush=True)

    # 2. fine-tuning vs from scratch on growing subsets of the new participant's training trials
    order = np.random.default_rng(cfg.seed).permutation(np.asarray(target.split.train_trials))
    rows = []
    for fraction in FRACTIONS:
        n = max(2, int(round(fraction * len(order))))
        sub = with_training_trials(target, order[:n])
        steps = stage_steps(dcfg, n)
        for kind in ("finetuned", "scratch"):
            path = run.path / "curve" / f"{kind}_{n:04d}.json"
            if path.exists():
                rows.append(_load_json(path))
                continue
            torch.manual_seed(cfg.seed + 1)
            core = copy.deepcopy(model.core) if kind == "finetuned" else build_core(dcfg, n_core)
            m = SharedCoreDecoder(core)
            m.add_participant(sub.name, routing[target.name], target.good)
            record = train_stage(m, [sub], dcfg, steps, cfg.seed + 2, f"{kind} on {n} trials", progress)
            scores = score(m, sub, dcfg, cfg.seed)
            row = {"kind": kind, "fraction": fraction, "n_trials": n, "training": record,
                   "per_trial": {k: [None if not np.isfinite(x) else float(x) for x in v] for k, v in scores.items()}}
            write_json_atomic(path, row)
            rows.append(row)
            print(f"{kind:9s} {n:4d} trials ({fraction:.0%}): tilt-removed PCC {np.nanmean(scores['decoded_pcc_tilt']):.3f} "
                  f"(chance {np.nanmean(scores['chance_pcc_tilt']):.3f}, no-neural "
                  f"{np.nanmean(scores['no_neural_pcc_tilt']):.3f})", flush=True)

    # 3. summary, figure, report
    result = summarize(rows, seed=cfg.seed)
    result.update(pretraining=pre_record, train_data=paths, test_data=str(test_path), model=dcfg.model,
                  n_core_inputs=n_core, routed_electrodes=int(routing[target.name].sum()),
                  n_channels_new=target.n_channels)
    write_json_atomic(run.path / "cross.json", result)
    learning_curve_figure(run.path / "learning_curve.png", result)
    write_cross_report(run.path / "report.html", result)
    run.mark_done({"model": dcfg.model, "fractions": list(FRACTIONS),
                   "finetuned_minus_scratch_20pct": result["curve"][1]["finetuned_minus_scratch"]["pcc_tilt"]})
    return run.path


def summarize(rows: list[dict[str, Any]], seed: int = 0) -> dict[str, Any]:
    """Per fraction: mean +- SE of each model and baseline, and paired gains (fine-tuned - scratch, each model -
    no-neural) with bootstrap CIs over the new participant's test trials."""
    from neurovox.evaluate.metrics import paired_gain, sem

    by = {(r["fraction"], r["kind"]): r for r in rows}
    curve = []
    for fraction in sorted({r["fraction"] for r in rows}):
        ft, sc = by[(fraction, "finetuned")], by[(fraction, "scratch")]
        arr = {kind: {k: np.array([np.nan if x is None else x for x in v], float) for k, v in r["per_trial"].items()}
               for kind, r in (("finetuned", ft), ("scratch", sc))}
        entry: dict[str, Any] = {"fraction": fraction, "n_trials": ft["n_trials"], "finetuned_minus_scratch": {},
                                 "vs_no_neural": {}}
        for metric in ("pcc", "pcc_tilt"):
            for kind in ("finetuned", "scratch"):
                a = arr[kind]
                entry.setdefault(kind, {})[metric] = {
                    "mean": float(np.nanmean(a[f"decoded_{metric}"])), "se": sem(a[f"decoded_{metric}"]),
                    "chance": float(np.nanmean(a[f"chance_{metric}"]))}
                entry["vs_no_neural"].setdefault(kind, {})[metric] = paired_gain(
                    a[f"decoded_{metric}"], a[f"no_neural_{metric}"], generator=np.random.default_rng(seed))
            entry.setdefault("no_neural", {})[metric] = float(np.nanmean(arr["finetuned"][f"no_neural_{metric}"]))
            entry["finetuned_minus_scratch"][metric] = paired_gain(
                arr["finetuned"][f"decoded_{metric}"], arr["scratch"][f"decoded_{metric}"],
                generator=np.random.default_rng(seed))
        entry["n_test_trials"] = int(len(arr["finetuned"]["decoded_pcc"]))
        curve.append(entry)
    return {"curve": curve, "metric_note": "mel spectrogram of the new participant's test trials before vocoding; "
            "chance = the same model fed trial-shuffled windows; no-neural = onset-aligned mean of the same training "
            "trials' windows"}


def learning_curve_figure(path: Path, result: dict[str, Any]) -> Path:
    """Trials of the new participant used vs tilt-removed PCC: fine-tuned, scratch, no-neural and chance."""
    from neurovox.report.figures import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    n = [e["n_trials"] for e in result["curve"]]
    for kind, colour in (("finetuned", "C0"), ("scratch", "C1")):
        m = np.array([e[kind]["pcc_tilt"]["mean"] for e in result["curve"]])
        se = np.array([e[kind]["pcc_tilt"]["se"] for e in result["curve"]])
        ax.errorbar(n, m, yerr=se, marker="o", color=colour, capsize=3,
                    label="pre-trained core, fine-tuned" if kind == "finetuned" else "from scratch")
        ax.plot(n, [e[kind]["pcc_tilt"]["chance"] for e in result["curve"]], ls=":", color=colour, lw=1,
                label=f"chance ({'fine-tuned' if kind == 'finetuned' else 'scratch'})")
    ax.plot(n, [e["no_neural"]["pcc_tilt"] for e in result["curve"]], ls="--", color="grey", label="no-neural baseline")
    ax.set_xlabel("training trials of the new participant")
    ax.set_ylabel("tilt-removed PCC (test trials, mean +- SE)")
    ax.set_title("Cross-participant learning curve")
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


def write_cross_report(path: Path, result: dict[str, Any]) -> None:
    """report.html: the learning curve figure and its table."""
    import html

    from neurovox.report.html import html_page
    from neurovox.utils.files import atomic_path

    def g(d: dict[str, Any]) -> str:
        verdict = "yes" if d["above"] else ("worse" if d["ci_high"] < 0 else "CI includes 0")
        return f"{d['mean']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}] ({verdict})"

    rows = "".join(
        f"<tr><td>{e['n_trials']} ({e['fraction']:.0%})</td><td>{e['finetuned']['pcc_tilt']['mean']:.3f} &plusmn; "
        f"{e['finetuned']['pcc_tilt']['se']:.3f}</td><td>{e['scratch']['pcc_tilt']['mean']:.3f} &plusmn; "
        f"{e['scratch']['pcc_tilt']['se']:.3f}</td><td>{e['finetuned']['pcc_tilt']['chance']:.3f} / "
        f"{e['scratch']['pcc_tilt']['chance']:.3f}</td><td>{e['no_neural']['pcc_tilt']:.3f}</td>"
        f"<td>{g(e['finetuned_minus_scratch']['pcc_tilt'])}</td><td>{g(e['vs_no_neural']['finetuned']['pcc_tilt'])}</td>"
        f"<td>{g(e['vs_no_neural']['scratch']['pcc_tilt'])}</td></tr>" for e in result["curve"])
    body = (f"<h1>Cross-participant decoding</h1><p>Core: {html.escape(result['model'])} pre-trained on "
            f"{len(result['train_data'])} participants ({', '.join(html.escape(Path(p).name) for p in result['train_data'])}); "
            f"new participant {html.escape(Path(result['test_data']).name)} ({result['n_channels_new']} channels, "
            f"{result['routed_electrodes']} placed on the reference grid). {html.escape(result['metric_note'])}; "
            f"{result['curve'][0]['n_test_trials']} test trials, paired bootstrap 95% CIs.</p>"
            f"<img src=\"learning_curve.png\" alt=\"learning curve\">"
            "<table><tr><th>training trials</th><th>fine-tuned</th><th>scratch</th><th>chance (ft / sc)</th>"
            "<th>no-neural</th><th>fine-tuned &minus; scratch</th><th>fine-tuned &minus; no-neural</th>"
            f"<th>scratch &minus; no-neural</th></tr>{rows}</table><p>Tilt-removed PCC throughout.</p>")
    with atomic_path(path) as tmp:
        Path(tmp).write_text(html_page("neurovox cross-participant decoding", body))


def _save_torch(path: Path, payload: dict[str, Any]) -> None:
    from neurovox.utils.files import atomic_path

    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _load_json(path: Path) -> dict[str, Any]:
    import json

    return json.loads(path.read_text())
