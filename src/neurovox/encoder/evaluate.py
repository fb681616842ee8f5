"""Held-out evaluation of a speech autoencoder and the plots of a resynthesis.

Metrics (speech-autoencoder ceiling, DESIGN.md section 6), over the split's test trials, each a
window starting 32 frames before speech onset:
- ``pcc_mel_db``: Pearson r between reference and resynthesised mel-dB, per trial over the speech
  segment's frames (flattened), mean (and SEM) over trials;
- ``stoi``: pystoi STOI (extended=False) of the resynthesised window against the reference window;
- ``pitch_rel_error``: median over voiced speech frames of |f0_resynth / f0_praat - 1|, f0_praat the
  Praat pitch of the reference (`Prepared.f0_hz`) and f0_resynth Praat's pitch of the resynthesis.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from neurovox import dsp
from neurovox.synth import PARAM_NAMES, params_to_vector


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_resynthesis(path: Path, ref_mel_db: np.ndarray, res_mel_db: np.ndarray, params: np.ndarray,
                     title: str, praat_f0_hz: np.ndarray | None = None,
                     praat_formants_hz: np.ndarray | None = None) -> Path:
    """Reference and resynthesised mel-dB spectrograms plus f0 and F1-F3 tracks; params (n_frames, 18)."""
    from neurovox.utils.files import atomic_path

    plt = pyplot()
    n_frames = len(params)
    t_s = np.arange(n_frames) / dsp.FRAME_RATE_HZ
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.2))
    vmax = float(np.percentile(ref_mel_db, 99.5))
    for ax, (name, mel) in zip(axes[:2], (("reference", ref_mel_db), ("resynthesis", res_mel_db))):
        ax.imshow(mel.T, origin="lower", aspect="auto", vmin=vmax - 70, vmax=vmax, cmap="magma",
                  extent=(0, n_frames / dsp.FRAME_RATE_HZ, 0, mel.shape[1]))
        ax.set_title(name)
        ax.set_xlabel("time (s)")
        ax.set_ylabel("mel bin")
    ax = axes[2]
    ax.plot(t_s, params[:, PARAM_NAMES.index("f0_hz")] * 10, color="#d9480f", label="f0 x 10 (synth)")
    for k in range(3):
        ax.plot(t_s, params[:, PARAM_NAMES.index(f"f{k + 1}_hz")], color="#1c7ed6", lw=1,
                label="F1-F3 (synth)" if k == 0 else None)
    if praat_f0_hz is not None:
        ax.plot(t_s, np.where(praat_f0_hz > 0, praat_f0_hz * 10, np.nan), "k.", ms=2, label="Praat f0 x 10")
    if praat_formants_hz is not None:
        ax.plot(t_s, praat_formants_hz[:, :3], "k,", alpha=0.5)
    ax.set_ylim(0, 5000)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("Hz")
    ax.legend(fontsize=7, loc="upper right")
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r of two arrays (flattened); NaN when empty or constant."""
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    if a.size < 2:
        return float("nan")
    a, b = a - a.mean(), b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else float("nan")


def _sem(x: np.ndarray) -> float:
    x = np.asarray(x, np.float64)
    x = x[np.isfinite(x)]
    return float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else float("nan")


@torch.no_grad()
def resynthesize(model: Any, spec_power: np.ndarray, *, seed: int = 0, batch_size: int = 16) -> dict[str, np.ndarray]:
    """Encode spectrograms and render them back.

    spec_power : (n, n_frames, 256). Returns wave (n, n_frames * 128), spec_power, mel_db (n, n_frames, 80),
    params (n, n_frames, 18).
    """
    encoder, synth = model
    device = next(encoder.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    out: dict[str, list] = {"wave": [], "spec_power": [], "params": []}
    for i in range(0, len(spec_power), batch_size):
        x = torch.as_tensor(np.asarray(spec_power[i:i + batch_size]), dtype=torch.float32, device=device)
        res = synth(encoder(x), generator=gen)
        out["wave"].append(res.wave.cpu().numpy())
        out["spec_power"].append(res.spec_power.cpu().numpy())
        out["params"].append(params_to_vector(res.controls).cpu().numpy())
    arrays = {k: np.concatenate(v) for k, v in out.items()}
    arrays["mel_db"] = dsp.power_to_db(dsp.power_to_mel(arrays["spec_power"])).astype(np.float32)
    return arrays


def evaluate_speech_model(model: Any, prepared: Any, split: Any, examples_dir: Path | None = None, *,
                          n_examples: int = 4, seed: int = 0) -> dict[str, Any]:
    """Resynthesise the split's test trials and compute PCC / STOI / pitch error (module docstring)."""
    from pystoi import stoi

    from neurovox.io.audio import write_wav
    from neurovox.preprocess.speech import praat_features

    n = split.n_target_frames
    on = prepared.trials["onset_frame"].to_numpy(np.int64)
    off = prepared.trials["offset_frame"].to_numpy(np.int64)
    rows = np.asarray(split.test_trials, dtype=np.int64)
    starts = np.clip(on[rows] - split.pre_onset_frames, 0, prepared.n_frames - n)
    frames = starts[:, None] + np.arange(n)  # (n_trials, n)
    ref_spec = prepared.spec_power[frames]
    ref_mel = prepared.mel_db[frames]
    ref_audio = np.stack([prepared.audio[s * dsp.HOP_SAMPLES:(s + n) * dsp.HOP_SAMPLES] for s in starts])
    masks = (frames >= on[rows, None]) & (frames < off[rows, None])
    res = resynthesize(model, ref_spec, seed=seed)
    pcc = np.array([_pearson(r[m], d[m]) for r, d, m in zip(ref_mel, res["mel_db"], masks)])
    stoi_vals = np.array([stoi(r.astype(np.float64), d.astype(np.float64), dsp.SAMPLE_RATE_HZ, extended=False)
                          for r, d in zip(ref_audio, res["wave"])])
    sex = getattr(prepared.meta, "sex", "unknown")
    rel_err, f0_res_all, f0_ref_all = [], [], []
    for i in range(len(rows)):
        pr = praat_features(res["wave"][i], n, sex=sex)
        f0_ref = prepared.f0_hz[frames[i]]
        both = masks[i] & (f0_ref > 0) & pr["voiced"]
        rel_err.append(np.abs(pr["f0_hz"][both] / f0_ref[both] - 1))
        f0_res_all.append(pr["f0_hz"][both])
        f0_ref_all.append(f0_ref[both])
    rel = np.concatenate(rel_err) if rel_err else np.zeros(0)
    ref_voiced = np.concatenate([(prepared.f0_hz[frames[i]] > 0) & masks[i] for i in range(len(rows))])
    metrics = {
        "n_test_trials": int(len(rows)),
        "pcc_mel_db": float(np.nanmean(pcc)), "pcc_mel_db_sem": _sem(pcc),
        "pcc_mel_db_per_trial": [float(x) for x in pcc],
        "stoi": float(np.nanmean(stoi_vals)), "stoi_per_trial": [float(x) for x in stoi_vals],
        "pitch_rel_error_median": float(np.median(rel)) if len(rel) else float("nan"),
        "pitch_median_ratio": (float(np.median(np.concatenate(f0_res_all)) / np.median(np.concatenate(f0_ref_all)))
                               if len(rel) else float("nan")),
        "pitch_voiced_frames_kept": float(len(rel) / max(1, ref_voiced.sum())),
        "pcc_definition": "Pearson r per test trial over the speech segment, mel dB (80 bins), mean over trials",
    }
    if examples_dir is not None and n_examples > 0:
        examples_dir = Path(examples_dir)
        examples_dir.mkdir(parents=True, exist_ok=True)
        for i in range(min(n_examples, len(rows))):
            stem = f"trial{int(rows[i]):03d}_{prepared.trials['label'].iloc[rows[i]]}"
            write_wav(examples_dir / f"{stem}_ref.wav", ref_audio[i], dsp.SAMPLE_RATE_HZ)
            write_wav(examples_dir / f"{stem}_resynth.wav", res["wave"][i], dsp.SAMPLE_RATE_HZ)
            plot_resynthesis(examples_dir / f"{stem}.png", ref_mel[i], res["mel_db"][i], res["params"][i],
                             f"trial {int(rows[i])} ({prepared.trials['label'].iloc[rows[i]]}): PCC {pcc[i]:.2f}, "
                             f"STOI {stoi_vals[i]:.2f}", prepared.f0_hz[frames[i]], prepared.formants_hz[frames[i]])
    return metrics
