"""`neurovox train speech`: stage-1 speech autoencoder (speech encoder -> 18-parameter formant synthesizer)
trained on a participant's own audio, with held-out resynthesis metrics.

    neurovox train speech --data sim/sim01_high_gamma.h5 --out runs/speech
    neurovox train speech --data sim/sim01_high_gamma.h5 --out runs/speech_quick --quick
    neurovox train speech --data rec.h5 --out runs/speech --set speech.max_steps=6000 --set synth.peak_shape=learned

Rerunning the same command on an unfinished run resumes from its last checkpoint.
"""

from __future__ import annotations

import argparse

from neurovox.cli import add_config_args, add_run_args


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("speech", help="train the speech autoencoder (encoder + formant synthesizer)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, metavar="FILE",
                   help="recording with microphone audio (Flinker .h5, SWPD .nwb / BIDS, ...)")
    add_config_args(p)
    add_run_args(p)
    p.set_defaults(func=run)
    return p


def build_config(args: argparse.Namespace):
    """Defaults <- --quick <- --config <- --seed <- --set (the result is saved as config.yaml)."""
    from neurovox.config import load_config
    from neurovox.encoder.train import QUICK_OVERRIDES, SpeechRunConfig

    flags = [f"seed={args.seed}"] if args.seed is not None else []
    return load_config(SpeechRunConfig, args.config, flags + list(args.overrides or []),
                       base=QUICK_OVERRIDES if args.quick else None)


def train_speech(data_path: str, out: str, cfg, *, overwrite: bool = False, progress: bool = True) -> dict:
    """Read the recording, open (or resume) the run directory, train, evaluate, mark done."""
    from neurovox.encoder.train import train_speech_model
    from neurovox.io import read_recording
    from neurovox.runs import start_run

    rec = read_recording(data_path)
    run = start_run(out, kind="speech", config=cfg, seed=cfg.seed, data_path=data_path, overwrite=overwrite)
    metrics = train_speech_model(rec, cfg, run, progress=progress)
    run.mark_done({"pcc_mel_db": metrics["pcc_mel_db"], "stoi": metrics["stoi"]})
    return metrics


def run(args: argparse.Namespace) -> int:
    import lightning

    cfg = build_config(args)
    lightning.seed_everything(cfg.seed, workers=True)  # model initialisation and data order; only the CLI seeds
    m = train_speech(args.data, args.out, cfg, overwrite=args.overwrite)
    print(f"speech run written to {args.out}: held-out resynthesis PCC (mel dB, per trial) {m['pcc_mel_db']:.3f}, "
          f"STOI {m['stoi']:.3f}, pitch error (median) {100 * m['pitch_rel_error_median']:.1f} % "
          f"({m['n_test_trials']} trials, {m['train_time_s']:.0f} s training)")
    return 0
