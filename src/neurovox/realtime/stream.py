"""`neurovox stream`: decode a live LSL stream frame by frame with a causal decoder run, speech out.

For each incoming high-gamma frame (125 Hz): the run's training normaliser, one step of its causal decoder
(`StreamingDecoder`: carried state, nothing recomputed), its mel frame, and 128 samples of a vocoder
without look-ahead (`FrameVocoder`) pushed to an LSL audio outlet and/or a WAV file.

Latency of a frame = the LSL time its audio is pushed minus the (clock-corrected) LSL time stamp of the
frame's neural sample; the decoder's and vocoder's own compute is reported separately. A gap in the
incoming time stamps is filled by repeating the last frame (counted as dropped); a stream that stops
sending is waited for (counted as a stall) and decoding resumes when it comes back. Ctrl+C ends the run
cleanly: the WAV is closed (complete and valid) and the statistics written.

Input: a high-gamma stream (what `neurovox replay` sends for a high-gamma recording), or raw voltage, which
goes through the run's own causal high-gamma extraction (settings, channel table and line frequency from
RUN/stream_input.json, written by causal runs). Before the first live frame the decoder and vocoder run once
over silent frames, so their start-up cost is not paid on live data.
"""

from __future__ import annotations

import json
import sys
from fractions import Fraction
import time
from pathlib import Path
from typing import Any

import numpy as np

from neurovox import dsp
from neurovox.errors import ConfigError, DataError, RunError
from neurovox.realtime.lsl import audio_outlet, channel_labels, import_pylsl, resolve
from neurovox.realtime.vocoder import FrameVocoder
from neurovox.utils.files import atomic_path, write_json_atomic


MAX_FILL_S = 0.25  # a gap up to this long is filled with the last frame (dropped samples); longer: the stream was lost


def load_streaming_run(run_dir: str | Path) -> Any:
    """The run's DeepTrialDecoder, checked for real-time use (causal, mel head, a streaming implementation)."""
    from neurovox.decoders.decode import DeepTrialDecoder, load_trial_decoder

    dec = load_trial_decoder(run_dir)
    if not isinstance(dec, DeepTrialDecoder):
        raise ConfigError(f"Run {str(run_dir)!r} holds the linear baseline, which has no frame-by-frame implementation; "
                          "stream a causal lstm, gru or resnet run.")
    if not dec.causal:
        raise ConfigError(f"Run {str(run_dir)!r} is not causal: a real-time decoder may not see the future. Train one "
                          "with `neurovox train decoder --causal`.")
    if dec.target != "mel":
        raise ConfigError(f"Run {str(run_dir)!r} outputs formant parameters; their synthesizer looks 16 ms ahead, so "
                          "streaming supports mel-head runs (--target mel, the default).")
    if not hasattr(dec.model, "step"):
        raise ConfigError(f"The {dec.model_name} model has no streaming implementation; stream a causal lstm, gru or "
                          "resnet run.")
    return dec


def run_stream(run_dir: str | Path, source: str, *, out_wav: str | Path | None = None, out_lsl: str | None = None,
               seconds: float | None = None, stats_path: str | Path | None = None, resolve_timeout_s: float = 10.0,
               max_wait_s: float | None = None, status: bool = True, keep_arrays: bool = False) -> dict[str, Any]:
    """Decode stream `source` with run `run_dir` until `seconds` of stream time (or Ctrl+C, or `max_wait_s`
    without data). Returns the statistics (and, with keep_arrays, the frames received, mel frames and audio)."""
    import torch

    from neurovox.errors import Interrupted
    from neurovox.decoders.streaming import StreamingDecoder

    if out_wav is None and out_lsl is None and not keep_arrays:
        raise ConfigError("Nothing to write: give --out-wav FILE and/or --out-lsl NAME.")
    dec = load_streaming_run(run_dir)
    pylsl = import_pylsl()
    info = resolve(source, resolve_timeout_s)
    n_channels = len(dec.normalizer.mean)
    expected = _stream_input(run_dir, n_channels)
    if info.channel_count() != expected["n_channels"]:
        raise DataError(f"Stream {source!r} has {info.channel_count()} channels; run {str(run_dir)!r} was trained on "
                        f"{expected['n_channels']}. Stream the same electrodes the decoder was trained on.")
    if abs(info.nominal_srate() - expected["rate_hz"]) > 1e-6:
        raise DataError(f"Stream {source!r} runs at {info.nominal_srate():g} Hz; run {str(run_dir)!r} was trained on "
                        f"{expected['kind']} at {expected['rate_hz']:g} Hz"
                        + (" (raw voltage? this run was trained on high gamma: stream high-gamma frames)"
                           if expected["kind"] == "high_gamma" and info.nominal_srate() > dsp.FRAME_RATE_HZ else "")
                        + ". Stream what the decoder was trained on.")
    # a 30 s buffer: a consumer that falls behind decodes late (the latency shows it) instead of losing samples
    inlet = pylsl.StreamInlet(info, max_buflen=30, recover=True)
    names = expected.get("channel_names")
    stream_names = channel_labels(inlet.info(timeout=resolve_timeout_s))  # the full description (resolve has headers only)
    if names and stream_names and stream_names != names:
        diff = next(i for i, (a, b) in enumerate(zip(stream_names, names)) if a != b)
        raise DataError(f"Stream {source!r}'s channel {diff} is labelled {stream_names[diff]!r}; run {str(run_dir)!r} "
                        f"expects {names[diff]!r} there. Stream the electrodes in the order of the training recording.")
    extractor = _causal_extractor(expected) if expected["kind"] == "raw" else None
    labels = stream_names
    # one frame is a few small matrix products: one thread is faster and steadier than several (BENCHMARKS.md)
    torch.set_num_threads(1)
    stream = StreamingDecoder(dec.model)
    vocoder = FrameVocoder()
    mean_db = dec.mel_mean_db.cpu().numpy().astype(np.float64)
    sd_db = dec.mel_sd_db.cpu().numpy().astype(np.float64)
    _warm_up(dec, mean_db, n_channels)
    inlet.open_stream(timeout=resolve_timeout_s)
    offset = inlet.time_correction(timeout=2.0)
    inlet.flush()  # start from live data: what queued while connecting would only add latency
    outlet = audio_outlet(out_lsl, dsp.SAMPLE_RATE_HZ, f"neurovox-stream-{out_lsl}") if out_lsl else None
    period = 1.0 / dsp.FRAME_RATE_HZ
    want = None if seconds is None else int(round(seconds * dsp.FRAME_RATE_HZ))
    counts = {"frames": 0, "filled_frames": 0, "late_frames": 0, "stalls": 0, "resumed_after_gap": 0}
    latency_ms, compute_ms, frames_in, mels, audio_out = [], [], [], [], []
    last_frame: np.ndarray | None = None
    first_raw: np.ndarray | None = None
    last_ts: float | None = None
    wav = None

    def process(frame: np.ndarray, ts: float) -> None:
        t_start = time.perf_counter()
        x = dec.normalizer.transform(frame[None])[0]
        out = stream.push(x).numpy().astype(np.float64)
        mel_db = out * sd_db + mean_db
        samples = vocoder.push(mel_db)
        compute_ms.append((time.perf_counter() - t_start) * 1e3)
        if outlet is not None:
            outlet.push_chunk(samples[:, None])
        if wav is not None:
            wav.write(samples)
        lat = (pylsl.local_clock() - (ts + offset)) * 1e3
        latency_ms.append(lat)
        counts["frames"] += 1
        counts["late_frames"] += int(lat > 2 * period * 1e3)
        if keep_arrays:
            frames_in.append(frame.copy())
            mels.append(mel_db)
            audio_out.append(samples)

    tty = sys.stdout.isatty()  # a terminal gets one status line rewritten in place; a log a line every 5 s

    def report(final: bool = False) -> None:
        if not status:
            return
        lat = np.asarray(latency_ms[-500:]) if latency_ms else np.zeros(1)
        sys.stdout.write(("\r" if tty else "") + f"frames {counts['frames']}  latency median {np.median(lat):.1f} ms p99 "
                         f"{np.percentile(lat, 99):.1f} ms  compute {np.median(compute_ms[-500:] or [0]):.2f} ms/frame  "
                         f"dropped {counts['filled_frames']}  stalls {counts['stalls']}   " + ("\n" if final or not tty else ""))
        sys.stdout.flush()

    import contextlib

    with contextlib.ExitStack() as stack:
        if out_wav is not None:
            import soundfile as sf

            tmp = stack.enter_context(atomic_path(Path(out_wav)))  # renamed only once closed: never a half file
            wav = stack.enter_context(sf.SoundFile(str(tmp), "w", samplerate=dsp.SAMPLE_RATE_HZ, channels=1,
                                                   subtype="PCM_16", format="WAV"))
        if status:
            print(f"decoding LSL stream {source!r} ({n_channels} channels{', labels ' + labels[0] + '...' if labels else ''}) "
                  f"with {dec.model_name} (causal) -> {out_wav or ''}{' + LSL ' + repr(out_lsl) if out_lsl else ''}; "
                  "Ctrl+C stops", flush=True)
        waited, next_report = 0.0, time.monotonic()
        # raw samples per high-gamma frame as an exact fraction (the extractor's own frame boundaries)
        ratio = Fraction(expected["rate_hz"]).limit_denominator(10_000) / Fraction(dsp.FRAME_RATE_HZ).limit_denominator(10_000)
        try:
            while want is None or counts["frames"] < want:
                # block for the next sample only, then take whatever else is already there: pull_chunk with a
                # timeout waits out the timeout, which would add up to 100 ms of latency
                sample, sample_ts = inlet.pull_sample(timeout=0.1)
                chunk, stamps = inlet.pull_chunk(timeout=0.0) if sample_ts is not None else ([], [])
                if sample_ts is not None:
                    chunk, stamps = [sample] + list(chunk), [sample_ts] + list(stamps)
                if not stamps:
                    waited += 0.1
                    if waited >= 1.0 and waited - 0.1 < 1.0:
                        counts["stalls"] += 1
                        if status:
                            print(f"\nstream {source!r} stalled: waiting for it to resume ...", flush=True)
                    if max_wait_s is not None and waited >= max_wait_s:
                        break
                    continue
                waited = 0.0
                samples_in, stamps = np.asarray(chunk, np.float32), np.asarray(stamps)
                if extractor is not None:  # raw voltage -> causal high-gamma frames, each stamped with its last sample
                    if keep_arrays and first_raw is None:
                        first_raw = samples_in[0].copy()  # where in the recording the extraction started (tests)
                    n_before, first = extractor.n_samples_seen, extractor.n_frames_emitted
                    new_frames = extractor.process(samples_in)
                    last = [-((-(i + 1) * ratio.numerator) // ratio.denominator) - 1 - n_before
                            for i in range(first, first + len(new_frames))]   # index of each frame's last sample
                    samples_in, stamps = new_frames, stamps[np.clip(np.asarray(last, int), 0, len(stamps) - 1)]
                for frame, ts in zip(samples_in, stamps):
                    gap_s = 0.0 if last_ts is None else ts - last_ts
                    if last_frame is not None and 1.5 * period < gap_s <= MAX_FILL_S:
                        n_gap = int(round(gap_s / period)) - 1  # a few missing frames: hold the last one
                        for k in range(n_gap):
                            if want is not None and counts["frames"] >= want:
                                break
                            counts["filled_frames"] += 1
                            process(last_frame, last_ts + (k + 1) * period)
                    elif gap_s > MAX_FILL_S:  # the stream was gone: carry on from its new samples
                        counts["resumed_after_gap"] += 1
                    if want is not None and counts["frames"] >= want:
                        break
                    process(frame, ts)
                    last_frame, last_ts = frame, ts
                if time.monotonic() >= next_report:
                    report()
                    next_report = time.monotonic() + (0.5 if tty else 5.0)
        except (KeyboardInterrupt, Interrupted):  # Ctrl+C ends a session: close the WAV, write the statistics
            pass
        finally:
            report(final=True)
            inlet.close_stream()
    lat, comp = np.asarray(latency_ms), np.asarray(compute_ms)
    stats = {"run": str(Path(run_dir).resolve()), "source": source, "model": dec.model_name, **counts,
             "stream_seconds": counts["frames"] * period,
             "latency_ms": _summary(lat), "compute_ms_per_frame": _summary(comp),
             "latency_definition": "LSL time the frame's audio was pushed minus the clock-corrected LSL time stamp of "
                                   "its neural sample", "torch_threads": torch.get_num_threads()}
    if stats_path is not None:
        write_json_atomic(Path(stats_path), stats)
    if keep_arrays:
        stats["arrays"] = {"frames": np.asarray(frames_in), "mel_db": np.asarray(mels), "first_raw_sample": first_raw,
                           "audio": np.concatenate(audio_out) if audio_out else np.zeros(0, np.float32),
                           "latency_ms": lat, "compute_ms": comp}
    return stats


def _warm_up(dec: Any, mean_db: np.ndarray, n_channels: int, n_frames: int = 50) -> None:
    """Run throwaway copies of the decoder and vocoder over `n_frames` silent frames before the first live one.

    The first calls of a model allocate its buffers and build its kernels (measured: the causal ResNet's first
    frame took ~300 ms); paid on live data, that delay queues every following frame behind it and the backlog
    drains over the next ~100 frames, which was the whole 1 % latency tail of the benchmark."""
    from neurovox.decoders.streaming import StreamingDecoder

    warm, vocoder = StreamingDecoder(dec.model), FrameVocoder()
    zeros = np.zeros(n_channels, np.float32)
    for _ in range(n_frames):
        warm.push(dec.normalizer.transform(zeros[None])[0])
        vocoder.push(mean_db)


def _stream_input(run_dir: str | Path, n_channels: int) -> dict[str, Any]:
    """RUN/stream_input.json (what the stream must carry); runs saved before it existed: high gamma at 125 Hz."""
    path = Path(run_dir) / "stream_input.json"
    info = json.loads(path.read_text()) if path.exists() else {"kind": "high_gamma", "rate_hz": dsp.FRAME_RATE_HZ}
    info["n_channels"] = len(info["channel_names"]) if info.get("channel_names") else n_channels
    return info


def _causal_extractor(expected: dict[str, Any]) -> Any:
    """The run's causal high-gamma extraction for a raw stream (same settings, re-reference and notch)."""
    import pandas as pd

    from neurovox.preprocess.config import HighGammaConfig
    from neurovox.preprocess.highgamma import CausalHighGamma
    from neurovox.preprocess.reference import make_reference

    cfg = HighGammaConfig(**expected["high_gamma"])
    channels = pd.DataFrame(expected["channels"])
    return CausalHighGamma(expected["rate_hz"], make_reference(channels, cfg.ecog_reference, cfg.seeg_reference), cfg,
                           expected["line_hz"])


def _summary(x: np.ndarray) -> dict[str, float | None]:
    if len(x) == 0:
        return {"median": None, "p99": None, "max": None, "mean": None}
    return {"median": float(np.median(x)), "p99": float(np.percentile(x, 99)), "max": float(x.max()),
            "mean": float(x.mean())}


def offline_reference(run_dir: str | Path, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same frames decoded offline: the whole sequence through the causal model at once (mel dB
    (n, 80)) and `FrameVocoder.run` over it (audio (n * 128,)): what streaming must reproduce."""
    import torch

    dec = load_streaming_run(run_dir)
    x = torch.from_numpy(dec.normalizer.transform(np.asarray(frames, np.float32))[None].astype(np.float32))
    with torch.no_grad():
        out = dec.model.forward_frames(x)[0]
    mel = (out * dec.mel_sd_db + dec.mel_mean_db).numpy().astype(np.float64)
    if not np.all(np.isfinite(mel)):
        raise RunError("Offline decoding produced NaN/Inf.")
    return mel, FrameVocoder().run(mel)
