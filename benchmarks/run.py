"""Run every benchmark: `python benchmarks/run.py [--size small|full] [--only NAME ...]`.

Each `benchmarks/bench_<name>.py` defines `run(size: str) -> list[dict]`, one dict per figure with
keys: benchmark, case, metric, value, unit, and optionally note. Medians over repeats; comparisons
are ratios measured in the same run. Results are printed as a table and written to
`benchmarks/results-<size>.json`; `--write-md` regenerates the tables in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent


def machine_description() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), {gpu}"


def load(name: str):
    path = HERE / f"bench_{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def format_table(rows: list[dict]) -> str:
    lines = ["| benchmark | case | metric | value | unit | note |", "|---|---|---|---|---|---|"]
    for r in rows:
        v = r["value"]
        v = f"{v:.4g}" if isinstance(v, float) else str(v)
        lines.append(f"| {r['benchmark']} | {r['case']} | {r['metric']} | {v} | {r['unit']} | {r.get('note', '')} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=("small", "full"), default="small")
    parser.add_argument("--only", nargs="*", help="names of benchmarks to run (default: all)")
    parser.add_argument("--write-md", action="store_true", help="write the tables into BENCHMARKS.md")
    args = parser.parse_args()
    names = args.only or sorted(p.stem[len("bench_"):] for p in HERE.glob("bench_*.py"))
    rows: list[dict] = []
    for name in names:
        t0 = time.perf_counter()
        print(f"[bench] {name} ({args.size}) ...", flush=True)
        out = load(name).run(args.size)
        rows.extend(out)
        print(format_table(out), flush=True)
        print(f"[bench] {name} took {time.perf_counter() - t0:.1f} s\n", flush=True)
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE).stdout.strip()
    except OSError:
        commit = "unknown"
    result = {
        "size": args.size,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_description(),
        "commit": commit,
        "command": "python benchmarks/run.py " + " ".join(sys.argv[1:]),
        "rows": rows,
    }
    (HERE / f"results-{args.size}.json").write_text(json.dumps(result, indent=2))
    if args.write_md:
        md = HERE.parent / "BENCHMARKS.md"
        section = (f"\n## {args.size} size: {', '.join(names)}\n\nCommand: `{result['command']}`  \n"
                   f"Machine: {result['machine']}  \nDate: {result['date']}, commit {commit}\n\n{format_table(rows)}\n")
        text = md.read_text() if md.exists() else "# neurovox benchmarks\n"
        md.write_text(text + section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
