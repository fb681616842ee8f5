"""`neurovox stream --run RUN --source NAME --out-wav FILE`: real-time decoding of a live LSL stream."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    from neurovox.cli import command_parser

    p = command_parser(
        subparsers, "stream", "decode a live LSL neural stream frame by frame with a causal run; speech to WAV / LSL",
        "Resolve the LSL stream NAME, check its channel count and rate against RUN (a finished causal decoder run "
        "with the mel head), then for every high-gamma frame: the run's normaliser, one step of its causal decoder and "
        "128 samples of a vocoder without look-ahead, written to --out-wav and/or pushed to the LSL audio outlet "
        "--out-lsl. Shows frames, latency, compute and dropped frames live; --stats writes the latency statistics "
        "(latency = audio pushed minus the neural sample's LSL time stamp). Ctrl+C stops cleanly.", run)
    p.add_argument("--run", required=True, metavar="RUN", help="finished causal decoder run (mel head)")
    p.add_argument("--source", required=True, metavar="NAME", help="name of the LSL neural stream")
    p.add_argument("--out-wav", default=None, metavar="FILE", help="write the decoded speech here (16 kHz WAV)")
    p.add_argument("--out-lsl", default=None, metavar="NAME", help="push the decoded speech to an LSL outlet NAME")
    p.add_argument("--seconds", type=float, default=None, help="stop after this much stream time (default: Ctrl+C)")
    p.add_argument("--stats", default=None, metavar="FILE", help="write latency statistics (JSON)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the stream to appear (default 10)")
    return p


def run(args: argparse.Namespace) -> int:
    from neurovox.realtime.stream import run_stream

    stats = run_stream(args.run, args.source, out_wav=args.out_wav, out_lsl=args.out_lsl, seconds=args.seconds,
                       stats_path=args.stats, resolve_timeout_s=args.timeout)
    lat = stats["latency_ms"]
    if lat["median"] is not None:
        print(f"{stats['frames']} frames; latency median {lat['median']:.1f} ms, p99 {lat['p99']:.1f} ms; "
              f"dropped {stats['filled_frames']}, stalls {stats['stalls']}")
    return 0
