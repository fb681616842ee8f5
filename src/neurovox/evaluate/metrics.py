"""Speech decoding metrics: plain functions on NumPy arrays.

Every function names its convention, because the field uses several:

- `pcc_per_trial`: Pearson r between reference and decoded mel spectrograms, computed per test
  trial over the flattened speech segment (frames x mel bins) -- the convention of Chen et al.
  (Nature Machine Intelligence 2024). Report mean and SEM over trials.
- `pcc_per_bin`: Pearson r per mel bin over all concatenated test frames -- the convention of the
  SingleWordProductionDutch (SWPD) baseline (Verwoert et al., Scientific Data 2022).
- `pcc_tilt_removed`: `pcc_per_trial` after subtracting each mel bin's mean over the TRAINING speech
  frames from both spectrograms. Per-trial PCC of dB mel is dominated by the spectral tilt of speech
  (low bins loud, high bins quiet): any speech-like spectrum scores ~0.65 on it. With the tilt
  removed, only deviations from the average speech spectrum count, so a constant mean spectrum
  scores 0 and a decoder has to predict what is specific to the trial.
- `stoi`, `estoi`: short-time objective intelligibility (Taal et al. 2011) and its extended version
  (Jensen & Taal 2016), computed by `pystoi` (the reference implementation).
- `stoi_plus`: STOI+ (Graetzer & Hopkins 2021), see its docstring.
- `mel_cepstral_distortion`: MCD in dB from log-mel spectra via a DCT, c0 excluded.
- `bootstrap_ci`: percentile bootstrap interval of the mean over trials.
- `paired_gain`: mean per-trial difference of two predictions of the same trials, with a paired
  bootstrap CI and a Wilcoxon signed-rank test.

The differentiable training loss lives in `neurovox.decoders.stoi_loss`.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.fft

from neurovox.errors import DataError
from neurovox.utils.check import check_range, validate_type

MCD_CONSTANT_DB = 10.0 * np.sqrt(2.0) / np.log(10.0)  # dB per unit of natural-log cepstral distance
FLAT_DB = 1e-4  # dB: a prediction varying less than this around the training mean counts as that mean
STOI_MIN_FRAMES = 30  # pystoi needs 30 non-silent 25.6 ms frames (384 ms) for one intermediate measure


# Correlation ------------------------------------------------------------------------------------

def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    a = a - a.mean()
    b = b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else float("nan")


def pcc_per_trial(ref_mel: np.ndarray, dec_mel: np.ndarray, speech_masks: np.ndarray | None = None) -> np.ndarray:
    """Pearson r per trial over the flattened speech segment (Chen et al. 2024 convention).

    Parameters
    ----------
    ref_mel, dec_mel : ndarray, shape (n_trials, n_frames, n_mels)
        Reference and decoded spectrograms (dB or any fixed log scale; both the same).
    speech_masks : ndarray of bool, shape (n_trials, n_frames), optional
        Frames inside each trial's speech segment. Default: every frame.

    Returns
    -------
    pcc : ndarray, shape (n_trials,)
        r between the (n_speech_frames * n_mels) values of each trial; NaN where a trial has no
        speech frame or a constant spectrogram.
    """
    ref_mel, dec_mel = _same_shape_3d(ref_mel, dec_mel, "pcc_per_trial")
    masks = _masks(speech_masks, ref_mel.shape[:2], "pcc_per_trial")
    return np.array([_pearson(r[m], d[m]) if m.any() else np.nan
                     for r, d, m in zip(ref_mel, dec_mel, masks)])


def pcc_tilt_removed(ref_mel: np.ndarray, dec_mel: np.ndarray, train_mean_db: np.ndarray,
                     speech_masks: np.ndarray | None = None) -> np.ndarray:
    """Per-trial Pearson r after removing the training speech spectrum from both spectrograms.

    Parameters
    ----------
    ref_mel, dec_mel : ndarray, shape (n_trials, n_frames, n_mels)
        Reference and decoded spectrograms on the same log scale (dB).
    train_mean_db : ndarray, shape (n_mels,)
        Mean of each mel bin over the training trials' speech frames (training data only).
    speech_masks : ndarray of bool, shape (n_trials, n_frames), optional
        Frames inside each trial's speech segment. Default: every frame.

    Returns
    -------
    pcc : ndarray, shape (n_trials,)
        As `pcc_per_trial` on ``ref - train_mean_db`` and ``dec - train_mean_db``, except that a
        prediction that does not vary around the training mean scores 0 (it carries no information
        beyond that mean; Pearson r would be undefined; "does not vary" = range under `FLAT_DB`). NaN where the reference is constant or a
        trial has no speech frame.
    """
    ref_mel, dec_mel = _same_shape_3d(ref_mel, dec_mel, "pcc_tilt_removed")
    mean = np.asarray(train_mean_db, dtype=np.float64)
    if mean.shape != (ref_mel.shape[-1],) or not np.all(np.isfinite(mean)):
        raise DataError(f"pcc_tilt_removed: train_mean_db must be a finite array of shape ({ref_mel.shape[-1]},) "
                        f"(one value per mel bin); got shape {mean.shape}.")
    masks = _masks(speech_masks, ref_mel.shape[:2], "pcc_tilt_removed")
    out = np.full(len(ref_mel), np.nan)
    for i, (r, d, m) in enumerate(zip(ref_mel, dec_mel, masks)):
        if not m.any():
            continue
        dev = d[m] - mean
        if np.ptp(dev) < FLAT_DB and np.ptp(r[m]) > 0:  # float32 rounding of the mean itself is not a prediction
            out[i] = 0.0
        else:
            out[i] = _pearson(r[m] - mean, dev)
    return out


def pcc_per_bin(ref_frames: np.ndarray, dec_frames: np.ndarray) -> np.ndarray:
    """Pearson r per frequency bin over concatenated test frames (SWPD convention).

    Parameters
    ----------
    ref_frames, dec_frames : ndarray, shape (n_frames, n_bins)
        All test frames concatenated in time (e.g. ``mel.reshape(-1, n_mels)``).

    Returns
    -------
    pcc : ndarray, shape (n_bins,)
        NaN for a bin that is constant in either input.
    """
    ref = np.asarray(ref_frames, dtype=np.float64)
    dec = np.asarray(dec_frames, dtype=np.float64)
    if ref.ndim != 2 or ref.shape != dec.shape:
        raise DataError(f"pcc_per_bin needs two arrays of shape (n_frames, n_bins) that agree, got "
                        f"{ref.shape} and {dec.shape}. Concatenate trials first: mel.reshape(-1, n_mels).")
    ref = ref - ref.mean(0)
    dec = dec - dec.mean(0)
    den = np.sqrt((ref * ref).sum(0) * (dec * dec).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (ref * dec).sum(0) / np.where(den > 0, den, 1.0), np.nan)


# Intelligibility ---------------------------------------------------------------------------------

def _audio_pairs(ref_audio: np.ndarray, dec_audio: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray, bool]:
    ref = np.asarray(ref_audio, dtype=np.float64)
    dec = np.asarray(dec_audio, dtype=np.float64)
    if ref.shape != dec.shape or ref.ndim not in (1, 2):
        raise DataError(f"{name}: reference and decoded audio must have the same shape, (n_samples,) or "
                        f"(n_trials, n_samples); got {ref.shape} and {dec.shape}.")
    single = ref.ndim == 1
    return (ref[None], dec[None], True) if single else (ref, dec, False)


def _stoi_like(ref_audio, dec_audio, sfreq_hz: int, name: str, fn) -> float | np.ndarray:
    ref, dec, single = _audio_pairs(ref_audio, dec_audio, name)
    out = np.empty(len(ref))
    for i, (r, d) in enumerate(zip(ref, dec)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value = fn(r, d, sfreq_hz)
        short = any("Not enough STFT frames" in str(w.message) for w in caught)
        out[i] = np.nan if short else value
    return float(out[0]) if single else out


def stoi(ref_audio: np.ndarray, dec_audio: np.ndarray, sfreq_hz: int = 16_000) -> float | np.ndarray:
    """STOI (Taal et al. 2011) via `pystoi.stoi(..., extended=False)`.

    Parameters
    ----------
    ref_audio, dec_audio : ndarray, shape (n_samples,) or (n_trials, n_samples)
        Clean reference and decoded audio at `sfreq_hz`.
    sfreq_hz : int
        Audio sampling rate in Hz (pystoi resamples to 10 kHz).

    Returns
    -------
    float or ndarray, shape (n_trials,)
        NaN where the reference has fewer than 30 non-silent frames (384 ms of speech), where
        pystoi itself would warn and return 1e-5.
    """
    from pystoi import stoi as _pystoi

    return _stoi_like(ref_audio, dec_audio, sfreq_hz, "stoi", lambda r, d, fs: _pystoi(r, d, fs, extended=False))


def estoi(ref_audio: np.ndarray, dec_audio: np.ndarray, sfreq_hz: int = 16_000) -> float | np.ndarray:
    """Extended STOI (Jensen & Taal 2016) via `pystoi.stoi(..., extended=True)`; as `stoi`."""
    from pystoi import stoi as _pystoi

    return _stoi_like(ref_audio, dec_audio, sfreq_hz, "estoi", lambda r, d, fs: _pystoi(r, d, fs, extended=True))


def _stoi_core(x: np.ndarray, y: np.ndarray, sfreq_hz: int, clip: bool) -> float:
    """STOI computed step by step with pystoi's building blocks; `clip=False` gives STOI+.

    With `clip=True` this equals `pystoi.stoi(x, y, fs)` (tested).
    """
    import importlib

    ps = importlib.import_module("pystoi.stoi")  # the module (the package re-exports a function of that name)
    utils = importlib.import_module("pystoi.utils")

    if sfreq_hz != ps.FS:
        x = utils.resample_oct(x, ps.FS, sfreq_hz)
        y = utils.resample_oct(y, ps.FS, sfreq_hz)
    x, y = utils.remove_silent_frames(x, y, ps.DYN_RANGE, ps.N_FRAME, int(ps.N_FRAME / 2))
    x_spec = utils.stft(x, ps.N_FRAME, ps.NFFT, overlap=2).transpose()
    y_spec = utils.stft(y, ps.N_FRAME, ps.NFFT, overlap=2).transpose()
    if x_spec.shape[-1] < ps.N:
        warnings.warn("Not enough STFT frames to compute intermediate intelligibility measure", RuntimeWarning)
        return 1e-5
    x_tob = np.sqrt(ps.OBM @ np.square(np.abs(x_spec)))  # (n_bands, n_frames)
    y_tob = np.sqrt(ps.OBM @ np.square(np.abs(y_spec)))
    idx = np.arange(ps.N)[None] + np.arange(x_tob.shape[1] - ps.N + 1)[:, None]  # (n_segments, N)
    x_seg = np.transpose(x_tob[:, idx], (1, 0, 2))  # (n_segments, n_bands, N)
    y_seg = np.transpose(y_tob[:, idx], (1, 0, 2))
    if clip:
        alpha = np.linalg.norm(x_seg, axis=2, keepdims=True) / (np.linalg.norm(y_seg, axis=2, keepdims=True) + utils.EPS)
        y_seg = np.minimum(y_seg * alpha, x_seg * (1 + 10 ** (-ps.BETA / 20)))
    y_seg = y_seg - y_seg.mean(axis=2, keepdims=True)
    x_seg = x_seg - x_seg.mean(axis=2, keepdims=True)
    y_seg = y_seg / (np.linalg.norm(y_seg, axis=2, keepdims=True) + utils.EPS)
    x_seg = x_seg / (np.linalg.norm(x_seg, axis=2, keepdims=True) + utils.EPS)
    return float(np.sum(x_seg * y_seg) / (x_seg.shape[0] * x_seg.shape[1]))


def stoi_plus(ref_audio: np.ndarray, dec_audio: np.ndarray, sfreq_hz: int = 16_000) -> float | np.ndarray:
    """STOI+ : STOI without its clipping step (Graetzer & Hopkins 2021).

    Chen et al. (Nature Machine Intelligence 2024) report "STOI+" for decoded speech. The variant
    of that name is defined by S. Graetzer and C. Hopkins, "Intelligibility prediction for speech
    mixed with white Gaussian noise at low signal-to-noise ratios", J. Acoust. Soc. Am. 149(2),
    1346-1362 (2021): STOI (Taal et al. 2011) with the clipping of the normalised degraded
    envelope (the lower signal-to-distortion bound beta = -15 dB) removed, which made STOI predict
    intelligibility better at low SNR. What is implemented here: pystoi's STOI pipeline step by step
    (resampling to 10 kHz, removal of silent frames 40 dB below the loudest, 256-sample frames,
    15 one-third-octave bands from 150 Hz, 30-frame (384 ms) segments, mean of envelope
    correlations), with the scaling-and-clipping step omitted; everything else is identical to
    `stoi` (with clipping, the same code equals pystoi exactly; see the tests). Caveat: the
    definition was taken from the paper's description, not from reference code.

    Parameters and returns as `stoi`.
    """
    return _stoi_like(ref_audio, dec_audio, sfreq_hz, "stoi_plus",
                      lambda r, d, fs: _stoi_core(r, d, fs, clip=False))


# Spectral distortion ------------------------------------------------------------------------------

def mel_cepstral_distortion(ref_mel_db: np.ndarray, dec_mel_db: np.ndarray, n_ceps: int = 24,
                            frame_mask: np.ndarray | None = None) -> float:
    """Mel cepstral distortion in dB between two log-mel spectrograms.

    Cepstra follow the mel-cepstrum convention (as in SPTK): the natural-log amplitude spectrum
    on the mel axis is a cosine series ``ln|X(w)| = c0 + 2 * sum_m c_m cos(m w)``. With the mel
    bins as N samples of w in (0, pi) (``w_k = pi (k + 1/2) / N``), ``c_m = DCT-II(ln|X|)[m] / (2N)``
    (SciPy's unnormalised DCT-II). The mel power in dB converts as ``ln|X| = mel_db * ln(10) / 20``.
    c0 (overall level) is excluded and c1 .. c_{n_ceps} are compared (Kubichek 1993):

        MCD = 10 * sqrt(2) / ln(10) * mean_t sqrt(sum_{d=1}^{n_ceps} (c_ref[t, d] - c_dec[t, d])^2)

    So a spectral difference of ``A cos(w)`` dB gives MCD = A * sqrt(2) / 4 dB (tested), and a
    level difference gives 0. Values depend on the number of mel bins and n_ceps: compare MCDs
    computed with the same settings only.

    Parameters
    ----------
    ref_mel_db, dec_mel_db : ndarray, shape (n_frames, n_mels) or (n_trials, n_frames, n_mels)
        Mel power spectrograms in dB.
    n_ceps : int
        Number of cepstral coefficients after c0 (default 24).
    frame_mask : ndarray of bool, shape (n_frames,) or (n_trials, n_frames), optional
        Frames to average over (e.g. the speech segment). Default: all.

    Returns
    -------
    mcd_db : float
        NaN when no frame is selected.
    """
    ref = np.asarray(ref_mel_db, dtype=np.float64)
    dec = np.asarray(dec_mel_db, dtype=np.float64)
    if ref.shape != dec.shape or ref.ndim not in (2, 3):
        raise DataError(f"mel_cepstral_distortion: spectrograms must share a shape (n_frames, n_mels) or "
                        f"(n_trials, n_frames, n_mels); got {ref.shape} and {dec.shape}.")
    n_mels = ref.shape[-1]
    check_range("n_ceps", n_ceps, 1, n_mels - 1, error=DataError)
    ref = ref.reshape(-1, n_mels)
    dec = dec.reshape(-1, n_mels)
    if frame_mask is not None:
        mask = np.asarray(frame_mask, dtype=bool).reshape(-1)
        if mask.shape[0] != ref.shape[0]:
            raise DataError(f"mel_cepstral_distortion: frame_mask has {mask.shape[0]} frames, spectrograms {ref.shape[0]}.")
        ref, dec = ref[mask], dec[mask]
    if len(ref) == 0:
        return float("nan")
    to_ln_amp = np.log(10.0) / 20.0
    diff = scipy.fft.dct((ref - dec) * to_ln_amp, type=2, axis=-1)[:, 1:n_ceps + 1] / (2 * n_mels)
    return float(MCD_CONSTANT_DB * np.sqrt((diff ** 2).sum(-1)).mean())


def mcd_per_trial(ref_mel_db: np.ndarray, dec_mel_db: np.ndarray, speech_masks: np.ndarray | None = None,
                  n_ceps: int = 24) -> np.ndarray:
    """`mel_cepstral_distortion` of each trial over its speech frames, shape (n_trials,)."""
    ref, dec = _same_shape_3d(ref_mel_db, dec_mel_db, "mcd_per_trial")
    masks = _masks(speech_masks, ref.shape[:2], "mcd_per_trial")
    return np.array([mel_cepstral_distortion(r, d, n_ceps, m) for r, d, m in zip(ref, dec, masks)])


# Statistics ------------------------------------------------------------------------------------

def bootstrap_ci(values: np.ndarray, n_boot: int = 2000, ci: float = 0.95,
                 generator: np.random.Generator | None = None) -> tuple[float, float]:
    """Percentile bootstrap interval for the mean over trials.

    Parameters
    ----------
    values : ndarray, shape (n_trials,)
        One value per trial; NaNs are dropped.
    n_boot : int
        Bootstrap resamples.
    ci : float
        Coverage of the interval, in (0, 1).
    generator : numpy.random.Generator, optional
        Source of randomness (default: a fresh unseeded generator).

    Returns
    -------
    (low, high) : tuple of float
        NaN, NaN when fewer than 2 finite values.
    """
    validate_type(n_boot, int, "n_boot")
    check_range("n_boot", n_boot, 1, error=DataError)
    check_range("ci", ci, 0.0, 1.0, inclusive=False, error=DataError)
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if len(v) < 2:
        return float("nan"), float("nan")
    gen = generator if generator is not None else np.random.default_rng()
    idx = gen.integers(0, len(v), size=(n_boot, len(v)))
    means = v[idx].mean(axis=1)
    alpha = (1.0 - ci) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


def paired_gain(values: np.ndarray, baseline: np.ndarray, higher_is_better: bool = True, n_boot: int = 2000,
                ci: float = 0.95, generator: np.random.Generator | None = None) -> dict[str, float]:
    """How much better `values` are than `baseline` on the same trials.

    Parameters
    ----------
    values, baseline : ndarray, shape (n_trials,)
        One score per trial for the prediction under test and for the baseline, trial for trial.
    higher_is_better : bool
        False for distances (MCD): the gain is then ``baseline - values``, so a positive gain is
        always an improvement.

    Returns
    -------
    dict
        ``mean`` (mean per-trial gain), ``ci_low``/``ci_high`` (percentile bootstrap over trials of
        the paired differences), ``p_wilcoxon`` (two-sided Wilcoxon signed-rank test of the paired
        differences, scipy), ``n`` (trials finite in both) and ``above`` (True when the CI lies above
        0, i.e. the improvement is not explained by resampling the test trials). NaNs with < 2 trials.
    """
    a = np.asarray(values, dtype=np.float64).ravel()
    b = np.asarray(baseline, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise DataError(f"paired_gain: {a.shape[0]} values but {b.shape[0]} baseline values; both need one per trial.")
    ok = np.isfinite(a) & np.isfinite(b)
    diff = (a - b if higher_is_better else b - a)[ok]
    if len(diff) < 2:
        return {"mean": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "p_wilcoxon": float("nan"),
                "n": int(len(diff)), "above": False}
    low, high = bootstrap_ci(diff, n_boot=n_boot, ci=ci, generator=generator)
    if np.all(diff == 0):
        p = 1.0
    else:
        from scipy.stats import wilcoxon

        p = float(wilcoxon(diff).pvalue)
    return {"mean": float(diff.mean()), "ci_low": low, "ci_high": high, "p_wilcoxon": p, "n": int(len(diff)),
            "above": bool(low > 0)}


def sem(values: np.ndarray) -> float:
    """Standard error of the mean over finite values (ddof=1); NaN with fewer than 2."""
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    return float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) >= 2 else float("nan")


# Helpers -------------------------------------------------------------------------------------

def _same_shape_3d(a: np.ndarray, b: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 3 or a.shape != b.shape:
        raise DataError(f"{name}: reference and decoded spectrograms must both have shape "
                        f"(n_trials, n_frames, n_mels); got {a.shape} and {b.shape}.")
    return a, b


def _masks(masks: np.ndarray | None, shape: tuple[int, int], name: str) -> np.ndarray:
    if masks is None:
        return np.ones(shape, dtype=bool)
    m = np.asarray(masks, dtype=bool)
    if m.shape != shape:
        raise DataError(f"{name}: speech_masks must have shape (n_trials, n_frames) = {shape}, got {m.shape}.")
    return m
