"""Low density from high density on one participant (issue 20): the same decoders on all 225 contacts of a
simulated 15 x 15 hybrid grid (HB) and on its 64 macro contacts only (`--set prepare.channels=ld_from_hb`, LD).

    .venv/bin/python benchmarks/ld_vs_hb.py --out DIR [--models linear,lstm] [--write-md]

Stages (ordinary neurovox commands, resumable): `neurovox simulate --layout hybrid225` (300 words, SNR 0 dB,
realistic encoding, seed 0), then for each model and density `neurovox train decoder` (default configuration)
and `neurovox evaluate`. Prints one comparison table (each decoder with chance, the no-neural baseline and
its gain over it) and the paired difference HB minus LD on the same test trials; DIR/report/report.html shows
both densities side by side. --write-md replaces the generated section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from run import load_average, machine_description, write_generated_section  # noqa: E402

DENSITIES = {"hb": [], "ld": ["--set", "prepare.channels=ld_from_hb"]}


def paired_rows(eval_dirs: dict[str, Path], models: list[str]) -> str:
    """HB minus LD per model: mean per-trial difference with a paired-bootstrap 95% CI and Wilcoxon p."""
    import numpy as np

    from neurovox.evaluate.metrics import paired_gain

    lines = ["| model | PCC: HB - LD [95% CI] | tilt-removed PCC: HB - LD [95% CI] | Wilcoxon p (tilt) |", "|---|---|---|---|"]
    for model in models:
        hb, ld = (json.loads((eval_dirs[f"{model}-{d}"] / "metrics.json").read_text()) for d in ("hb", "ld"))
        assert [t["trial"] for t in hb["trials"]] == [t["trial"] for t in ld["trials"]]
        cells = [paired_gain(np.array(hb["per_trial"]["decoded"][m]), np.array(ld["per_trial"]["decoded"][m]),
                             generator=np.random.default_rng(0)) for m in ("pcc", "pcc_tilt")]
        lines.append(f"| {model} | " + " | ".join(f"{c['mean']:+.3f} [{c['ci_low']:+.3f}, {c['ci_high']:+.3f}]" for c in cells)
                     + f" | {cells[1]['p_wilcoxon']:.3g} |")
    return "\n".join(lines)


def main() -> int:
    from neurovox.demo import _run_cli
    from neurovox.report import write_comparison_report
    from neurovox.report.tables import comparison_entry, markdown_table

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path, help="working directory (resumable)")
    ap.add_argument("--models", default="linear,lstm", help="comma-separated decoders (default linear,lstm)")
    ap.add_argument("--n-trials", type=int, default=300, help="words of the simulated participant (default 300)")
    ap.add_argument("--write-md", action="store_true", help="replace the generated section of BENCHMARKS.md")
    args = ap.parse_args()
    out: Path = args.out
    start = datetime.now(timezone.utc).isoformat(timespec="seconds")
    load_start, t0 = load_average(), time.perf_counter()
    models = args.models.split(",")

    data_dir = out / "data"
    _run_cli(["simulate", "--out", str(data_dir), "--layout", "hybrid225", "--kind", "high_gamma",
              "--n-trials", str(args.n_trials), "--seed", "0"], data_dir / "config.yaml")
    data = str(sorted(data_dir.glob("*.h5"))[0])
    entries, eval_dirs = [], {}
    for model in models:
        for density, extra in DENSITIES.items():
            name = f"{model}-{density}"
            run_dir, eval_dir = out / "runs" / name, out / "eval" / name
            _run_cli(["train", "decoder", "--data", data, "--model", model, "--out", str(run_dir), "--seed", "0", *extra],
                     run_dir / "DONE")
            _run_cli(["evaluate", "--run", str(run_dir), "--data", data, "--out", str(eval_dir), "--seed", "0"],
                     eval_dir / "metrics.json")
            result = json.loads((eval_dir / "metrics.json").read_text())
            n_ch = len(json.loads((run_dir / "normalizer.json").read_text()).get("mean", [])) or "?"
            entries.append(comparison_entry(name, result, eval_dir / "report.html",
                                            f"{model}, {'all 225 contacts (HB)' if density == 'hb' else '64 macro contacts (LD)'}",
                                            n_channels=n_ch))
            eval_dirs[name] = eval_dir
    write_comparison_report(entries, out / "report", title="neurovox: low density from high density",
                            notes=f"Simulated 15 x 15 hybrid grid ({args.n_trials} words, realistic encoding, SNR 0 dB, "
                                  "seed 0): HB = all 225 contacts, LD = the 64 macro contacts (prepare.channels=ld_from_hb).")
    table = markdown_table(entries) + "\n\nHigh minus low density on the same test trials (paired bootstrap):\n\n" + \
        paired_rows(eval_dirs, models)
    minutes = (time.perf_counter() - t0) / 60
    body = ("## Generated: low density from high density (issue 20)\n\n"
            f"Command: `.venv/bin/python benchmarks/ld_vs_hb.py --out DIR --models {args.models} --write-md`  \n"
            f"Machine: {machine_description()}  \nDate: {start}; load average at start {load_start}, at end "
            f"{load_average()}; {minutes:.0f} min in all (stages resumed from an earlier run count 0).\n\n"
            f"Simulated participant on a 15 x 15 hybrid grid (225 contacts at 5 mm: 64 macro contacts 10 mm apart and "
            f"161 micro contacts between them; realistic encoding, {args.n_trials} words, SNR 0 dB, seed 0), 50 held-out "
            "test trials. Each decoder at its default configuration on all contacts (HB) and on the macro contacts only "
            "(LD, `--set prepare.channels=ld_from_hb`: what a low-density grid at the same sites records). Columns as in "
            f"the decoder tables.\n\n{table}\n")
    print("\n" + table)
    if args.write_md:
        name = "ld-vs-hb"
        write_generated_section(name, "ld_vs_hb.py", body)
        print("BENCHMARKS.md updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
