"""`neurovox replay --data FILE --name NAME [--speed 1.0]`: a recording as live Lab Streaming Layer streams."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    from neurovox.cli import command_parser

    p = command_parser(
        subparsers, "replay", "play a recording out as live LSL streams (neural + audio), for `neurovox stream`",
        "Stream FILE's neural samples (raw voltage or high-gamma frames, as recorded; channel labels, types and unit "
        "in the stream description) as the LSL stream NAME and its audio as NAME_audio, at the recording's own rate "
        "(--speed scales it). Streams stay on this machine unless LSLAPICFG or NEUROVOX_LSL_SCOPE=site says otherwise.",
        run)
    p.add_argument("--data", required=True, metavar="FILE", help="recording to replay")
    p.add_argument("--name", required=True, help="LSL stream name (the audio stream is NAME_audio)")
    p.add_argument("--speed", type=float, default=1.0, help="playback speed (default 1.0 = real time)")
    p.add_argument("--seconds", type=float, default=None, help="stop after this much recording time (default: all)")
    p.add_argument("--start", type=float, default=0.0, metavar="S", help="start at this time in the recording (s)")
    p.add_argument("--no-audio", action="store_true", help="do not stream the audio")
    return p


def run(args: argparse.Namespace) -> int:
    from neurovox.errors import Interrupted
    from neurovox.realtime.replay import replay

    try:
        done = replay(args.data, args.name, speed=args.speed, seconds=args.seconds, start_s=args.start,
                      with_audio=not args.no_audio)
        print(f"replayed {done['seconds']:.1f} s ({done['samples']} samples)")
    except (KeyboardInterrupt, Interrupted):
        print("\nreplay stopped")
    return 0
