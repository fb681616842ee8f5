"""`neurovox replay`: a recording played out as live LSL streams, at its own rate (or `speed` times it).

The neural outlet carries the file's neural samples (raw voltage or high-gamma frames, as recorded) with the
channel labels, types and unit in its description; a second outlet, NAME_audio, carries the microphone
audio. Samples are pushed in 8 ms blocks stamped with the LSL clock at the time each block's last sample
is due, so a consumer measures latency against the time the data "happened".
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from neurovox.errors import ConfigError
from neurovox.realtime.lsl import audio_outlet, import_pylsl, neural_outlet

BLOCK_S = 0.008


def replay(data_path: str | Path, name: str, *, speed: float = 1.0, seconds: float | None = None,
           start_s: float = 0.0, with_audio: bool = True, stop: Any = None, progress: bool = True) -> dict[str, Any]:
    """Stream `data_path` until its end, `seconds` of recording time, or `stop.is_set()`; returns counts."""
    from neurovox.io import read_recording

    if speed <= 0:
        raise ConfigError(f"--speed must be positive (1.0 = real time), got {speed}.")
    rec = read_recording(data_path)
    pylsl = import_pylsl()
    rate = float(rec.neural_sfreq_hz)
    unit = "V" if rec.neural_kind == "raw" else rec.neural_unit
    outlet = neural_outlet(name, rec.channels["name"].astype(str).tolist(), rec.channels["type"].astype(str).tolist(),
                           unit, rate, f"neurovox-replay-{name}")
    audio_out = audio_outlet(f"{name}_audio", rec.audio_sfreq_hz, f"neurovox-replay-{name}-audio") if with_audio else None
    first = int(round(start_s * rate))
    last = rec.n_samples if seconds is None else min(rec.n_samples, first + int(round(seconds * rate)))
    block = max(1, int(round(BLOCK_S * rate)))
    if progress:
        print(f"replaying {data_path} as LSL stream {name!r} ({rec.n_channels} channels, {rec.neural_kind} at {rate:g} Hz"
              f"{', audio on ' + repr(name + '_audio') if with_audio else ''}) for {(last - first) / rate:.1f} s at "
              f"{speed:g}x", flush=True)
    time.sleep(0.5)  # let consumers connect before the first sample
    t0, n_pushed = pylsl.local_clock(), 0
    a_ratio = rec.audio_sfreq_hz / rate
    for s in range(first, last, block):
        if stop is not None and stop.is_set():
            break
        e = min(last, s + block)
        due = t0 + (e - first) / rate / speed
        wait = due - pylsl.local_clock()
        if wait > 0:
            time.sleep(wait)
        outlet.push_chunk(np.ascontiguousarray(rec.neural[s:e], dtype=np.float32), due)
        if audio_out is not None:
            a0, a1 = int(round(s * a_ratio)), int(round(e * a_ratio))
            audio_out.push_chunk(np.ascontiguousarray(rec.audio[a0:a1, None], dtype=np.float32), due)
        n_pushed += e - s
    return {"samples": n_pushed, "seconds": n_pushed / rate, "rate_hz": rate, "n_channels": rec.n_channels}
