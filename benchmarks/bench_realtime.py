"""Real-time latency over LSL (issue 18): `neurovox replay` -> `neurovox stream` on one machine.

    .venv/bin/python benchmarks/bench_realtime.py --out DIR [--seconds 60] [--models lstm,resnet]

Simulates the default participant (300 words, high gamma), trains a causal decoder of each model at its
default size with a short step budget (latency does not depend on how well it was trained), then replays
the recording in real time in a second process and streams it through `neurovox stream` for --seconds.
Reports per model: end-to-end latency (audio pushed minus the neural sample's LSL time stamp) median and
p99, compute per frame (decoder step + vocoder), dropped (filled) frames and stalls. Run it alone on the
machine: the figures are wall-clock.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from run import load_average, machine_description  # noqa: E402


def main() -> int:
    from neurovox.demo import _run_cli

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--seconds", type=float, default=60.0, help="stream time per model (default 60)")
    ap.add_argument("--models", default="lstm,resnet")
    args = ap.parse_args()
    out: Path = args.out
    sim = out / "sim"
    _run_cli(["simulate", "--out", str(sim), "--kind", "high_gamma", "--n-trials", "300", "--seed", "0"], sim / "config.yaml")
    data = str(next(sim.glob("*.h5")))
    rows = []
    for model in args.models.split(","):
        run = out / "runs" / f"{model}_causal"
        _run_cli(["train", "decoder", "--data", data, "--model", model, "--causal", "--out", str(run), "--quick",
                  "--set", "decoder.max_steps=30"], run / "DONE")
        name = f"nv-bench-{model}"
        load = load_average()
        replay = subprocess.Popen([sys.executable, "-m", "neurovox.cli", "replay", "--data", data, "--name", name,
                                   "--seconds", str(args.seconds + 15), "--no-audio"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            stats_path = out / f"stream_{model}.json"
            code = subprocess.call([sys.executable, "-m", "neurovox.cli", "stream", "--run", str(run), "--source", name,
                                    "--out-wav", str(out / f"stream_{model}.wav"), "--seconds", str(args.seconds),
                                    "--stats", str(stats_path), "--timeout", "20"])
            if code != 0:
                raise SystemExit(f"neurovox stream failed for {model} (exit {code})")
        finally:
            replay.terminate()
            replay.wait(timeout=30)
        s = json.loads(stats_path.read_text())
        rows.append((model, s, load))
        time.sleep(1.0)
    print(f"\nMachine: {machine_description()}")
    print("| model (causal) | frames | latency median (ms) | latency p99 (ms) | compute median (ms/frame) | "
          "compute p99 | dropped frames | stalls | load average at start |")
    print("|---|---|---|---|---|---|---|---|---|")
    for model, s, load in rows:
        lat, comp = s["latency_ms"], s["compute_ms_per_frame"]
        print(f"| {model} | {s['frames']} | {lat['median']:.2f} | {lat['p99']:.2f} | {comp['median']:.2f} | "
              f"{comp['p99']:.2f} | {s['filled_frames']} | {s['stalls']} | {load} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
