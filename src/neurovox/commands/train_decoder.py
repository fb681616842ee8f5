"""`neurovox train decoder`: a neural decoder (linear | resnet | swin | lstm | gru). The deep decoders
output the mel spectrogram (`--target mel`, the default) or the 18 formant parameters through the frozen
speech model of a `neurovox train speech` run (`--target formant --speech RUN`).

    neurovox train decoder --data sim/sim01.h5 --causal --out runs/lstm_c
    neurovox train decoder --data sim/sim01.h5 --model resnet --target formant --speech runs/speech --out runs/resnet_f
    neurovox train decoder --data sim/sim01.h5 --model linear --out runs/linear --quick
    neurovox train decoder --data a.h5 --data b.h5 --test-data c.h5 --model lstm --out runs/cross
"""

from __future__ import annotations

import argparse
from pathlib import Path

from neurovox.errors import ConfigError
from neurovox.cli import add_config_args, add_run_args, command_parser

MODELS = ("linear", "resnet", "swin", "lstm", "gru")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = command_parser(subparsers, "decoder",
                       "train a neural decoder (linear baseline, ResNet3D, Swin3D, LSTM/GRU)", __doc__, run)
    p.add_argument("--data", required=True, metavar="FILE", action="append",
                   help="recording (Flinker .h5, SWPD .nwb / BIDS, ...); several with --test-data: cross-participant "
                        "decoding (a core shared by these participants, fine-tuned on the new one)")
    p.add_argument("--test-data", metavar="FILE", default=None,
                   help="cross-participant decoding: the new participant; its learning curve (fine-tuned core vs "
                        "from scratch on 10/20/50/100 %% of its training trials) goes to OUT/report.html")
    p.add_argument("--speech", metavar="RUN", default=None,
                   help="speech run (frozen encoder + synthesizer) for --target formant; without it the formant "
                        "decoders train through the default synthesizer with the spectral loss only")
    p.add_argument("--model", choices=MODELS, default=None, help="decoder architecture (default: the config's, lstm)")
    p.add_argument("--target", choices=("mel", "formant"), default=None,
                   help="deep decoders' output: mel spectrogram (default; Griffin-Lim vocoder) or the 18 formant "
                        "parameters rendered by the speech model's synthesizer")
    p.add_argument("--causal", action="store_true", default=None,
                   help="strictly causal decoder (output frame t uses only neural frames <= t); raw voltage is then "
                        "prepared causally (prepare.causal=true)")
    p.add_argument("--anticausal", action="store_true", default=None,
                   help="strictly anticausal decoder (output frame t uses only neural frames >= t; the reference "
                        "paper's third model family, for comparison: it cannot run in real time)")
    p.add_argument("--cache-dir", default=None, metavar="DIR", help="feature cache (default: neurovox's cache)")
    add_config_args(p)
    add_run_args(p)
    return p


def build_config(args: argparse.Namespace):
    """Defaults <- --quick <- --config <- --model/--causal/--seed <- --set (saved as config.yaml)."""
    from neurovox.cli import config_from_args
    from neurovox.config import parse_overrides
    from neurovox.decoders.train import DecoderRunConfig, quick_settings

    overrides = list(args.overrides or [])
    model = args.model
    if model is None:
        model = parse_overrides(overrides).get("decoder", {}).get("model", "lstm")
    quick = quick_settings(model)
    flags = []
    if args.model is not None:
        flags.append(f"decoder.model={args.model}")
    if args.causal:
        flags.append("decoder.causal=true")
    if args.anticausal:
        flags.append("decoder.anticausal=true")
    if args.target is not None:
        flags.append(f"decoder.target={args.target}")
    cfg = config_from_args(DecoderRunConfig, args, flags, quick=quick)
    if cfg.decoder.causal and not cfg.prepare.causal and "causal" not in parse_overrides(overrides).get("prepare", {}) \
            and not _config_sets_prepare_causal(args.config):
        # a causal decoder prepares raw voltage causally; layered as a flag so config.yaml records what ran
        cfg = config_from_args(DecoderRunConfig, args, flags + ["prepare.causal=true"], quick=quick)
    return cfg


def _config_sets_prepare_causal(path: str | None) -> bool:
    """Whether the --config YAML names prepare.causal (then it is the user's choice, checked by training)."""
    if not path:
        return False
    import yaml

    with open(path) as fh:
        data = yaml.safe_load(fh) or {}
    return "causal" in (data.get("prepare") or {})


def run(args: argparse.Namespace) -> int:
    from neurovox.decoders.train import train_decoder

    import torch

    cfg = build_config(args)
    torch.manual_seed(cfg.seed)  # model initialisation and data order; only the CLI seeds
    if args.test_data is not None:
        from neurovox.cross import cross_participant

        if args.speech:
            raise ConfigError("--speech is not used by cross-participant decoding (mel head); drop it.")
        path = cross_participant(args.data, args.test_data, args.out, cfg, overwrite=args.overwrite,
                                 cache_dir=args.cache_dir)
        print(f"cross-participant run written to {path} (report: {Path(path) / 'report.html'})")
        return 0
    if len(args.data) > 1:
        raise ConfigError(f"{len(args.data)} --data files given without --test-data: one recording trains one decoder; "
                          "several are for cross-participant decoding, with the new participant as --test-data.")
    path = train_decoder(args.data[0], args.out, cfg, speech_run=args.speech, overwrite=args.overwrite,
                         cache_dir=args.cache_dir)
    print(f"decoder run written to {path}")
    return 0
