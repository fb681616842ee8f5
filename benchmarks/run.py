"""Run every benchmark: `python benchmarks/run.py [--size small|full] [--only NAME ...] [--write-md]`.

Each `benchmarks/bench_<name>.py` defines `run(size: str) -> list[dict]`, one dict per figure with
keys: benchmark, case, metric, value, unit, and optionally note. Medians over repeats; comparisons
are ratios measured in the same run. Results are printed as a table (with each benchmark's wall
time and the total) and written to `benchmarks/results-<size>.json`; `--write-md` replaces the
generated section of that size in BENCHMARKS.md (between its marker comments; appended the first
time), leaving the hand-written sections alone.

small: every figure of issue 8 in 5.5 min on 2 nearly idle CPU cores. full: 31 min (17 of them the diffusion prior and its sampling).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import subprocess
import sys
import time
import traceback
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
    try:
        mem = f", {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB"
    except (ValueError, OSError):
        mem = ""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{cpu}, {os.cpu_count()} cores{mem}, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), {gpu}")


def load_average() -> str:
    try:
        return "/".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and its finished children: compared with the wall time
    it shows how much of the 2 cores a benchmark got (wall >> CPU / threads means a busy machine)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


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
        cells = [r["benchmark"], r["case"], r["metric"], v, r["unit"], r.get("note", "")]
        lines.append("| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


def markdown_section(result: dict) -> str:
    """The generated section of one size, between marker comments (replaced on the next --write-md)."""
    size = result["size"]
    times = ", ".join(f"{k} {v:.0f} s ({result['cpu_seconds'][k]:.0f} s CPU)" for k, v in result["seconds"].items())
    return (f"<!-- generated:{size} (benchmarks/run.py --write-md; do not edit by hand) -->\n"
            f"## Generated: {size} size\n\n"
            f"Command: `{result['command']}`  \n"
            f"Machine: {result['machine']}  \n"
            f"Date: {result['date']}, commit {result['commit']}; load average (1/5/15 min) at start "
            f"{result['load_start']}, at end {result['load_end']}  \n"
            f"Wall time {result['total_s'] / 60:.1f} min ({times})\n\n"
            f"{format_table(result['rows'])}\n"
            f"<!-- /generated:{size} -->\n")


def replace_generated_section(md: Path, name: str, section: str) -> None:
    """Put `section` (which begins with "<!-- generated:NAME ..." and ends with "<!-- /generated:NAME -->")
    in place of the section of that name in `md`, or append it the first time."""
    from neurovox.utils.files import write_text_atomic  # here: the runner itself imports no neurovox

    text = md.read_text() if md.exists() else "# neurovox benchmarks\n"
    start = text.find(f"<!-- generated:{name} ")
    end_marker = f"<!-- /generated:{name} -->\n"
    end = text.find(end_marker, start)
    if start >= 0 and end >= 0:
        text = text[:start] + section + text[end + len(end_marker):]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    write_text_atomic(md, text)  # an interrupted write never leaves a truncated BENCHMARKS.md


def write_generated_section(name: str, script: str, body: str) -> None:
    """Replace (or append) the generated section `name` of BENCHMARKS.md with `body`, marked as written by
    `benchmarks/<script> --write-md`."""
    replace_generated_section(HERE.parent / "BENCHMARKS.md", name,
                              f"<!-- generated:{name} (benchmarks/{script} --write-md; do not edit by hand) -->\n"
                              f"{body}<!-- /generated:{name} -->\n")


def write_markdown(md: Path, result: dict) -> None:
    replace_generated_section(md, result["size"], markdown_section(result))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=("small", "full"), default="small")
    parser.add_argument("--only", nargs="*", help="names of benchmarks to run (default: all)")
    parser.add_argument("--write-md", action="store_true", help="write the generated table into BENCHMARKS.md")
    args = parser.parse_args()
    names = args.only or sorted(p.stem[len("bench_"):] for p in HERE.glob("bench_*.py"))
    rows: list[dict] = []
    seconds: dict[str, float] = {}
    cpu: dict[str, float] = {}
    failed = []
    load_start = load_average()
    t_all = time.perf_counter()
    for name in names:
        t0, c0 = time.perf_counter(), cpu_seconds()
        print(f"[bench] {name} ({args.size}) ...", flush=True)
        try:
            out = load(name).run(args.size)
        except Exception as exc:  # report and go on: one broken benchmark must not hide the others
            traceback.print_exc()
            failed.append(name)
            out = [{"benchmark": name, "case": "FAILED", "metric": type(exc).__name__, "value": float("nan"),
                    "unit": "", "note": str(exc)[:200]}]
        seconds[name], cpu[name] = time.perf_counter() - t0, cpu_seconds() - c0
        rows.extend(out)
        print(format_table(out), flush=True)
        print(f"[bench] {name} took {seconds[name]:.1f} s ({cpu[name]:.1f} s CPU)\n", flush=True)
    total = time.perf_counter() - t_all
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=HERE).stdout.strip() or "unknown"
    except OSError:
        commit = "unknown"
    result = {
        "size": args.size,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_description(),
        "commit": commit,
        "command": ".venv/bin/python benchmarks/run.py " + " ".join(sys.argv[1:]),
        "load_start": load_start,
        "load_end": load_average(),
        "seconds": seconds,
        "cpu_seconds": cpu,
        "total_s": total,
        "rows": rows,
    }
    (HERE / f"results-{args.size}.json").write_text(json.dumps(result, indent=2))
    print("[bench] wall time per benchmark: " + ", ".join(f"{k} {v:.0f} s ({cpu[k]:.0f} s CPU)" for k, v in seconds.items()))
    print(f"[bench] total {total:.0f} s ({total / 60:.1f} min); load average at start {load_start}, "
          f"at end {result['load_end']}; results in {HERE / f'results-{args.size}.json'}")
    if args.write_md:
        write_markdown(HERE.parent / "BENCHMARKS.md", result)
        print(f"[bench] wrote the generated {args.size} section of BENCHMARKS.md")
    if failed:
        print(f"[bench] FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
