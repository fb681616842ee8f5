"""A small synthetic raw (1024 Hz) ECoG participant for the preprocessing tests.

Until `neurovox.simulate` provides raw participants, this builds one with known ground truth:
per-channel high-gamma envelopes (smooth, speech-locked) modulating 70-170 Hz band-limited noise,
on top of 1/f background, a common (reference) component, 60 Hz mains and white noise, plus one
bad channel with huge noise. Audio is a 16 kHz voiced "word" at each trial.
"""

from __future__ import annotations

import numpy as np
import scipy.signal as ss

from neurovox.io.recording import Recording, RecordingMeta, make_channel_table, make_trial_table

RAW_HZ = 1024.0
AUDIO_HZ = 16000


def _pink(rng, n, n_ch, exponent=2.0):
    """Noise with power ~ 1 / f**exponent (ECoG background is close to 1/f^2), unit SD."""
    spec = np.fft.rfft(rng.standard_normal((n, n_ch)), axis=0)
    f = np.fft.rfftfreq(n, 1 / RAW_HZ)
    spec /= (np.maximum(f, 1.0) ** (exponent / 2))[:, None]
    x = np.fft.irfft(spec, n, axis=0)
    return x / x.std(axis=0)


def make_raw_recording(duration_s: float = 40.0, n_channels: int = 16, seed: int = 0, bad: int = 3,
                       line_hz: float = 60.0, n_trials: int | None = None, tasks: int = 2):
    """(Recording, gt_env (n_samples, n_channels) in volts) of a synthetic raw participant."""
    rng = np.random.default_rng(seed)
    n = int(duration_s * RAW_HZ)
    t = np.arange(n) / RAW_HZ
    n_trials = n_trials or int((duration_s - 2.0) // 1.6)
    onsets = 1.0 + np.arange(n_trials) * 1.6 + rng.uniform(0, 0.2, n_trials)
    durs = rng.uniform(0.35, 0.6, n_trials)
    keep = onsets + durs < duration_s - 0.3
    onsets, durs = onsets[keep], durs[keep]
    # ground-truth envelopes: baseline + per-channel gain x smoothed speech activity with a lag
    act = np.zeros(n)
    for on, d in zip(onsets, durs):
        act[int(on * RAW_HZ): int((on + d) * RAW_HZ)] = 1.0
    sos = ss.butter(2, 6.0, fs=RAW_HZ, output="sos")
    drive = np.stack([np.roll(ss.sosfiltfilt(sos, act), int(rng.integers(-80, 80))) for _ in range(n_channels)], 1)
    slow = ss.sosfiltfilt(ss.butter(2, 3.0, fs=RAW_HZ, output="sos"), rng.standard_normal((n, n_channels)), axis=0)
    slow /= slow.std(axis=0)
    gt_env = 4e-6 * (1.0 + rng.uniform(8.0, 15.0, n_channels) * np.clip(drive, 0, None) + 0.3 * np.abs(slow))
    carrier = ss.sosfiltfilt(ss.butter(4, [70, 170], btype="bandpass", fs=RAW_HZ, output="sos"),
                             rng.standard_normal((n, n_channels)), axis=0)
    carrier /= carrier.std(axis=0)
    common = _pink(rng, n, 1)
    raw = (gt_env * carrier + 30e-6 * _pink(rng, n, n_channels) + 15e-6 * common
           + 15e-6 * np.sin(2 * np.pi * line_hz * t)[:, None] * rng.uniform(0.5, 1.5, n_channels)
           + 5e-6 * np.sin(2 * np.pi * 2 * line_hz * t)[:, None]
           + 1e-6 * rng.standard_normal((n, n_channels)))
    bads = [False] * n_channels
    if bad is not None:
        raw[:, bad] = 5e-3 * rng.standard_normal(n)  # huge-noise bad channel
        bads[bad] = True
    # audio: a 150 Hz harmonic "vowel" during each trial + faint noise
    n_audio = int(duration_s * AUDIO_HZ)
    ta = np.arange(n_audio) / AUDIO_HZ
    audio = 1e-3 * rng.standard_normal(n_audio)
    for on, d in zip(onsets, durs):
        a, b = int(on * AUDIO_HZ), int((on + d) * AUDIO_HZ)
        tt = ta[a:b]
        f0 = 150 + 20 * np.sin(2 * np.pi * 2 * (tt - on))
        ph = 2 * np.pi * np.cumsum(f0) / AUDIO_HZ
        w = sum((1.0 / k) * np.sin(k * ph) for k in range(1, 20))
        audio[a:b] += 0.2 * w * np.hanning(b - a)
    side = int(np.sqrt(n_channels))
    ch = make_channel_table([f"E{i}" for i in range(n_channels)], "ecog", bad=bads,
                            row=np.arange(n_channels) // side, col=np.arange(n_channels) % side)
    words = ["ba", "da", "ga", "pa", "ta"]
    task_names = [f"task{k}" for k in range(tasks)]
    trials = make_trial_table(onsets, onsets + durs, [words[i % 5] for i in range(len(onsets))],
                              [task_names[(i * tasks) // len(onsets)] for i in range(len(onsets))])
    rec = Recording(neural=raw.astype(np.float32), neural_sfreq_hz=RAW_HZ, neural_kind="raw",
                    audio=audio.astype(np.float32), audio_sfreq_hz=AUDIO_HZ, channels=ch, trials=trials,
                    meta=RecordingMeta(participant_id="synth", sex="M", source_format="synthetic"), neural_unit="V")
    return rec, gt_env


def test_synthetic_recording_is_valid():
    rec, gt = make_raw_recording(duration_s=8.0, n_channels=4, bad=1)
    assert rec.n_samples == 8 * 1024 and gt.shape == (8 * 1024, 4)
    assert rec.bads == ["E1"] and rec.n_trials >= 3
