"""What the prior alone generates: unconditional samples next to real held-out windows.

After training, `write_prior_samples` draws a few DDIM samples (x0 estimates clipped to the unit range) from the EMA prior and puts them beside
real validation windows in RUN/report.html (figure RUN/figures/samples.png), with two numbers that a
speech-like sample must get right and noise does not:

- ``profile_pcc``: Pearson r between the per-mel-bin mean dB of the samples and of the real windows
  (speech has a falling spectral tilt with formant bumps; the model's starting noise has none);
- ``energy_std_db``: standard deviation over frames of the frame energy (dB): speech alternates
  between words and pauses, so this is large for real windows and small for noise.

Both are given for the samples, for the real windows and for Gaussian noise on the same scale (what
an untrained prior's samples look like), saved in RUN/samples.json.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import torch

from neurovox.diffusion.features import unit_to_mel_db
from neurovox.diffusion.schedule import NoiseSchedule
from neurovox.utils.files import write_json_atomic, write_text_atomic

N_SAMPLES = 4      # windows shown per row
N_STEPS = 50       # DDIM steps of the shown samples


def speech_statistics(mel_db: np.ndarray, reference_profile: np.ndarray) -> dict[str, float]:
    """mel_db (n_windows, n_frames, n_mels) -> profile_pcc against `reference_profile` (n_mels,), energy_std_db."""
    profile = mel_db.mean(axis=(0, 1))
    energy_db = 10 * np.log10(np.mean(10 ** (mel_db / 10), axis=-1) + 1e-12)  # (n_windows, n_frames)
    pcc = float(np.corrcoef(profile, reference_profile)[0, 1]) if profile.std() > 0 else 0.0
    return {"profile_pcc": pcc, "energy_std_db": float(energy_db.std(axis=1).mean())}


def write_prior_samples(run_dir: Path, denoiser: torch.nn.Module, schedule: NoiseSchedule, real_unit: torch.Tensor,
                        seed: int = 0) -> dict[str, dict[str, float]]:
    """Sample the prior, compare with `real_unit` (n, 1, n_mels, n_frames) unit-scale windows; write
    RUN/report.html, RUN/figures/samples.png and RUN/samples.json. Returns the statistics."""
    from neurovox.diffusion.ddim import make_sampler, sample_prior
    from neurovox.report.figures import pyplot, mel_axis_hz
    from neurovox.report.html import html_page

    device = next(denoiser.parameters()).device
    denoiser.eval()
    gen = torch.Generator(device=device).manual_seed(seed)
    real = real_unit[:N_SAMPLES].to(device)
    # Clean estimates clipped to the data's unit range at each step (as diffusers' clip_sample): without it
    # the epsilon errors at high noise compound and a CPU-sized prior's DDIM samples run off to +-300.
    fake = sample_prior(denoiser, make_sampler(schedule, "ddim", clip_x0=1.0), tuple(real.shape), n_steps=N_STEPS,
                        generator=gen, device=device)
    noise = torch.randn(real.shape, generator=gen, device=device)
    to_db = lambda x: unit_to_mel_db(x.clamp(-1.5, 1.5)).squeeze(1).transpose(1, 2).cpu().numpy()  # noqa: E731
    real_db, fake_db, noise_db = to_db(real), to_db(fake), to_db(noise)  # (n, n_frames, n_mels)
    reference = real_db.mean(axis=(0, 1))
    stats = {"prior_samples": speech_statistics(fake_db, reference), "real_windows": speech_statistics(real_db, reference),
             "gaussian_noise": speech_statistics(noise_db, reference), "ddim_steps": N_STEPS}

    plt = pyplot()
    fig_dir = run_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    n = real_db.shape[0]
    fig, axes = plt.subplots(2, n, figsize=(2.6 * n + 0.6, 4.6), sharex=True, sharey=True, squeeze=False)
    t_s = real_db.shape[1] / 125.0
    freqs = mel_axis_hz(real_db.shape[2])
    for row, (name, mels) in enumerate((("real (held out)", real_db), ("prior sample", fake_db))):
        for j in range(n):
            ax = axes[row, j]
            ax.imshow(mels[j].T, origin="lower", aspect="auto", cmap="magma", vmin=-80, vmax=20,
                      extent=(0, t_s, 0, mels.shape[2]), interpolation="nearest")
            ax.set_title(f"{name} {j + 1}", fontsize=9)
    for ax in axes[1]:
        ax.set_xlabel("time (s)")
    ticks = [t for t in (250, 1000, 4000) if t <= freqs[-1]]
    for ax in axes[:, 0]:
        ax.set_yticks([float(np.interp(t, freqs, np.arange(len(freqs)))) for t in ticks])
        ax.set_yticklabels([f"{t / 1000:g}k" if t >= 1000 else str(t) for t in ticks])
        ax.set_ylabel("Hz (mel)")
    fig.tight_layout()
    fig.savefig(fig_dir / "samples.png", dpi=80)
    plt.close(fig)

    write_json_atomic(run_dir / "samples.json", stats)
    rows = "".join(f"<tr><td>{html.escape(k.replace('_', ' '))}</td><td>{v['profile_pcc']:.3f}</td>"
                   f"<td>{v['energy_std_db']:.1f}</td></tr>" for k, v in stats.items() if isinstance(v, dict))
    body = (f"<h1>Diffusion prior: what it generates alone</h1><p>Top row: real held-out windows; bottom row: "
            f"unconditional samples of the prior (DDIM, {N_STEPS} steps, clean estimate clipped to the data range, EMA weights), same colour scale (dB).</p>"
            f"<figure><img src=\"figures/samples.png\" alt=\"real and generated mel spectrograms\"></figure>"
            f"<table><thead><tr><th></th><th>spectral-profile r vs real</th><th>frame-energy std (dB)</th></tr></thead>"
            f"<tbody>{rows}</tbody></table><p>Speech-like samples have a profile r near the real windows' 1.0 and an "
            f"energy spread near the real windows'; Gaussian noise on the same scale is what an untrained prior gives.</p>")
    write_text_atomic(run_dir / "report.html", html_page("neurovox: diffusion prior samples", body))
    return stats
