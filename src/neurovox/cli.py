"""`neurovox` command line. Subcommands follow the data flow:

    simulate -> info -> preprocess -> train {speech, decoder, prior, likelihood}
             -> resynth | decode -> evaluate -> cv ; demo runs the whole chain.

Each subcommand lives in `neurovox/commands/<name>.py` as a thin wrapper over an importable
function: `add_parser(subparsers)` declares its arguments and sets `func`, which returns an exit
code. User errors (any `NeurovoxError`) are printed as one message without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import threading

from neurovox import __version__
from neurovox.errors import Interrupted, NeurovoxError, Terminated

COMMANDS = ("simulate", "info", "preprocess", "train", "resynth", "decode", "evaluate", "listen", "contribution", "replay", "stream", "cv", "sweep", "demo")
TRAIN_TARGETS = ("speech", "decoder", "prior", "likelihood")


def command_parser(subparsers: argparse._SubParsersAction, name: str, help: str, doc: str | None,
                   func) -> argparse.ArgumentParser:
    """A subcommand whose --help shows `doc` (the command module's docstring) as written; `func(args)` runs it."""
    p = subparsers.add_parser(name, help=help, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(func=func)
    return p


def add_config_args(parser: argparse.ArgumentParser) -> None:
    """--config FILE, --set KEY=VALUE (repeatable) and --seed, shared by every configurable command."""
    parser.add_argument("--config", metavar="FILE", help="YAML config file (sections as in the saved config.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config value, e.g. --set speech.max_epochs=5 (repeatable)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: the config's seed)")


def config_from_args(cls: type, args: argparse.Namespace, flags: list[str] | tuple[str, ...] = (),
                     quick: dict | None = None):
    """The one precedence of every command: defaults < --quick < --config < flags < --set.

    `flags` are the command's own options written as KEY=VALUE (e.g. "decoder.model=lstm"); --seed is
    added here. `quick` is the command's --quick settings, used when args.quick is set. The result is
    what the run saves as config.yaml.
    """
    from neurovox.config import load_config

    flags = list(flags) + ([f"seed={args.seed}"] if getattr(args, "seed", None) is not None else [])
    base = quick if getattr(args, "quick", False) else None
    return load_config(cls, getattr(args, "config", None), flags + list(getattr(args, "overrides", None) or []),
                       base=base)


def add_run_args(parser: argparse.ArgumentParser, *, quick: bool = True) -> None:
    parser.add_argument("--out", required=True, metavar="RUN", help="run directory to create (or resume)")
    parser.add_argument("--overwrite", action="store_true", help="replace a finished run in --out")
    if quick:
        parser.add_argument("--quick", action="store_true",
                            help="small, fast settings (minutes on 2 CPU cores) for a first look")


def _load(module: str):
    return importlib.import_module(f"neurovox.commands.{module}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neurovox", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"neurovox {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        if name == "train":
            train = sub.add_parser("train", help="train a model: speech | decoder | prior | likelihood")
            train_sub = train.add_subparsers(dest="target", metavar="TARGET")
            for target in TRAIN_TARGETS:
                _load(f"train_{target}").add_parser(train_sub)
            train.set_defaults(func=lambda args, p=train: (p.print_help(), 2)[1])
            continue
        _load(name).add_parser(sub)
    return parser


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated() if signum == signal.SIGTERM else Interrupted()


def _drop_lightning_adverts() -> None:
    """Lightning prints a cloud-logging advert on every fit; our users read the stage lines instead."""
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
        lambda record: not str(record.getMessage()).startswith("💡"))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _drop_lightning_adverts()
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    # Lightning's own SIGTERM handling waits for the end of the batch and then exits with status 0, as if
    # the command had succeeded; it also calls the handler found here, which stops the command now.
    in_main_thread = threading.current_thread() is threading.main_thread()  # signals need the main thread
    previous = ({sig: signal.signal(sig, _raise_terminated) for sig in (signal.SIGTERM, signal.SIGINT)}
                if in_main_thread else {})
    try:
        return int(args.func(args) or 0)
    except Terminated:
        print(f"\nneurovox {args.command}: terminated (SIGTERM). Rerun the same command to resume from the last "
              "checkpoint.", file=sys.stderr)
        return 128 + signal.SIGTERM
    except NeurovoxError as exc:
        print(f"neurovox {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as exc:
        print(f"neurovox {args.command}: error: {exc.strerror or exc}: {exc.filename}", file=sys.stderr)
        return 2
    except (Interrupted, KeyboardInterrupt):
        print(f"\nneurovox {args.command}: interrupted (Ctrl+C). Rerun the same command to resume from the last "
              "checkpoint.", file=sys.stderr)
        return 128 + signal.SIGINT
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
