"""Preprocessing throughput: raw voltage -> high gamma, offline and causal, and the window loader.

Sizes: "small" = 2 minutes x 64 channels at 1024 Hz (3 repeats); "full" = 25 minutes x 128 channels
(1 repeat, the size of a long clinical session). Reported: wall time, throughput in
channel-seconds of raw signal per second, and peak traced memory (tracemalloc, numpy buffers
included) on top of the input array. The signal is white + 1/f^2 noise with 60 Hz mains (content
does not change the cost of the filters).
"""

from __future__ import annotations

import statistics
import time
import tracemalloc

import numpy as np

SIZES = {"small": (120.0, 64, 3), "full": (1500.0, 128, 1)}


def _raw_recording(duration_s: float, n_channels: int):
    from neurovox.io.recording import Recording, RecordingMeta, make_channel_table, make_trial_table

    fs = 1024.0
    n = int(duration_s * fs)
    rng = np.random.default_rng(0)
    raw = rng.standard_normal((n, n_channels), dtype=np.float32) * 1e-6
    brown = np.cumsum(rng.standard_normal(n, dtype=np.float32)) * 1e-7
    raw += (brown - brown.mean())[:, None] + 15e-6 * np.sin(2 * np.pi * 60 * np.arange(n) / fs, dtype=np.float32)[:, None]
    audio = np.zeros(int(duration_s * 16000), np.float32)
    onsets = np.arange(1.0, duration_s - 1.0, 2.0)
    return Recording(neural=raw, neural_sfreq_hz=fs, neural_kind="raw", audio=audio, audio_sfreq_hz=16000.0,
                     channels=make_channel_table([f"E{i}" for i in range(n_channels)], "ecog"),
                     trials=make_trial_table(onsets, onsets + 0.5, ["w"] * len(onsets)),
                     meta=RecordingMeta(participant_id="bench"), neural_unit="V")


def _loader_rows(repeats: int) -> list[dict]:
    import torch

    from neurovox.preprocess import Normalizer, PrepareConfig, WindowDataset, make_split, prepare
    from neurovox.preprocess.datasets import DataLoader

    rec = _raw_recording(120.0, 64)
    prep = prepare(rec, PrepareConfig(praat=False), use_cache=False)
    split = make_split(prep, "kfold", fold=0, n_folds=5)
    norm = Normalizer().fit(prep.neural, split.train_frame_mask)
    ds = WindowDataset(prep, split, norm, "train", generator=torch.Generator().manual_seed(0))
    rows = []
    for workers in (0, 2):
        times = []
        for _ in range(repeats):
            loader = DataLoader(ds, batch_size=8, shuffle=True, num_workers=workers,
                                generator=torch.Generator().manual_seed(0))
            t0 = time.perf_counter()
            n_batches = sum(1 for _ in loader)
            times.append((time.perf_counter() - t0) / max(n_batches, 1))
        rows.append({"benchmark": "preprocess", "case": f"loader num_workers={workers}", "metric": "time per batch",
                     "value": 1e3 * statistics.median(times), "unit": "ms",
                     "note": f"batch 8 windows of 144 frames x 64 ch, one epoch ({len(ds)} windows), incl. worker start"})
    return rows


def run(size: str = "small") -> list[dict]:
    from neurovox.preprocess import HighGammaConfig, extract_high_gamma

    duration_s, n_channels, repeats = SIZES[size]
    rec = _raw_recording(duration_s, n_channels)
    rows = []
    for causal in (False, True):
        cfg = HighGammaConfig(causal=causal, zscore="none", line_noise_hz=60.0)
        times, peaks = [], []
        for _ in range(repeats):
            tracemalloc.start()
            t0 = time.perf_counter()
            out = extract_high_gamma(rec, cfg)
            times.append(time.perf_counter() - t0)
            peaks.append(tracemalloc.get_traced_memory()[1] / 2**20)
            tracemalloc.stop()
            del out
        t = statistics.median(times)
        case = f"{'causal' if causal else 'offline'} {duration_s / 60:g} min x {n_channels} ch @ 1024 Hz"
        note = f"median of {repeats}; input {rec.neural.nbytes / 2**20:.0f} MiB float32"
        rows += [
            {"benchmark": "preprocess", "case": case, "metric": "time", "value": t, "unit": "s", "note": note},
            {"benchmark": "preprocess", "case": case, "metric": "throughput", "value": duration_s * n_channels / t,
             "unit": "channel-s/s", "note": note},
            {"benchmark": "preprocess", "case": case, "metric": "peak traced memory", "value": max(peaks),
             "unit": "MiB", "note": "tracemalloc peak during extraction (beyond the input)"},
        ]
    if size == "small":
        rows += _loader_rows(3)
    return rows


if __name__ == "__main__":
    import sys

    for row in run(sys.argv[1] if len(sys.argv) > 1 else "small"):
        print(row)
