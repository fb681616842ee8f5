"""`neurovox cv`: cross-validate decoders fold by fold (resumable) and write one comparison report.

    neurovox cv --data FILE --speech RUN --models lstm,resnet,linear --split kfold --folds 5 --out DIR

Each (model, fold) is an independent job in OUT/<model>/fold<k>/ (train, evaluate, DONE); finished folds
are not recomputed on rerun. Writes OUT/cv_summary.json (mean and SEM across folds, with chance, the
no-neural baselines and the ceiling) and OUT/report.html.
"""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    from neurovox.cli import add_config_args, command_parser

    p = command_parser(subparsers, "cv", "cross-validate decoders fold by fold (resumable), one comparison report",
                       __doc__, run)
    p.add_argument("--data", required=True, metavar="FILE", help="recording to cross-validate on")
    p.add_argument("--speech", metavar="RUN", default=None,
                   help="trained speech run (formant decoders need it); refused when it trained on any fold's test trials")
    p.add_argument("--train-speech", action="store_true",
                   help="train one speech model per fold on that fold's training trials (OUT/speech/fold<k>/)")
    p.add_argument("--speech-set", action="append", default=[], metavar="KEY=VALUE",
                   help="a setting of the per-fold speech models, e.g. speech.max_steps=700 (repeatable)")
    p.add_argument("--models", default="lstm,resnet,linear", help="comma-separated decoders (default lstm,resnet,linear)")
    p.add_argument("--causal", action="store_true", help="train strictly causal decoders")
    p.add_argument("--split", default="kfold", help="kfold | flinker | lowo | swpd (default kfold)")
    p.add_argument("--folds", type=int, default=None,
                   help="number of folds for kfold / swpd (default: split.n_folds of the split config, 10)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (rerun the same command to resume)")
    p.add_argument("--cache-dir", default=None, metavar="DIR", help="feature cache (default: neurovox's cache)")
    p.add_argument("--quick", action="store_true", help="small, fast training settings for a first look")
    add_config_args(p)
    return p


def run(args: argparse.Namespace) -> int:
    from neurovox.cv import run_cv
    from neurovox.preprocess.splits import SplitConfig

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    summary = run_cv(args.data, models, args.out, speech_run=args.speech, causal=args.causal, split=args.split,
                     n_folds=args.folds if args.folds is not None else SplitConfig.n_folds, seed=args.seed if args.seed is not None else 0, quick=args.quick,
                     overrides=list(args.overrides or []), config_path=args.config,
                     cache_dir=args.cache_dir, train_speech=args.train_speech,
                     speech_overrides=list(args.speech_set))
    for model, res in summary["models"].items():
        pcc = (res["metrics"] or {}).get("pcc", {})
        ch = ((res["chance"] or {}).get("shuffled") or {}).get("pcc", {})
        if pcc.get("mean") is not None:
            sem = f" +- {pcc['sem']:.3f}" if pcc.get("sem") is not None else ""
            chance = f" (chance {ch['mean']:.3f})" if ch.get("mean") is not None else ""
            print(f"{model:<12} PCC {pcc['mean']:.3f}{sem}{chance}")
    print(f"report: {args.out}/report.html")
    return 0
