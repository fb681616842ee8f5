"""Formant synthesizer and speech encoder speed on CPU.

Cases: synthesizer forward and forward+backward (spectral loss on the STFT of the waveform) for
1 s of speech (125 frames), batch 1 and batch 16, "wide" pitch range (134 partials, the most
expensive) and "male" (115); encoder forward throughput (frames per second) for a batch of 16 x
1 s. Reported: median wall time over repeats, real-time factor (seconds of audio rendered per
second of compute; > 1 is faster than real time) and peak memory of the forward+backward
(torch CPU allocator is not traced, so peak RSS growth is measured with tracemalloc off:
`resource.getrusage` max RSS delta, an upper bound shared with earlier cases).
Sizes: "small" 2 repeats (after a warm-up), "full" 10 repeats.
"""

from __future__ import annotations

import resource
import statistics
import time

import torch

REPEATS = {"small": 2, "full": 10}


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run(size: str = "small") -> list[dict]:
    from neurovox import dsp
    from neurovox.encoder.losses import spectral_loss
    from neurovox.encoder.model import EncoderConfig, SpeechEncoder
    from neurovox.synth import N_RAW, FormantSynth, SynthConfig

    repeats = REPEATS[size]
    n_frames = 125  # 1 s
    rows = []
    gen = torch.Generator().manual_seed(0)
    for voice in ("wide", "male"):
        synth = FormantSynth(SynthConfig(pitch_range=voice, formant_range=voice))
        for batch in (1, 16):
            raw = torch.randn(batch, n_frames, N_RAW, generator=gen)
            target = torch.rand(batch, n_frames, 256, generator=gen)
            case = f"{voice} ({synth.n_partials} partials), batch {batch}, 1 s"

            def fwd():
                with torch.no_grad():
                    synth(raw)

            def fwd_bwd():
                r = raw.clone().requires_grad_(True)
                out = synth(r)
                spectral_loss(out.spec_power, target).backward()

            rss0 = _max_rss_mb()
            t_f = _median_time(fwd, repeats)
            t_fb = _median_time(fwd_bwd, repeats)
            rss1 = _max_rss_mb()
            audio_s = batch * n_frames / dsp.FRAME_RATE_HZ
            rows += [
                {"benchmark": "synth", "case": case, "metric": "forward time", "value": round(t_f * 1e3, 1), "unit": "ms"},
                {"benchmark": "synth", "case": case, "metric": "forward real-time factor",
                 "value": round(audio_s / t_f, 1), "unit": "x", "note": "audio seconds per compute second"},
                {"benchmark": "synth", "case": case, "metric": "forward+backward time", "value": round(t_fb * 1e3, 1),
                 "unit": "ms"},
                {"benchmark": "synth", "case": case, "metric": "forward+backward real-time factor",
                 "value": round(audio_s / t_fb, 1), "unit": "x"},
                {"benchmark": "synth", "case": case, "metric": "peak RSS growth", "value": round(rss1 - rss0, 1),
                 "unit": "MB", "note": "max-RSS delta over this case (0 = fits in earlier peak)"},
            ]
    enc = SpeechEncoder(EncoderConfig()).eval()
    spec = torch.rand(16, n_frames, 256, generator=gen)

    def enc_fwd():
        with torch.no_grad():
            enc(spec)

    t_e = _median_time(enc_fwd, repeats)
    rows.append({"benchmark": "synth", "case": f"encoder ({enc.n_parameters / 1e6:.2f} M params), batch 16 x 1 s",
                 "metric": "encoder throughput", "value": round(16 * n_frames / t_e), "unit": "frames/s",
                 "note": f"{16 / t_e:.0f} s of speech per s"})
    return rows


if __name__ == "__main__":
    for r in run("small"):
        print(r)
