"""The decoder table (issues 5, 16, 20): every model x {non-causal, strictly causal, strictly anticausal} at its default configuration
on the default simulated participant, with chance, the no-neural baseline and the gain over it (paired CI),
the ceiling where it applies, parameters and training time, and each deep decoder against the linear
baseline (paired bootstrap over the same test trials).

    .venv/bin/python benchmarks/decoder_table.py --out DIR [--encoding realistic|linear] [--target mel|formant]
        [--models linear,resnet,swin,lstm] [--directions noncausal,causal,anticausal] [--write-md]

Stages (each an ordinary neurovox command with its own run directory under DIR, so an interrupted
table resumes where it stopped): `neurovox simulate` (default participant: 300 words, 8x8, SNR 0 dB,
seed 0), for `--target formant` `neurovox train speech` (default model, 700 steps: it reaches the issue-4
bars), then for linear, ResNet3D, Swin3D and LSTM, non-causal, causal and anticausal (output frame t sees
only neural frames >= t, the reference paper's third family): `neurovox train decoder` with the
default configuration (its epoch budget; `--epochs` overrides it) and `neurovox evaluate` on the held-out
test trials (last 10 of each task). Chance is the same trained model fed trial-shuffled neural windows; the
no-neural baseline is the onset-aligned mean of the training windows (`neurovox.evaluate.baselines`); the
ceiling is the formant speech model's resynthesis of the real audio (formant target only).

Prints markdown tables and, with --write-md, replaces the generated section of BENCHMARKS.md for this
encoding and target; DIR/report/report.html compares them all.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from run import load_average, machine_description, write_generated_section  # noqa: E402

MODELS = ("linear", "resnet", "swin", "lstm")
DIRECTIONS = {"noncausal": ("", [], "non-causal"), "causal": ("-causal", ["--causal"], "strictly causal"),
              "anticausal": ("-anticausal", ["--anticausal"], "strictly anticausal")}  # name suffix, flags, label


def train_and_evaluate(out: Path, data: str, model: str, direction: str, train_args: Sequence[str] = (),
                       eval_args: Sequence[str] = ()) -> tuple[str, Path, Path]:
    """`neurovox train decoder` (seed 0, default configuration plus `train_args`) then `neurovox evaluate` of one
    model x direction into OUT/runs/NAME and OUT/eval/NAME, each stage skipped when already done; returns
    (NAME, run dir, eval dir)."""
    from neurovox.demo import _run_cli

    suffix, flags, _ = DIRECTIONS[direction]
    name = model + suffix
    run_dir, eval_dir = out / "runs" / name, out / "eval" / name
    _run_cli(["train", "decoder", "--data", data, "--model", model, "--out", str(run_dir), "--seed", "0", *flags,
              *train_args], run_dir / "DONE")
    _run_cli(["evaluate", "--run", str(run_dir), "--data", data, *eval_args, "--out", str(eval_dir), "--seed", "0"],
             eval_dir / "metrics.json")
    return name, run_dir, eval_dir


def _entry(eval_dir: Path, run_dir: Path, name: str, model: str, direction: str) -> dict:
    from neurovox.report.tables import comparison_entry

    result = json.loads((eval_dir / "metrics.json").read_text())
    done = json.loads((run_dir / "DONE").read_text())
    entry = comparison_entry(name, result, eval_dir / "report.html", f"{model}, {DIRECTIONS[direction][2]}",
                             model=model, causal=direction == "causal", summary=done)
    entry["direction"] = direction
    return entry


def versus_linear(eval_dirs: dict[str, Path]) -> str:
    """Each deep decoder minus the linear baseline of the same direction on the same test trials: mean
    per-trial difference of PCC and tilt-removed PCC with a paired-bootstrap 95% CI and Wilcoxon p."""
    import numpy as np

    from neurovox.evaluate.metrics import paired_gain

    per_trial = {name: json.loads((d / "metrics.json").read_text()) for name, d in eval_dirs.items()}
    lines = ["| decoder | vs | PCC gain [95% CI] | tilt-removed PCC gain [95% CI] | Wilcoxon p (tilt) | beats linear (tilt) |",
             "|---|---|---|---|---|---|"]
    for name, res in per_trial.items():
        if name.startswith("linear"):
            continue
        ref = "linear" + next((suffix for suffix, _, _ in DIRECTIONS.values() if suffix and name.endswith(suffix)), "")
        base = per_trial[ref]
        assert [t["trial"] for t in res["trials"]] == [t["trial"] for t in base["trials"]], (name, ref)
        cells = []
        for metric in ("pcc", "pcc_tilt"):
            g = paired_gain(np.array(res["per_trial"]["decoded"][metric]), np.array(base["per_trial"]["decoded"][metric]),
                            generator=np.random.default_rng(0))
            cells.append(g)
        verdict = "yes" if cells[1]["above"] else ("no (worse: CI below 0)" if cells[1]["ci_high"] < 0 else
                                                   "no (CI includes 0)")
        lines.append(f"| {name} | {ref} | {cells[0]['mean']:+.3f} [{cells[0]['ci_low']:+.3f}, {cells[0]['ci_high']:+.3f}] | "
                     f"{cells[1]['mean']:+.3f} [{cells[1]['ci_low']:+.3f}, {cells[1]['ci_high']:+.3f}] | "
                     f"{cells[1]['p_wilcoxon']:.3g} | {verdict} |")
    return "\n".join(lines)


def markdown(entries: list[dict]) -> str:
    """Evaluation table (metric x decoder with chance, no-neural baseline, gain, ceiling) and a cost table."""
    from neurovox.report.tables import markdown_table

    lines = ["| model | direction | parameters | training | epochs | linear branch weight | val tilt-removed PCC: "
             "network alone / branch alone / mix |", "|---|---|---|---|---|---|---|"]
    for e in entries:
        s = e["summary"]
        mix = s.get("linear_branch") or {}
        weight = f"{mix['weight']:.1f}" if mix else "-"
        val = (f"{mix['val_pcc_tilt_deep_alone']:.3f} / {mix['val_pcc_tilt_linear_alone']:.3f} / "
               f"{mix['val_pcc_tilt']:.3f}") if mix else "-"
        lines.append(f"| {e['model']} | {e['direction']} | {s.get('n_params', 0):,} | "
                     f"{s.get('train_seconds', 0):.0f} s | {s.get('epochs', '-') if e['model'] != 'linear' else '-'} | "
                     f"{weight} | {val} |")
    return markdown_table(entries) + "\n\nCost (parameters: the network's; a linear branch adds the linear " \
                                     "baseline's fitted coefficients, frozen) and the linear branch's weight, chosen " \
                                     "on the validation trials:\n\n" + "\n".join(lines)


def main() -> int:
    from neurovox.demo import _run_cli
    from neurovox.report import write_comparison_report

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path, help="working directory (resumable)")
    ap.add_argument("--epochs", type=int, default=None, help="decoder.max_epochs of every deep decoder (default: the "
                                                                "configuration's)")
    ap.add_argument("--target", choices=("mel", "formant"), default="mel", help="deep decoders' output (default mel)")
    ap.add_argument("--models", default=",".join(MODELS), help=f"comma-separated subset of {','.join(MODELS)} (default all)")
    ap.add_argument("--directions", default="noncausal,causal,anticausal",
                    help="comma-separated subset of noncausal,causal,anticausal (default all)")
    ap.add_argument("--n-trials", type=int, default=300, help="words of the simulated participant (default 300)")
    ap.add_argument("--speech-steps", type=int, default=700, help="speech model steps (default 700)")
    ap.add_argument("--encoding", choices=("realistic", "linear"), default="realistic",
                    help="simulated participant's encoding model (default realistic)")
    ap.add_argument("--write-md", action="store_true", help="replace this encoding's generated section of BENCHMARKS.md")
    args = ap.parse_args()
    out: Path = args.out
    start = datetime.now(timezone.utc).isoformat(timespec="seconds")
    load_start, t0 = load_average(), time.perf_counter()

    data_dir = out / "data"
    _run_cli(["simulate", "--out", str(data_dir), "--kind", "high_gamma", "--n-trials", str(args.n_trials),
              "--encoding", args.encoding, "--seed", "0"], data_dir / "config.yaml")
    data = str(sorted(data_dir.glob("*.h5"))[0])
    speech = out / "runs" / "speech"
    if args.target == "formant":
        _run_cli(["train", "speech", "--data", data, "--out", str(speech), "--seed", "0",
                  "--set", f"speech.max_steps={args.speech_steps}"], speech / "DONE")
    entries, eval_dirs = [], {}
    models = [m for m in MODELS if m in args.models.split(",")]  # the linear baseline always: the comparisons need it
    directions = [d for d in DIRECTIONS if d in args.directions.split(",")]
    for model in ["linear"] + [m for m in models if m != "linear"]:
        for direction in directions:
            speech_args = ["--speech", str(speech)] if args.target == "formant" and model != "linear" else []
            train_args = [] if model == "linear" else speech_args + ["--target", args.target] + (
                ["--set", f"decoder.max_epochs={args.epochs}"] if args.epochs else [])
            name, run_dir, eval_dir = train_and_evaluate(out, data, model, direction, train_args, speech_args)
            entries.append(_entry(eval_dir, run_dir, name, model, direction))
            eval_dirs[name] = eval_dir
    budget = f"max_epochs={args.epochs}" if args.epochs else "its default epoch budget"
    write_comparison_report(entries, out / "report", title="neurovox decoders at their default configuration",
                            notes=f"Default participant ({args.encoding} encoding, {args.n_trials} words, 8x8, SNR 0 dB, "
                                  f"seed 0); deep decoders (target {args.target}) at default settings, {budget}.")
    table = markdown(entries) + "\n\nDeep decoders against the linear baseline of the same direction (paired " \
                                "bootstrap over the same test trials):\n\n" + versus_linear(eval_dirs)
    minutes = (time.perf_counter() - t0) / 60
    cmd = f"`.venv/bin/python benchmarks/decoder_table.py --out DIR --encoding {args.encoding} --target {args.target}" + \
          (f" --epochs {args.epochs}" if args.epochs else "") + \
          (f" --models {args.models}" if args.models != ",".join(MODELS) else "") + \
          (f" --directions {args.directions}" if args.directions != ",".join(DIRECTIONS) else "") + \
          (f" --n-trials {args.n_trials}" if args.n_trials != 300 else "") + \
          (f" --speech-steps {args.speech_steps}" if args.target == "formant" else "") + " --write-md`"
    head = (f"every deep decoder outputs the {'mel spectrogram (Griffin-Lim vocoder)' if args.target == 'mel' else '18 formant parameters through the speech model (' + str(args.speech_steps) + ' steps)'} "
            f"at its default configuration, {budget} (cosine decay over those epochs; early stopping may end sooner)")
    body = (f"## Generated: decoders at their default configuration, {args.encoding} participant, target {args.target}\n\n"
            f"Command: {cmd}  \nMachine: {machine_description()}  \n"
            f"Date: {start}; load average at start {load_start}, at end {load_average()}; "
            f"{minutes:.0f} min in all (stages resumed from an earlier run count 0).\n\n"
            f"Default participant ({args.encoding} encoding model, {args.n_trials} words, 8x8 grid, SNR 0 dB, seed 0), 50 held-out test trials "
            f"(last 10 of each task); {head}. PCC, tilt-removed PCC (each mel bin's training mean subtracted first) "
            f"and STOI are per-trial means; chance = the same model fed trial-shuffled neural windows; "
            f"no-neural = the onset-aligned mean of the training windows (handed the trial timing, never the "
            f"brain), scored like a decoder; gain = decoder minus no-neural on the same trials with a paired "
            f"bootstrap 95% CI (\"beats no-neural\" = CI above 0); ceiling = the formant speech model's "
            f"resynthesis of the real audio, shown only for the decoders that go through it.\n\n{table}\n")
    print("\n" + table)
    if args.write_md:
        name = f"decoder-table-{args.encoding}-{args.target}"
        write_generated_section(name, "decoder_table.py", body)
        print("BENCHMARKS.md updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
