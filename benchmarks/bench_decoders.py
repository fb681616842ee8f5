"""Decoder benchmarks: training throughput, inference time and streaming latency.

- training: windows/s of one optimisation step (decoder forward + frozen synthesizer + spectral loss +
  backward + AdamW) at the reference window size (16 lead + 128 target frames x 64 channels), per model,
  causal and not; the decoder-only share (no synthesizer) is reported alongside.
- inference: ms per window of the decoder alone (eval mode, batch 16).
- streaming: per-frame latency (median, p99) of the causal LSTM and causal ResNet fed one 8 ms frame
  at a time on 1 CPU thread, and the max |streamed - whole-window| output difference.

Sizes: "small" (1 timed step, batch 2, 150 streamed frames) and "full" (5 repeats, batch 16, 1000 frames,
plus the decoder-only training throughput). Peak memory is not measured on CPU (torch's CPU allocator
has no peak counter); the synthesizer dominates the training step.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from neurovox.decoders import StreamingDecoder, build_decoder, rectangular_layout
from neurovox.decoders.losses import spectral_loss

N_LEAD, N_TARGET, N_CHANNELS = 16, 128, 64
MODELS = ("resnet", "swin", "lstm", "gru")


def _row(case: str, metric: str, value: float, unit: str, note: str = "") -> dict:
    return {"benchmark": "decoders", "case": case, "metric": metric, "value": float(value), "unit": unit, "note": note}


def _train_step_s(model, synth, batch: int, repeats: int, with_synth: bool, gen: torch.Generator) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(batch, N_LEAD + N_TARGET, N_CHANNELS, generator=gen)
    audio = 0.01 * torch.randn(batch, N_TARGET * 128, generator=gen)
    times = []
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        raw = model(x, N_TARGET)
        if with_synth:
            loss = spectral_loss(synth(raw).wave, audio, (512,))["spec_lin"]
        else:
            loss = raw.square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i:  # first step is warm-up
            times.append(time.perf_counter() - t0)
    return float(np.median(times))


def run(size: str = "small") -> list[dict]:
    from neurovox.synth import N_RAW, FormantSynth

    full = size == "full"
    repeats, batch, n_stream = (5, 16, 1000) if full else (1, 2, 150)
    n_inf = 16 if full else 4
    gen = torch.Generator().manual_seed(0)
    layout = rectangular_layout(8, 8)
    synth = FormantSynth()
    for p in synth.parameters():
        p.requires_grad_(False)
    rows = []
    threads = torch.get_num_threads()
    for name in MODELS:
        for causal in (False, True):
            torch.manual_seed(0)
            model = build_decoder(name, n_channels=N_CHANNELS, n_out=N_RAW, causal=causal, layout=layout).train()
            case = f"{name}{'-causal' if causal else ''}"
            step = _train_step_s(model, synth, batch, repeats, True, gen)
            note = f"batch {batch}, {N_LEAD}+{N_TARGET} frames x {N_CHANNELS} ch, {threads} threads, {model.n_params} params"
            rows.append(_row(case, "train_windows_per_s", batch / step, "windows/s", note + ", with synth + loss"))
            if full:
                dec_only = _train_step_s(model, synth, batch, repeats, False, gen)
                rows.append(_row(case, "train_windows_per_s_decoder_only", batch / dec_only, "windows/s", note))
            model.eval()
            x = torch.randn(n_inf, N_LEAD + N_TARGET, N_CHANNELS, generator=gen)
            with torch.no_grad():
                model(x, N_TARGET)
                ts = []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    model(x, N_TARGET)
                    ts.append(time.perf_counter() - t0)
            rows.append(_row(case, "inference_ms_per_window", 1e3 * float(np.median(ts)) / n_inf, "ms", f"batch {n_inf}"))
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
            rows.append(_row(case, "frame_latency_median", np.median(ms), "ms", f"1 thread, {n_stream} frames of 8 ms"))
            rows.append(_row(case, "frame_latency_p99", np.percentile(ms, 99), "ms", "1 thread; budget 8 ms per frame"))
            rows.append(_row(case, "stream_vs_window_max_abs_diff", diff, "raw units",
                             "0 = bit-exact; float32 summation order differs"))
    finally:
        torch.set_num_threads(threads)
    return rows


if __name__ == "__main__":
    for r in run("small"):
        print(r)
