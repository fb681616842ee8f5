"""Metric functions against their references: scipy (PCC), pystoi (STOI/ESTOI), a hand-computed MCD,
the differentiable STOI loss against pystoi, and bootstrap coverage in simulation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pystoi import stoi as pystoi_stoi
from scipy.signal import butter, sosfiltfilt
from scipy.stats import pearsonr

from neurovox.errors import DataError
from neurovox.evaluate import metrics as M
from neurovox.decoders.stoi_loss import stoi_loss
from tests.conftest import speech_utterances


@pytest.fixture(scope="module")
def utterance(tmp_path_factory) -> np.ndarray:
    """One real utterance (~1.5 s) at 16 kHz, float64."""
    return np.asarray(speech_utterances(tmp_path_factory.mktemp("utt"), 1)[0], dtype=np.float64)


@pytest.fixture(scope="module")
def degraded(utterance):
    """Degraded versions: white noise at 7 SNRs, 4 low-pass cut-offs, 3 time shifts."""
    rng = np.random.default_rng(0)
    x = utterance
    power = np.mean(x ** 2)
    out = [x + rng.standard_normal(len(x)) * np.sqrt(power / 10 ** (snr / 10)) for snr in (20, 10, 5, 0, -5, -10, -15)]
    out += [sosfiltfilt(butter(6, fc, fs=16_000, output="sos"), x).copy() for fc in (3000, 1500, 800, 400)]
    out += [np.roll(x, shift) for shift in (160, 800, 3200)]
    return out


def test_pcc_per_trial_matches_scipy():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((5, 40, 80))
    dec = 0.5 * ref + rng.standard_normal((5, 40, 80))
    masks = np.zeros((5, 40), dtype=bool)
    masks[:, 5:30] = True
    masks[2] = False
    masks[3, :] = True
    got = M.pcc_per_trial(ref, dec, masks)
    for i in (0, 1, 3, 4):
        want = pearsonr(ref[i][masks[i]].ravel(), dec[i][masks[i]].ravel())[0]
        assert got[i] == pytest.approx(want, abs=1e-12)
    assert np.isnan(got[2])
    assert M.pcc_per_trial(ref, ref).tolist() == pytest.approx([1.0] * 5)
    with pytest.raises(DataError, match="speech_masks"):
        M.pcc_per_trial(ref, dec, masks[:, :10])


def test_pcc_per_bin_matches_scipy():
    rng = np.random.default_rng(1)
    ref = rng.standard_normal((500, 23))
    dec = ref * np.linspace(0, 1, 23) + rng.standard_normal((500, 23))
    dec[:, 5] = 3.0  # constant bin
    got = M.pcc_per_bin(ref, dec)
    for b in (0, 10, 22):
        assert got[b] == pytest.approx(pearsonr(ref[:, b], dec[:, b])[0], abs=1e-12)
    assert np.isnan(got[5])
    with pytest.raises(DataError, match="reshape"):
        M.pcc_per_bin(ref[None], dec[None])


def test_stoi_estoi_equal_pystoi(utterance, degraded):
    batch = np.stack(degraded[:4])
    ref = np.broadcast_to(utterance, batch.shape)
    got = M.stoi(ref, batch)
    got_e = M.estoi(ref, batch)
    for i in range(4):
        assert got[i] == pytest.approx(pystoi_stoi(utterance, batch[i], 16_000), abs=1e-12)
        assert got_e[i] == pytest.approx(pystoi_stoi(utterance, batch[i], 16_000, extended=True), abs=1e-12)
    assert M.stoi(utterance, degraded[1]) == pystoi_stoi(utterance, degraded[1], 16_000)
    # a window with under 384 ms of speech: NaN, not pystoi's silent 1e-5
    short = np.zeros(16_000)
    short[4000:6000] = utterance[8000:10000]
    assert np.isnan(M.stoi(short, short))


def test_stoi_plus_is_stoi_without_clipping(utterance, degraded):
    # with clipping, the step-by-step pipeline reproduces pystoi to rounding error
    for d in degraded:
        assert M._stoi_core(utterance, d, 16_000, clip=True) == pytest.approx(pystoi_stoi(utterance, d, 16_000), abs=1e-12)
    plus = np.array([M.stoi_plus(utterance, d) for d in degraded[:7]])
    std = np.array([M.stoi(utterance, d) for d in degraded[:7]])
    assert plus[0] == pytest.approx(std[0], abs=0.01)  # 20 dB SNR: clipping rarely active
    assert np.all(plus[4:] < std[4:] - 0.05)  # <= -5 dB: clipping had propped STOI up
    assert np.all(np.diff(plus) < 0)  # monotone in SNR
    assert M.stoi_plus(utterance, utterance) == pytest.approx(1.0, abs=1e-9)


def test_mcd_known_case():
    n_mels, n_frames = 80, 10
    k = np.arange(n_mels)
    rng = np.random.default_rng(2)
    ref = rng.normal(-30, 10, (n_frames, n_mels))
    # 1 dB cosine ripple at quefrency 1: MCD = sqrt(2) / 4 dB
    ripple = np.cos(np.pi * 1 * (k + 0.5) / n_mels)
    assert M.mel_cepstral_distortion(ref, ref + ripple) == pytest.approx(np.sqrt(2) / 4, rel=1e-9)
    # 3 dB at quefrency 2 plus 4 dB at quefrency 7: 5 dB of ripple -> 5 sqrt(2) / 4
    two = 3 * np.cos(np.pi * 2 * (k + 0.5) / n_mels) + 4 * np.cos(np.pi * 7 * (k + 0.5) / n_mels)
    assert M.mel_cepstral_distortion(ref, ref + two) == pytest.approx(5 * np.sqrt(2) / 4, rel=1e-9)
    # a level change is c0 only; a ripple above n_ceps is ignored
    assert M.mel_cepstral_distortion(ref, ref + 7.0) == pytest.approx(0.0, abs=1e-12)
    high = np.cos(np.pi * 30 * (k + 0.5) / n_mels)
    assert M.mel_cepstral_distortion(ref, ref + high, n_ceps=24) == pytest.approx(0.0, abs=1e-12)
    assert M.mel_cepstral_distortion(ref, ref + high, n_ceps=30) == pytest.approx(np.sqrt(2) / 4, rel=1e-9)
    mask = np.zeros(n_frames, dtype=bool)
    assert np.isnan(M.mel_cepstral_distortion(ref, ref + ripple, frame_mask=mask))
    with pytest.raises(DataError, match="share a shape"):
        M.mel_cepstral_distortion(ref, ref[:, :40])


def test_stoi_loss_tracks_pystoi(utterance, degraded):
    ref = torch.tensor(utterance)
    loss_values = [-stoi_loss(ref, torch.tensor(d)).item() for d in degraded]
    reference = [pystoi_stoi(utterance, d, 16_000) for d in degraded]
    r = np.corrcoef(loss_values, reference)[0, 1]
    assert r >= 0.9, r
    assert np.max(np.abs(np.array(loss_values) - reference)) < 0.1
    # differentiable: a gradient step on a noisy signal raises the score
    noisy = torch.tensor(degraded[3], requires_grad=True)
    loss = stoi_loss(ref[None], noisy[None])
    loss.backward()
    assert torch.isfinite(noisy.grad).all() and noisy.grad.abs().sum() > 0
    stepped = (noisy - 3e-3 * noisy.grad / noisy.grad.abs().max()).detach()
    assert stoi_loss(ref, stepped).item() < loss.item()
    with pytest.raises(DataError, match="at least 30 frames"):
        stoi_loss(ref[:3000], ref[:3000])
    # a training window that is mostly digital silence (under 384 ms of speech) still gives a finite loss
    window = torch.zeros(16_384, dtype=torch.float64)
    window[4000:8000] = ref[8000:12000]
    assert torch.isfinite(stoi_loss(window, window + 1e-3 * torch.randn(16_384, dtype=torch.float64)))


def test_bootstrap_coverage():
    gen = np.random.default_rng(3)
    true_mean, n_repeats, hits = 0.5, 200, 0
    for _ in range(n_repeats):
        values = gen.normal(true_mean, 0.2, size=40)
        low, high = M.bootstrap_ci(values, n_boot=1000, ci=0.95, generator=gen)
        hits += low <= true_mean <= high
    coverage = hits / n_repeats
    assert 0.89 <= coverage <= 0.99, coverage
    low, high = M.bootstrap_ci([1.0, np.nan, 3.0], n_boot=100, generator=gen)
    assert 1.0 <= low <= high <= 3.0
    assert np.isnan(M.bootstrap_ci([1.0], generator=gen)[0])
    with pytest.raises(DataError, match="ci"):
        M.bootstrap_ci([1.0, 2.0], ci=1.5)


def test_utterance_is_real_speech(utterance):
    # guard against a silent/broken fixture: flite/corpus speech, 16 kHz, > 0.8 s, not constant
    assert len(utterance) > 0.8 * 16_000 and np.std(utterance) > 1e-3
