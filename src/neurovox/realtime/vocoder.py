"""A frame-by-frame vocoder without look-ahead for streamed mel spectrograms.

Griffin-Lim iterates over the whole spectrogram, so it cannot stream. `FrameVocoder.push(mel_db)` turns one
8 ms frame (80 mel bins, dB) into the next 128 audio samples at once: linear magnitudes from the mel powers
(the same non-negative pseudo-inverse as `neurovox.decoders.linear.mel_db_to_audio`), phases advanced
from frame to frame at each bin's centre frequency (a phase vocoder; seeded random start phases), an
inverse FFT under a Hann window of 512 samples, and overlap-add. Frame t's window starts at sample 128 t,
so the 128 samples returned after frame t hold only frames <= t: no future frame is waited for, at the
price of rendering each frame over the next 32 ms. Its output is a deterministic function of the frames
pushed, so offline and streamed audio of the same frames are identical.
"""

from __future__ import annotations

import numpy as np

from neurovox import dsp
from neurovox.errors import DataError


class FrameVocoder:
    """Stateful mel dB frame (80,) -> audio (128,) at 16 kHz."""

    def __init__(self, n_mels: int = dsp.N_MELS, seed: int = 0):
        fb = dsp.mel_filterbank(n_mels, dsp.N_BINS).astype(np.float64)                # (80, 256)
        weights = fb / np.maximum(fb.sum(axis=0, keepdims=True), 1e-12)
        self._inverse = weights.T / np.maximum(fb.sum(axis=1), 1e-12)[None, :]     # (256, 80)
        self._window = np.hanning(dsp.N_FFT + 1)[:-1]
        # OLA of squared Hann windows at hop N_FFT / 4 sums to 1.5: divide it out
        self._gain = 1.0 / float(np.sum(self._window ** 2) / dsp.HOP_SAMPLES)
        self._advance = 2 * np.pi * np.arange(dsp.N_BINS + 1) * dsp.HOP_SAMPLES / dsp.N_FFT
        self.n_mels = n_mels
        self.seed = seed
        self.reset()

    def reset(self) -> None:
        self._phase = np.random.default_rng(self.seed).uniform(-np.pi, np.pi, dsp.N_BINS + 1)
        self._ola = np.zeros(dsp.N_FFT)

    def push(self, mel_db: np.ndarray) -> np.ndarray:
        mel_db = np.asarray(mel_db, np.float64)
        if mel_db.shape != (self.n_mels,):
            raise DataError(f"FrameVocoder.push expects one frame of {self.n_mels} mel bins, got shape {mel_db.shape}.")
        power = self._inverse @ np.power(10.0, np.clip(mel_db, -100.0, 100.0) / 10.0)
        mag = np.sqrt(np.maximum(np.append(power, power[-1]), 0.0))              # + Nyquist bin
        self._phase = np.angle(np.exp(1j * (self._phase + self._advance)))
        frame = np.fft.irfft(mag * np.exp(1j * self._phase), n=dsp.N_FFT) * self._window * self._gain
        self._ola += frame
        out = self._ola[:dsp.HOP_SAMPLES].copy()
        self._ola = np.concatenate([self._ola[dsp.HOP_SAMPLES:], np.zeros(dsp.HOP_SAMPLES)])
        return out.astype(np.float32)

    def run(self, mel_db: np.ndarray) -> np.ndarray:
        """Vocode a whole sequence (n_frames, n_mels) from a fresh state -> (n_frames * 128,)."""
        self.reset()
        return np.concatenate([self.push(m) for m in np.asarray(mel_db)]) if len(mel_db) else np.zeros(0, np.float32)
