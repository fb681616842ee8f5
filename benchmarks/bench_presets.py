"""Decoder size presets: CPU training throughput of the deep decoders at preset "small" and "paper".

`python benchmarks/bench_presets.py [--steps N] [--budget S]`

Per model (ResNet3D, Swin3D, LSTM; not causal) and preset (DecoderTrainConfig(preset=...), whose
"paper" applies PAPER_SIZES, the reference implementation's sizes), at the reference window (batch 16
of 16 lead + 128 target frames x 64 channels of an 8x8 grid, target 128 x 80): one training step =
forward (`model(x, 128)`) + mean-square loss + backward + AdamW step, timed on 1 torch thread after 2
warm-up steps. Reported: parameters, median wall seconds per step (and median CPU seconds of the process
per step, the steadier figure on a shared machine), windows/s, and windows/s x parameters / 1e6 ("M
param-windows/s", the throughput per parameter: equal values would mean cost proportional to size),
plus the paper/small ratio of seconds per step, both measured in this run. A model whose warm-up step
is slow gets fewer timed steps (at least 2) so that its timing stays within --budget seconds.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

N_LEAD, N_TARGET, N_CHANNELS, N_OUT, BATCH = 16, 128, 64, 80, 16
MODELS = ("resnet", "swin", "lstm")
PRESETS = ("small", "paper")


def machine_description() -> str:
    try:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from run import machine_description as describe  # noqa: E402

        return describe()
    except Exception:  # noqa: BLE001 - fall back to a plain description
        return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
                f"({torch.get_num_threads()} threads)")


def time_steps(model: torch.nn.Module, steps: int, budget_s: float) -> dict:
    """Median wall and CPU seconds of one training step of `model` (2 warm-up steps first)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, N_LEAD + N_TARGET, N_CHANNELS, generator=gen)
    y = torch.randn(BATCH, N_TARGET, N_OUT, generator=gen)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        loss = torch.nn.functional.mse_loss(model(x, N_TARGET), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    warm = []
    for _ in range(2):
        t0 = time.perf_counter()
        step()
        warm.append(time.perf_counter() - t0)
    n = max(2, min(steps, int(budget_s / warm[-1]))) if warm[-1] > 0 else steps
    wall, cpu = [], []
    for _ in range(n):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {"steps": n, "step_s": statistics.median(wall), "cpu_s": statistics.median(cpu)}


def run(steps: int = 5, budget_s: float = 30.0) -> list[dict]:
    from neurovox.decoders.base import build_decoder
    from neurovox.decoders.config import DecoderTrainConfig, model_kwargs
    from neurovox.decoders.layout import rectangular_layout

    layout = rectangular_layout(8, 8)
    rows = []
    for name in MODELS:
        for preset in PRESETS:
            cfg = DecoderTrainConfig(model=name, preset=preset)
            torch.manual_seed(0)
            model = build_decoder(name, n_channels=N_CHANNELS, n_out=N_OUT, causal=False, layout=layout,
                                  **model_kwargs(cfg))
            n_params = sum(p.numel() for p in model.parameters())
            r = time_steps(model, steps, budget_s)
            wps = BATCH / r["step_s"]
            rows.append({"model": name, "preset": preset, "params": n_params, **r, "windows_s": wps,
                         "mpw_s": wps * n_params / 1e6})
            print(f"  {name}/{preset}: {n_params:,} params, {r['step_s']:.3f} s/step (median of {r['steps']})",
                  file=sys.stderr, flush=True)
    small = {r["model"]: r["step_s"] for r in rows if r["preset"] == "small"}
    for r in rows:
        r["ratio"] = r["step_s"] / small[r["model"]]
    return rows


def format_table(rows: list[dict]) -> str:
    lines = ["| model | preset | params | s/step (median) | CPU s/step | windows/s | M param-windows/s | "
             "paper/small s/step |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        ratio = f"{r['ratio']:.2f}x" if r["preset"] == "paper" else "1"
        lines.append(f"| {r['model']} | {r['preset']} | {r['params'] / 1e6:.2f} M | {r['step_s']:.3f} "
                     f"(n={r['steps']}) | {r['cpu_s']:.3f} | {r['windows_s']:.1f} | {r['mpw_s']:.1f} | {ratio} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5, help="timed steps per model and preset (after 2 warm-up)")
    ap.add_argument("--budget", type=float, default=30.0,
                    help="seconds of timed steps per model and preset; a slow model gets fewer steps (min 2)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    rows = run(args.steps, args.budget)
    print(format_table(rows))
    print()
    print(f"batch {BATCH} x ({N_LEAD}+{N_TARGET} frames x {N_CHANNELS} ch) -> ({N_TARGET} x {N_OUT}); "
          f"forward + MSE + backward + AdamW; 2 warm-up steps; {time.perf_counter() - t0:.0f} s in all")
    print(f"machine: {machine_description()}; load average {'/'.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
