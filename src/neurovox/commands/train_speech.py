"""`neurovox train speech`: stage-1 speech autoencoder (speech encoder -> 18-parameter formant synthesizer)
trained on a participant's own audio, with held-out resynthesis metrics.

    neurovox train speech --data sim/sim01_high_gamma.h5 --out runs/speech
    neurovox train speech --data sim/sim01_high_gamma.h5 --out runs/speech_quick --quick
    neurovox train speech --data rec.h5 --out runs/speech --set speech.max_steps=6000 --set synth.peak_shape=learned

Rerunning the same command on an unfinished run resumes from its last checkpoint.
"""

from __future__ import annotations

import argparse

from neurovox.cli import add_config_args, add_run_args, command_parser, config_from_args


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = command_parser(subparsers, "speech",
                       "train the speech autoencoder (encoder + formant synthesizer)", __doc__, run)
    p.add_argument("--data", required=True, metavar="FILE",
                   help="recording with microphone audio (Flinker .h5, SWPD .nwb / BIDS, ...)")
    add_config_args(p)
    add_run_args(p)
    return p


def train_speech(data_path: str, out: str, cfg, *, overwrite: bool = False, progress: bool = True) -> dict:
    """Read the recording, open (or resume) the run directory, train, evaluate, mark done."""
    from neurovox.encoder.train import train_speech_run

    return train_speech_run(data_path, out, cfg, overwrite=overwrite, progress=progress)


def run(args: argparse.Namespace) -> int:
    import lightning

    from neurovox.encoder.train import QUICK_OVERRIDES, SpeechRunConfig

    cfg = config_from_args(SpeechRunConfig, args, quick=QUICK_OVERRIDES)
    lightning.seed_everything(cfg.seed, workers=True)  # model initialisation and data order; only the CLI seeds
    m = train_speech(args.data, args.out, cfg, overwrite=args.overwrite)
    print(f"speech run written to {args.out}: held-out resynthesis PCC (mel dB, per trial) {m['pcc_mel_db']:.3f}, "
          f"STOI {m['stoi']:.3f}, pitch error (median) {100 * m['pitch_rel_error_median']:.1f} % "
          f"({m['n_test_trials']} trials, {m['train_time_s']:.0f} s training)")
    return 0
