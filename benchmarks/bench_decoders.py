"""Decoder benchmarks: training throughput and peak memory, inference time and streaming latency.

- training (item 3): per deep model (ResNet3D, Swin3D, LSTM, and GRU at full size; causal and not),
  at the reference window size (16 lead + 128 target frames x 64 channels, default model sizes), in a
  fresh process per model (`_worker.py`): windows/s of one optimisation step of the decoder
  alone (the reference phase of the curriculum) and through the frozen synthesizer + spectral loss
  (the spectral phase), and the peak resident memory of each (peak RSS from /proc/self/status with
  the high-water mark reset before the steps, minus the RSS before the first step: torch's CPU
  allocator is invisible to tracemalloc). The linear baseline: windows/s of its fit (stacking +
  PCA + least squares, numpy/scikit-learn, so tracemalloc does see its memory and is used).
- inference: ms per window of the decoder alone (eval mode, batch 4 small / 16 full).
- streaming (item 4): per-frame latency (median, p99) of the causal LSTM and causal ResNet fed one
  8 ms frame at a time on 1 CPU thread, and the max |streamed - whole-window| output difference.

Sizes: "small" (batch 2, 2 timed steps through the synthesizer and 5 without, each after a warm-up
step, 150 streamed frames, no GRU; about 110 s of CPU) and "full" (batch 16, 5 and 7 timed steps,
1000 streamed frames, GRU included; about 10 min).
"""

from __future__ import annotations

import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _worker import run_case  # noqa: E402

N_LEAD, N_TARGET, N_CHANNELS = 16, 128, 64
SIZES = {
    "small": {"models": ("resnet", "swin", "lstm"), "batch": 2, "repeats": 2, "repeats_fast": 5, "n_stream": 150,
              "n_inference": 4, "n_linear_windows": 90},
    "full": {"models": ("resnet", "swin", "lstm", "gru"), "batch": 16, "repeats": 5, "repeats_fast": 7,
             "n_stream": 1000, "n_inference": 16, "n_linear_windows": 900},
}


def _row(case: str, metric: str, value: float, unit: str, note: str = "") -> dict:
    return {"benchmark": "decoders", "case": case, "metric": metric, "value": float(value), "unit": unit, "note": note}


def _training_rows(s: dict) -> list[dict]:
    rows = []
    batch = s["batch"]
    for name in s["models"]:
        for causal in (False, True):
            case = f"{name}{'-causal' if causal else ''}"
            r = run_case({"model": name, "causal": causal, "n_channels": N_CHANNELS, "grid": [8, 8], "batch": batch,
                          "repeats": s["repeats"], "repeats_decoder_only": s["repeats_fast"], "synth": True,
                          "n_inference": s["n_inference"]})
            note = (f"batch {batch}, {N_LEAD}+{N_TARGET} frames x {N_CHANNELS} ch, {r['threads']} threads, "
                    f"{r['n_params']} params")
            mem_note = "peak RSS - RSS before the steps, fresh process" + ("" if r["hwm_reset"] else " (getrusage)")
            rows += [
                _row(case, "train windows/s, decoder only", batch / r["decoder_only_step_s"], "windows/s",
                     note + f", median of {s['repeats_fast']}; reference phase; {r['decoder_only_cpu_s']:.2f} CPU s/step"),
                _row(case, "train windows/s, with synth", batch / r["synth_step_s"], "windows/s",
                     note + f", median of {s['repeats']}; synth + spectral loss; {r['synth_cpu_s']:.2f} CPU s/step"),
                _row(case, "train peak memory, decoder only", r["decoder_only_growth_mib"], "MiB", mem_note),
                _row(case, "train peak memory, with synth", r["synth_growth_mib"], "MiB",
                     mem_note + f"; process peak {r['synth_peak_rss_mib']:.0f} MiB"),
                _row(case, "inference per window", r["inference_ms_per_window"], "ms",
                     f"batch {s['n_inference']}, median of {s['repeats_fast']}"),
            ]
    return rows


def _linear_rows(s: dict) -> list[dict]:
    from neurovox.decoders import LinearBaseline

    n = s["n_linear_windows"]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, N_LEAD + N_TARGET, N_CHANNELS), dtype=np.float32)
    y = rng.standard_normal((n, N_TARGET, 80), dtype=np.float32)
    rows = []
    for causal in (False, True):
        times, peaks = [], []
        for _ in range(2):
            tracemalloc.start()
            t0 = time.perf_counter()
            LinearBaseline(causal).fit(x, y)
            times.append(time.perf_counter() - t0)
            peaks.append(tracemalloc.get_traced_memory()[1] / 2**20)
            tracemalloc.stop()
        case = f"linear{'-causal' if causal else ''}"
        note = f"fit on {n} windows ({N_LEAD}+{N_TARGET} frames x {N_CHANNELS} ch), 9 lags, PCA 50; median of 2"
        rows += [_row(case, "train windows/s (fit)", n / statistics.median(times), "windows/s", note),
                 _row(case, "train peak memory (fit)", max(peaks), "MiB", "tracemalloc peak (numpy + scikit-learn)")]
    return rows


def _streaming_rows(n_stream: int) -> list[dict]:
    from neurovox.decoders import StreamingDecoder, build_decoder, rectangular_layout
    from neurovox.synth import N_RAW

    gen = torch.Generator().manual_seed(0)
    layout = rectangular_layout(8, 8)
    rows = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for name in ("lstm", "resnet"):
            torch.manual_seed(0)
            model = build_decoder(name, n_channels=N_CHANNELS, n_out=N_RAW, causal=True, layout=layout).eval()
            x = torch.randn(1, n_stream, N_CHANNELS, generator=gen)
            stream = StreamingDecoder(model)
            for f in x[0, :20]:  # warm-up
                stream.push(f)
            stream.reset()
            lat = []
            outs = []
            for f in x[0]:
                t0 = time.perf_counter()
                outs.append(stream.push(f))
                lat.append(time.perf_counter() - t0)
            with torch.no_grad():
                whole = model.forward_frames(x)[0]
            diff = float((torch.stack(outs) - whole).abs().max())
            ms = np.asarray(lat) * 1e3
            case = f"{name}-causal-stream"
            rows.append(_row(case, "frame latency median", np.median(ms), "ms", f"1 thread, {n_stream} frames of 8 ms"))
            rows.append(_row(case, "frame latency p99", np.percentile(ms, 99), "ms", "1 thread; budget 8 ms per frame"))
            rows.append(_row(case, "stream vs window max abs diff", diff, "raw units",
                             "0 = bit-exact; float32 summation order differs"))
    finally:
        torch.set_num_threads(threads)
    return rows


def run(size: str = "small") -> list[dict]:
    s = SIZES[size]
    return _training_rows(s) + _linear_rows(s) + _streaming_rows(s["n_stream"])


if __name__ == "__main__":
    for r in run(sys.argv[1] if len(sys.argv) > 1 else "small"):
        print(r)
