"""`neurovox resynth`: analyse any recording into the 18 formant parameters with a trained speech model
and render it back.

    neurovox resynth --run runs/speech --in speech.wav --out out.wav

Writes OUT (16 kHz mono WAV), OUT-stem.params.csv and .params.npz (the 18 parameter trajectories,
one row per 8 ms frame) and OUT-stem.png (spectrograms + f0/formant tracks). Other sampling rates
are resampled and stereo is mixed down, with a notice.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from neurovox.cli import command_parser

    p = command_parser(subparsers, "resynth",
                       "analyse a WAV into the 18 formant parameters and render it back", __doc__, run)
    p.add_argument("--run", required=True, metavar="RUN", help="a finished `neurovox train speech` run directory")
    p.add_argument("--in", dest="inp", required=True, metavar="WAV", help="input audio (any rate, mono or stereo)")
    p.add_argument("--out", required=True, metavar="WAV", help="output WAV (16 kHz mono)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthesizer's noise (default 0)")
    return p


def resynthesize_file(run_dir: str | Path, in_path: str | Path, out_path: str | Path, *, seed: int = 0,
                      verbose: bool = True) -> dict[str, Path]:
    """Resynthesise `in_path` through the speech model of `run_dir`; returns the written paths."""
    import torch

    from neurovox import dsp
    from neurovox.encoder.evaluate import plot_resynthesis, resynthesize
    from neurovox.encoder.train import load_speech_model
    from neurovox.errors import DataError
    from neurovox.io.audio import load_wav, write_wav
    from neurovox.synth import PARAM_NAMES
    from neurovox.utils.files import atomic_path, write_text_atomic

    model = load_speech_model(run_dir)
    audio, notices = load_wav(in_path, target_sfreq_hz=dsp.SAMPLE_RATE_HZ)
    for note in notices:
        print(f"neurovox resynth: notice: {note}")
    n_frames = len(audio) // dsp.HOP_SAMPLES
    if n_frames < 4:
        raise DataError(f"{str(in_path)!r} holds {len(audio)} samples at 16 kHz; resynthesis needs at least "
                        f"{4 * dsp.HOP_SAMPLES} (32 ms).")
    audio = audio[: n_frames * dsp.HOP_SAMPLES].astype(np.float32)
    spec = dsp.stft_power_np(audio)
    with torch.no_grad():
        res = resynthesize(model, spec[None], seed=seed)
    out_path = Path(out_path)
    stem = out_path.with_suffix("")
    paths = {"wav": write_wav(out_path, res["wave"][0], dsp.SAMPLE_RATE_HZ)}
    params = res["params"][0]  # (n_frames, 18)
    times_s = np.arange(n_frames) / dsp.FRAME_RATE_HZ
    header = "time_s," + ",".join(PARAM_NAMES)
    rows = [f"{t:.3f}," + ",".join(f"{v:.6g}" for v in row) for t, row in zip(times_s, params)]
    paths["csv"] = write_text_atomic(Path(f"{stem}.params.csv"), header + "\n" + "\n".join(rows) + "\n")
    paths["npz"] = Path(f"{stem}.params.npz")
    with atomic_path(paths["npz"]) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, params=params, names=np.array(PARAM_NAMES), times_s=times_s,
                     frame_rate_hz=dsp.FRAME_RATE_HZ)
    ref_mel = dsp.power_to_db(dsp.power_to_mel(spec))
    paths["png"] = plot_resynthesis(Path(f"{stem}.png"), ref_mel, res["mel_db"][0], params,
                                    f"{Path(in_path).name} -> {out_path.name}")
    if verbose:
        for kind, p in paths.items():
            print(f"  {kind:4s} {p}")
    return paths


def run(args: argparse.Namespace) -> int:
    resynthesize_file(args.run, args.inp, args.out, seed=args.seed)
    return 0
