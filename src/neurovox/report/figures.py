"""PNG figures for the HTML report (matplotlib, Agg backend, no display needed)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from neurovox import dsp

# Order of the 18 interpretable parameters (neurovox.synth.params_to_vector): f0, loudness, voicing,
# six formant frequencies, six formant amplitudes, unvoiced centre, bandwidth, amplitude.

def pyplot():
    """matplotlib.pyplot on the file-only Agg backend, with the house style (every neurovox figure)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.spines.top": False, "axes.spines.right": False,
                         "figure.dpi": 100, "savefig.bbox": None})
    return plt


def mel_axis_hz(n_mels: int) -> np.ndarray:
    """Centre frequency of each Slaney mel bin (0 - 8 kHz), shape (n_mels,)."""
    import librosa

    return librosa.mel_frequencies(n_mels=n_mels + 2, fmin=0.0, fmax=dsp.SAMPLE_RATE_HZ / 2, htk=False)[1:-1]


def spectrogram_comparison(path: Path, panels: list[tuple[str, np.ndarray]], speech_mask: np.ndarray | None,
                           title: str, vmin: float | None = None, vmax: float | None = None) -> Path:
    """Side-by-side mel spectrograms (each (n_frames, n_mels) in dB) on one colour scale."""
    plt = pyplot()
    n_frames, n_mels = panels[0][1].shape
    if vmax is None:
        vmax = float(np.percentile(panels[0][1], 99.5))
    if vmin is None:
        vmin = vmax - 80.0
    freqs = mel_axis_hz(n_mels)
    t_s = n_frames / dsp.FRAME_RATE_HZ
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels) + 1.2, 2.7), sharey=True)
    fig.subplots_adjust(left=0.09, right=0.9, bottom=0.17, top=0.8, wspace=0.08)
    axes = np.atleast_1d(axes)
    im = None
    for ax, (name, mel) in zip(axes, panels):
        im = ax.imshow(mel.T, origin="lower", aspect="auto", cmap="magma", vmin=vmin, vmax=vmax,
                       extent=(0, t_s, 0, n_mels), interpolation="nearest")
        ax.set_title(name)
        ax.set_xlabel("time (s)")
        if speech_mask is not None and speech_mask.any():
            idx = np.flatnonzero(speech_mask)
            for f in (idx[0], idx[-1] + 1):
                ax.axvline(f / dsp.FRAME_RATE_HZ, color="#7fdbff", lw=0.8, ls="--")
    ticks_hz = [t for t in (250, 500, 1000, 2000, 4000, 8000) if t <= freqs[-1] * 1.01]
    axes[0].set_yticks([float(np.interp(t, freqs, np.arange(n_mels))) for t in ticks_hz])
    axes[0].set_yticklabels([f"{t / 1000:g}k" if t >= 1000 else str(t) for t in ticks_hz])
    axes[0].set_ylabel("frequency (Hz, mel scale)")
    cbar = fig.colorbar(im, cax=fig.add_axes((0.915, 0.17, 0.012, 0.63)))
    cbar.set_label("power (dB)")
    fig.suptitle(title, x=0.02, ha="left", fontsize=10)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def read_training_scalars(logs_dir: str | Path | None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Scalars from TensorBoard event files under `logs_dir` (or a metrics.csv): tag -> (steps, values)."""
    if logs_dir is None:
        return {}
    logs_dir = Path(logs_dir)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    csvs = sorted(logs_dir.rglob("metrics.csv")) if logs_dir.is_dir() else []
    events = sorted(logs_dir.rglob("events.out.tfevents.*")) if logs_dir.is_dir() else []
    for event_file in events:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        acc = EventAccumulator(str(event_file), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags().get("scalars", []):
            ev = acc.Scalars(tag)
            steps = np.array([e.step for e in ev])
            vals = np.array([e.value for e in ev])
            if tag in out:
                steps = np.concatenate([out[tag][0], steps])
                vals = np.concatenate([out[tag][1], vals])
            order = np.argsort(steps, kind="stable")
            out[tag] = (steps[order], vals[order])
    for csv_file in csvs:
        with open(csv_file, newline="") as fh:
            rows = list(csv.DictReader(fh))
        cols = [c for c in (rows[0].keys() if rows else []) if c not in ("step", "epoch")]
        for col in cols:
            pts = [(float(r.get("step") or i), float(r[col])) for i, r in enumerate(rows) if r.get(col) not in (None, "")]
            if pts:
                arr = np.array(pts)
                out.setdefault(col, (arr[:, 0], arr[:, 1]))
    return out


def training_curves(path: Path, scalars: dict[str, tuple[np.ndarray, np.ndarray]], max_panels: int = 6) -> Path | None:
    """One panel per quantity (train and val of the same name share a panel); None if no scalars."""
    if not scalars:
        return None
    plt = pyplot()
    groups: dict[str, list[str]] = {}
    for tag in sorted(scalars):
        key = tag.split("/", 1)[-1] if "/" in tag else tag
        for prefix in ("train_", "val_", "valid_"):
            if key.startswith(prefix):
                key = key[len(prefix):]
        groups.setdefault(key, []).append(tag)
    keys = sorted(groups, key=lambda k: (("loss" not in k), k))[:max_panels]
    n_cols = min(3, len(keys))
    n_rows = int(np.ceil(len(keys) / n_cols))
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(3.6 * n_cols, 2.5 * n_rows), squeeze=False)
    for ax, key in zip(axes.ravel(), keys):
        for tag in groups[key]:
            steps, vals = scalars[tag]
            ax.plot(steps, vals, lw=1.2, label=tag, marker="." if len(steps) < 30 else None)
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.legend(fontsize=7, frameon=False)
    for ax in axes.ravel()[len(keys):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def parameter_trajectories(path: Path, params: np.ndarray, f0_hz: np.ndarray | None,
                           formants_hz: np.ndarray | None, speech_mask: np.ndarray | None, title: str) -> Path:
    """Decoded vs reference f0 and F1-F3 of one trial; params shape (n_frames, 18)."""
    plt = pyplot()
    from neurovox.synth import PARAM_NAMES as names  # torch-backed: imported only where plotted
    t = np.arange(len(params)) / dsp.FRAME_RATE_HZ
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.0))
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.36, top=0.82, wspace=0.18)
    ax = axes[0]
    ax.plot(t, params[:, names.index("f0_hz")], color="#d9480f", lw=1.4, label="decoded")
    if f0_hz is not None:
        ref = np.where(np.asarray(f0_hz) > 0, f0_hz, np.nan)
        ax.plot(t, ref, color="#1c7ed6", lw=1.4, label="reference (Praat)")
    ax.set_title("f0")
    ax.set_ylabel("Hz")
    ax.set_xlabel("time (s)")
    ax.legend(fontsize=7, frameon=False)
    ax = axes[1]
    colors = ("#1c7ed6", "#2f9e44", "#ae3ec9")
    for k, c in zip(range(3), colors):
        ax.plot(t, params[:, names.index(f"f{k + 1}_hz")], color=c, lw=1.4, label=f"F{k + 1} decoded")
        if formants_hz is not None:
            ax.plot(t, np.asarray(formants_hz)[:, k], color=c, lw=1.0, ls="--", label=f"F{k + 1} reference")
    ax.set_title("formants F1-F3")
    ax.set_xlabel("time (s)")
    ax.legend(fontsize=6, framealpha=0.8, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.3))
    for a in axes:
        if speech_mask is not None and speech_mask.any():
            idx = np.flatnonzero(speech_mask)
            a.axvspan(idx[0] / dsp.FRAME_RATE_HZ, (idx[-1] + 1) / dsp.FRAME_RATE_HZ, color="#f1f3f5", zorder=0)
    fig.suptitle(title, x=0.02, ha="left", fontsize=10)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def comparison_bars(path: Path, entries: list[dict[str, Any]], metric: str, label: str) -> Path | None:
    """Bar chart of one metric per entry (mean +- SEM) with chance (grey), the no-neural baseline (orange,
    dashed) and the ceiling (green, dotted, only where the entry has one) as ticks."""
    rows = [e for e in entries if (e.get("metrics") or {}).get(metric, {}).get("mean") is not None]
    if not rows:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(3.5, 1.1 * len(rows) + 1.5), 2.8))
    x = np.arange(len(rows))
    means = [r["metrics"][metric]["mean"] for r in rows]
    sems = [r["metrics"][metric].get("sem") or 0.0 for r in rows]
    ax.bar(x, means, yerr=sems, color="#4263eb", alpha=0.85, capsize=3, width=0.6, label="decoded")
    labelled: set[str] = set()

    def tick(i: int, value: Any, label: str, **style: Any) -> None:  # legend entry on the first tick of each kind
        if value is not None:
            ax.hlines(value, i - 0.35, i + 0.35, lw=2, label=None if label in labelled else label, **style)
            labelled.add(label)

    for i, r in enumerate(rows):
        tick(i, ((r.get("chance") or {}).get("shuffled") or {}).get(metric, {}).get("mean"), "chance (shuffled)",
             color="#495057")
        tick(i, ((r.get("baselines") or {}).get("onset_mean") or {}).get(metric, {}).get("mean"), "no-neural baseline",
             color="#e8590c", ls="--")
        tick(i, (r.get("ceiling") or {}).get(metric, {}).get("mean"), "ceiling", color="#2f9e44", ls=":")
    ax.set_xticks(x)
    ax.set_xticklabels([r["name"] for r in rows], rotation=20, ha="right")
    ax.set_ylabel(label)
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def confusion_matrix(path: Path, counts: np.ndarray, words: list[str], title: str) -> Path:
    """Spoken word (rows) against the recogniser's word (columns, last = nothing recognised) as row fractions;
    counts (n_words, n_words + 1). Only the words that occur as test trials get rows."""
    plt = pyplot()
    spoken = np.flatnonzero(counts.sum(1) > 0)
    heard = np.flatnonzero(counts[spoken].sum(0) > 0)
    sub = counts[np.ix_(spoken, heard)].astype(float)
    frac = sub / np.maximum(counts[spoken].sum(1, keepdims=True), 1)
    col_names = [words[j] if j < len(words) else "(nothing)" for j in heard]
    size = 0.22
    fig, ax = plt.subplots(figsize=(max(4.0, 1.8 + size * len(heard)), max(3.0, 1.4 + size * len(spoken))))
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    for r, c in zip(*np.nonzero(sub)):
        ax.text(c, r, int(sub[r, c]), ha="center", va="center", fontsize=6,
                color="white" if frac[r, c] > 0.5 else "#212529")
    # the diagonal: cells where the recognised word is the spoken one
    for r, i in enumerate(spoken):
        if i in heard:
            c = int(np.flatnonzero(heard == i)[0])
            ax.add_patch(plt.Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, ec="#2f9e44", lw=0.8))
    ax.set_xticks(range(len(heard)))
    ax.set_xticklabels(col_names, rotation=90, fontsize=6)
    ax.set_yticks(range(len(spoken)))
    ax.set_yticklabels([words[i] for i in spoken], fontsize=6)
    ax.set_xlabel("recognised word")
    ax.set_ylabel("spoken word")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02, label="fraction of the word's trials")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
