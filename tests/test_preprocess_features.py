"""Speech features against librosa / torch / parselmouth definitions, and the noise spectrum."""

from __future__ import annotations

import functools

import librosa
import numpy as np
import parselmouth
import torch

from neurovox import dsp
from neurovox.preprocess import PrepareConfig, compute_speech_features, whisper_log_mel
from neurovox.preprocess.speech import frame_times_s, noise_frame_mask, noise_spectrum, swpd_log_mel
from tests.conftest import make_raw_recording


@functools.lru_cache(maxsize=None)
def _audio() -> np.ndarray:
    rec, _ = make_raw_recording(6.0, 4, seed=5, bad=None)
    return rec.audio[: 6 * 16000]


def test_power_and_mel_spectrograms_match_librosa():
    audio = _audio()
    feats = compute_speech_features(audio, PrepareConfig(praat=False))
    n_frames = len(audio) // 128
    stft = librosa.stft(audio.astype(np.float64), n_fft=512, hop_length=128, win_length=512, window="hann",
                        center=True, pad_mode="constant")
    ref = (np.abs(stft) ** 2)[:256, :n_frames].T
    assert feats.spec_power.shape == (n_frames, 256)
    np.testing.assert_allclose(feats.spec_power, ref, rtol=2e-3, atol=1e-6 * ref.max())
    mel_ref = librosa.feature.melspectrogram(S=np.abs(stft[:, :n_frames]) ** 2, sr=16000, n_fft=512, n_mels=80,
                                             fmin=0.0, fmax=8000.0)
    # dsp's mel drops the Nyquist bin; its Slaney weight there is zero for an 8 kHz fmax
    np.testing.assert_allclose(feats.mel_db, 10 * np.log10(mel_ref.T + 1e-10), atol=2e-3)
    np.testing.assert_allclose(feats.mel23_log, np.log(np.maximum(
        ref @ librosa.filters.mel(sr=16000, n_fft=512, n_mels=23)[:, :256].T, 1e-10)), atol=1e-3)
    assert np.array_equal(swpd_log_mel(feats.spec_power), feats.mel23_log)


def test_whisper_log_mel_matches_its_definition():
    audio = _audio()
    ours = whisper_log_mel(audio)
    # Whisper's log_mel_spectrogram, written out from its definition with torch
    x = torch.from_numpy(audio.astype(np.float32))
    stft = torch.stft(x, 400, 160, window=torch.hann_window(400), return_complex=True)
    mags = stft[..., :-1].abs() ** 2
    filters = torch.from_numpy(librosa.filters.mel(sr=16000, n_fft=400, n_mels=80))
    log_spec = torch.clamp(filters @ mags, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
    ref = ((log_spec + 4.0) / 4.0).numpy().T
    assert ours.shape == (len(audio) // 160, 80) == ref.shape
    np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_praat_features_equal_parselmouth_called_directly():
    audio = _audio()
    cfg = PrepareConfig()
    feats = compute_speech_features(audio, cfg, sex="M")
    n = len(audio) // 128
    t = frame_times_s(n)
    snd = parselmouth.Sound(audio.astype(np.float64), sampling_frequency=16000)
    pitch = snd.to_pitch_ac(time_step=0.008, pitch_floor=60.0, pitch_ceiling=300.0)
    f0 = np.array([pitch.get_value_at_time(x) for x in t])
    np.testing.assert_array_equal(feats.f0_hz, np.nan_to_num(f0, nan=0.0).astype(np.float32))
    np.testing.assert_array_equal(feats.voiced, np.isfinite(f0))
    formant = snd.to_formant_burg(time_step=0.008, max_number_of_formants=6, maximum_formant=5000.0,
                                  window_length=0.025)
    fm = np.array([[formant.get_value_at_time(k, x) for k in range(1, 7)] for x in t], dtype=np.float32)
    np.testing.assert_array_equal(feats.formants_hz, fm)            # NaN where Praat finds no formant
    inten = snd.to_intensity(minimum_pitch=60.0, time_step=0.008, subtract_mean=False)
    iv = np.array([inten.get_value(x, parselmouth.ValueInterpolation.LINEAR) for x in t])
    ok = np.isfinite(iv)
    np.testing.assert_allclose(feats.intensity_db[ok], iv[ok], rtol=1e-6)
    assert np.isfinite(feats.intensity_db).all()
    # the synthetic vowel is a 130-170 Hz harmonic tone: Praat tracks it while it sounds
    assert 0.1 < feats.voiced.mean() < 0.5
    assert 125 < np.median(feats.f0_hz[feats.voiced]) < 175
    assert np.isnan(feats.formants_hz[:, 5]).mean() > np.isnan(feats.formants_hz[:, 0]).mean()


def test_noise_spectrum_comes_from_pre_speech_silence():
    rng = np.random.default_rng(0)
    n_frames = 2000
    audio = 0.01 * rng.standard_normal(n_frames * 128).astype(np.float32)
    on = np.array([300, 900, 1500])
    off = on + 80
    for a, b in zip(on, off):
        audio[a * 128: b * 128] += 0.5 * np.sin(2 * np.pi * 440 * np.arange((b - a) * 128) / 16000)
    power = dsp.stft_power_np(audio)
    mask = noise_frame_mask(on, off, n_frames, context_frames=125, guard_frames=12)
    assert mask.sum() == 3 * (125 - 12) and not mask[on[0]: off[0] + 12].any()
    noise, note = noise_spectrum(power, on, off, context_frames=125, guard_frames=12)
    expected = 0.01 ** 2 * (np.hanning(513)[:-1] ** 2).sum()  # white noise power per bin
    assert abs(np.median(noise[5:250]) / expected - 1) < 0.1
    assert "pre-speech silence" in note
