"""`neurovox listen --eval DIR [--port N]`: a blinded listening test of an evaluation's audio in the browser."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    from neurovox.cli import command_parser

    p = command_parser(
        subparsers, "listen", "serve a blinded listening test of an evaluation's audio on this machine",
        "Serve a local web page (http://127.0.0.1:PORT/) that plays every test trial's audio of an evaluation folder "
        "(decoded, reference, resynthesis, no-neural baseline) in a random order per listener, without saying which "
        "is which, and asks for the word (forced choice among --choices words, or typed with --choices 0) and a 1-5 "
        "naturalness rating. Answers are stored in DIR/listening.sqlite as they come (a closed browser loses "
        "nothing: reopen the page and continue); DIR/listening.json and the 'Listening test' section of "
        "DIR/report.html are updated after every answer. Stop with Ctrl+C.", run)
    p.add_argument("--eval", required=True, metavar="DIR", help="evaluation folder written by `neurovox evaluate`")
    p.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (default 8000; 0 = any free port)")
    p.add_argument("--choices", type=int, default=4,
                   help="words offered per recording, the spoken one among them (default 4; 0 = type the word)")
    p.add_argument("--seed", type=int, default=0, help="seeds each listener's order and choices (with their name)")
    return p


def run(args: argparse.Namespace) -> int:
    import time

    from neurovox.errors import Interrupted
    from neurovox.evaluate.listening import start_server, summarize_answers

    server = start_server(args.eval, args.port, args.choices, args.seed)
    test = server.listening_test
    port = server.server_address[1]
    print(f"listening test of {args.eval}: {len(test.items)} recordings per listener; open http://127.0.0.1:{port}/ "
          "(Ctrl+C stops; answers are saved as they come)", flush=True)
    try:
        last = -1
        while True:
            n = len(test.db.answers())
            if n != last:
                print(f"\r{n} answers stored", end="", flush=True)
                last = n
            time.sleep(1.0)
    except (Interrupted, KeyboardInterrupt):  # Ctrl+C is how a listening session ends: not an error
        pass
    finally:
        server.shutdown()
        summary = summarize_answers(test.db.answers(), test.n_choices)
        test.db.close()
        print()
        for cond, s in summary["conditions"].items():
            print(f"{cond:<12} {s['correct']}/{s['n']} words identified ({s['accuracy']:.2f}, 95% CI "
                  f"[{s['ci_low']:.2f}, {s['ci_high']:.2f}]), naturalness {s['rating_mean']:.2f}")
    print(f"answers: {test.db.path}; summary: listening.json and the report's 'Listening test' section")
    return 0
