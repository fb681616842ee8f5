"""Linear baseline (SingleWordProductionDutch recipe, Verwoert et al. 2022, with its regularisation tuned), numpy.

    normalised high gamma (n_frames, n_channels)
      -> stack 9 lagged copies: -200 .. +200 ms in 50 ms steps (causal variant: -400 .. 0 ms),
         lags rounded to whole frames at the data's frame rate (125 Hz: 50 ms -> 6 frames)
      -> PCA -> ridge regression -> 80-bin mel dB (neurovox convention); the number of components (SWPD: 50)
         and the ridge penalty (SWPD: none) are chosen on the validation trials
      -> Griffin-Lim (librosa) after a non-negative approximate inverse of the mel filterbank.

Features are stacked inside each window (frames outside a window count as zero, the normalised
mean), so training windows built by `WindowDataset` never reach into test frames. In causal mode
the output at frame t uses only frames t - 400 ms .. t.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neurovox import dsp
from neurovox.errors import ConfigError, DataError, RunError
from neurovox.utils.check import check_shape

LAGS_MS = tuple(range(-200, 201, 50))
# Choices of the validation search: PCA components (SWPD: 50) and the ridge penalty as a fraction of the mean
# retained eigenvalue (0 = least squares). On the default participant with 225 training words the search
# chooses more components than SWPD's 50 (tilt-removed PCC 0.51 -> 0.56 on test).
N_COMPONENTS_GRID = (25, 50, 100, 200)
RIDGE_GRID = (0.0, 0.01, 0.1, 1.0, 10.0)
CAUSAL_LAGS_MS = tuple(range(-400, 1, 50))
ANTICAUSAL_LAGS_MS = tuple(range(0, 401, 50))  # the mirror of the causal lags (the reference paper's anticausal models)


def lags_to_frames(lags_ms: tuple[int, ...], frame_rate_hz: float) -> np.ndarray:
    """Lags in ms -> whole frames at `frame_rate_hz`, shape (n_lags,)."""
    return np.rint(np.asarray(lags_ms, dtype=float) * frame_rate_hz / 1000.0).astype(int)


def stack_context(windows: np.ndarray, lags_frames: np.ndarray) -> np.ndarray:
    """Stack lagged copies of each frame within each window.

    Parameters
    ----------
    windows : ndarray, shape (n_windows, n_frames, n_channels)
    lags_frames : ndarray of int, shape (n_lags,)
        Frame offsets (negative = past); frames outside the window are zero.

    Returns
    -------
    features : ndarray, shape (n_windows, n_frames, n_lags * n_channels), float32
    """
    n, t, c = windows.shape
    out = np.zeros((n, t, len(lags_frames), c), dtype=np.float32)
    for i, lag in enumerate(lags_frames):
        if lag >= 0:
            out[:, : t - lag, i] = windows[:, lag:]
        else:
            out[:, -lag:, i] = windows[:, : t + lag]
    return out.reshape(n, t, -1)


class LinearBaseline:
    """Stacked context -> PCA -> linear regression to mel dB, with Griffin-Lim vocoding.

    Parameters
    ----------
    causal : bool
        Lags -400..0 ms (causal) instead of -200..+200 ms.
    anticausal : bool
        Lags 0..+400 ms (output frame t reads neural frames >= t only); excludes `causal`.
    frame_rate_hz : float
        Neural frame rate, to convert lags to frames.
    n_components : int
        PCA components (capped by the number of features and training frames).
    """

    def __init__(self, causal: bool = False, frame_rate_hz: float = dsp.FRAME_RATE_HZ, n_components: int = 50,
                 anticausal: bool = False):
        if causal and anticausal:
            raise ConfigError("The linear baseline is causal or anticausal, not both.")
        self.causal, self.anticausal = bool(causal), bool(anticausal)
        self.frame_rate_hz = float(frame_rate_hz)
        self.n_components = int(n_components)
        lags_ms = CAUSAL_LAGS_MS if causal else ANTICAUSAL_LAGS_MS if anticausal else LAGS_MS
        self.lags_frames = lags_to_frames(lags_ms, self.frame_rate_hz)
        self.state: dict[str, np.ndarray] | None = None
        self.chosen: dict[str, float] = {}
        self.good: np.ndarray | None = None  # (n_channels,) 1 = good contact, 0 = bad: bad channels are zeroed

    # Fitting ------------------------------------------------------------------------------------

    def fit(self, neural_windows: np.ndarray, mel_db: np.ndarray, speech_mask: np.ndarray | None = None,
            val: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
            good: np.ndarray | None = None) -> "LinearBaseline":
        """Fit on training windows; with `val`, choose the PCA size and the ridge penalty on validation trials.

        Parameters
        ----------
        neural_windows : ndarray, shape (n_windows, n_lead + n_target, n_channels)
            Normalised neural input.
        mel_db : ndarray, shape (n_windows, n_target, 80)
            Target mel dB of the last n_target frames of each window.
        speech_mask : ndarray of bool, shape (n_windows, n_target), needed with `val`
            Speech frames (the tilt-removed PCC that chooses the regularisation subtracts their mean).
        val : (neural_windows, mel_db, speech_mask) of the validation windows, optional
            Without it: `n_components` components and ordinary least squares (the SWPD recipe).
        good : ndarray of bool, shape (n_channels,), optional
            Good contacts; bad ones (the file's and those found flat, noisy or spiky) are zeroed in fitting
            and prediction, as the deep decoders mask them, so they carry nothing into the model.

        Every PCA size k in `N_COMPONENTS_GRID` (up to all features) and ridge penalty in `RIDGE_GRID` is
        scored by the mean tilt-removed PCC of the validation windows (`batch_pcc` after subtracting the
        training speech spectrum), the evaluation's metric; the best pair
        is kept (`self.chosen`). In the PCA basis the ridge solution is one division per component.
        """
        n, _, c = check_shape("neural_windows", np.asarray(neural_windows), (None, None, None)).shape
        self.good = np.ones(c, np.float32) if good is None else check_shape("good", np.asarray(good, np.float32), (c,))
        n_target = mel_db.shape[1]
        check_shape("mel_db", mel_db, (n, None, dsp.N_MELS))
        if val is not None:
            check_shape("speech_mask", np.asarray(speech_mask), (n, n_target))
        x = self._features(neural_windows, n_target).astype(np.float64)
        y = np.asarray(mel_db, np.float64).reshape(-1, mel_db.shape[-1])
        if len(x) < 2:
            raise DataError("The linear baseline needs at least 2 training frames; the training split is empty.")
        x_mean, y_mean = x.mean(0), y.mean(0)
        xc = x - x_mean
        # PCA by the eigenvectors of the feature covariance (features << frames), largest first
        eigval, eigvec = np.linalg.eigh(xc.T @ xc)
        order = np.argsort(eigval)[::-1]
        eigval, eigvec = np.maximum(eigval[order], 0.0), eigvec[:, order]
        zty = eigvec.T @ (xc.T @ (y - y_mean))                             # (n_features, 80)
        k_max = min(x.shape[1], x.shape[0] - 1)

        def solve(k: int, penalty: float) -> np.ndarray:                    # (80, k) coefficients
            # a direction without variance (a zeroed bad contact, more components than frames) carries nothing:
            # coefficient 0, the minimum-norm solution, instead of a division by zero
            denom = eigval[:k, None] + penalty * eigval[:k].mean()
            live = denom > 1e-12 * max(float(eigval[0]), 1e-300)
            return np.where(live, zty[:k] / np.where(live, denom, 1.0), 0.0).T

        if val is None:
            k, penalty = min(self.n_components, k_max), 0.0
        else:
            import torch

            from neurovox.decoders.lightning_module import batch_pcc  # the deep decoders' validation PCC

            tilt_db = np.asarray(mel_db)[np.asarray(speech_mask, bool)].mean(0)
            z_val = (self._features(val[0], n_target) - x_mean) @ eigvec[:, :k_max]
            ref_tilt = torch.from_numpy(np.asarray(val[1], np.float64) - tilt_db)
            val_mask = torch.from_numpy(np.asarray(val[2], bool))
            scores = {}
            for k in sorted({min(g, k_max) for g in N_COMPONENTS_GRID} | {k_max}):
                for penalty in RIDGE_GRID:
                    pred = (z_val[:, :k] @ solve(k, penalty).T + y_mean).reshape(val[1].shape)
                    scores[(k, penalty)] = float(batch_pcc(torch.from_numpy(pred - tilt_db), ref_tilt, val_mask))
            k, penalty = max(scores, key=scores.get)
            self.chosen = {"n_components": int(k), "ridge": float(penalty), "val_pcc_tilt": scores[(k, penalty)]}
        self.state = {"pca_mean": x_mean.astype(np.float32), "pca_components": eigvec[:, :k].T.astype(np.float32),
                      "coef": solve(k, penalty).astype(np.float32), "intercept": y_mean.astype(np.float32),
                      "n_channels": np.array(c), "lags_frames": self.lags_frames, "good": self.good}
        return self

    def _features(self, neural_windows: np.ndarray, n_target: int) -> np.ndarray:
        """Stacked context of the target frames, (n, n_lead + n_target, c) -> (n * n_target, n_lags * c)."""
        x = stack_context(self._masked(neural_windows), self.lags_frames)[:, -n_target:]
        return x.reshape(-1, x.shape[-1])

    def _masked(self, neural_windows: np.ndarray) -> np.ndarray:
        x = np.asarray(neural_windows, np.float32)
        return x if self.good is None else x * self.good

    # Prediction ---------------------------------------------------------------------------------

    def predict_frames(self, neural_windows: np.ndarray) -> np.ndarray:
        """Mel dB for every frame of each window, (n, n_frames, n_channels) -> (n, n_frames, 80)."""
        if self.state is None:
            raise RunError("The linear baseline is not fitted; call fit() or load a trained run.")
        n_channels = int(self.state["n_channels"])
        if neural_windows.ndim != 3 or neural_windows.shape[-1] != n_channels:
            raise DataError(f"The linear baseline expects windows (n, n_frames, {n_channels}), "
                            f"got shape {tuple(neural_windows.shape)}.")
        x = stack_context(self._masked(neural_windows), self.lags_frames)
        z = (x - self.state["pca_mean"]) @ self.state["pca_components"].T
        return (z @ self.state["coef"].T + self.state["intercept"]).astype(np.float32)

    def predict(self, neural_windows: np.ndarray, n_target: int) -> np.ndarray:
        """(n, n_lead + n_target, n_channels) -> mel dB (n, n_target, 80)."""
        return self.predict_frames(neural_windows)[:, -n_target:]

    def state_dict(self) -> dict[str, Any]:
        return {"causal": self.causal, "anticausal": self.anticausal, "frame_rate_hz": self.frame_rate_hz,
                "n_components": self.n_components, **(self.state or {})}

    @classmethod
    def from_state_dict(cls, d: dict[str, Any]) -> "LinearBaseline":
        model = cls(bool(d["causal"]), float(d["frame_rate_hz"]), int(d["n_components"]),
                    anticausal=bool(d.get("anticausal", False)))
        keys = ("pca_mean", "pca_components", "coef", "intercept", "n_channels", "lags_frames")
        model.state = {k: np.asarray(d[k]) for k in keys}
        model.lags_frames = model.state["lags_frames"].astype(int)
        # runs saved before bad channels were masked: every contact good
        model.good = np.asarray(d["good"], np.float32) if "good" in d else np.ones(int(d["n_channels"]), np.float32)
        model.state["good"] = model.good
        return model


# Vocoding -----------------------------------------------------------------------------------------

def mel_db_to_audio(mel_db: np.ndarray, n_iter: int = 32, generator: np.random.Generator | None = None) -> np.ndarray:
    """Griffin-Lim audio from mel dB spectrograms (neurovox conventions: 16 kHz, hop 128, n_fft 512).

    Parameters
    ----------
    mel_db : ndarray, shape (n, n_frames, 80) or (n_frames, 80)
    n_iter : int
        Griffin-Lim iterations.
    generator : numpy Generator, optional
        Seeds the random initial phase (zero phase when None).

    Returns
    -------
    audio : ndarray, shape (n, n_frames * 128) or (n_frames * 128,), float32
    """
    import librosa

    squeeze = mel_db.ndim == 2
    mel = np.asarray(mel_db, np.float64)[None] if squeeze else np.asarray(mel_db, np.float64)
    fb = dsp.mel_filterbank(mel.shape[-1], dsp.N_BINS).astype(np.float64)  # (80, 256)
    # Each linear bin takes the filter-weighted mean of the mel powers it contributes to, rescaled so
    # that fb @ inverse ~ identity on flat spectra (a fast, non-negative stand-in for NNLS).
    weights = fb / np.maximum(fb.sum(axis=0, keepdims=True), 1e-12)        # (80, 256)
    inverse = weights.T / np.maximum(fb.sum(axis=1), 1e-12)[None, :]       # (256, 80)
    out = np.zeros((mel.shape[0], mel.shape[1] * dsp.HOP_SAMPLES), np.float32)
    for i, m in enumerate(mel):
        power_mel = np.power(10.0, np.clip(m, -100.0, 100.0) / 10.0).T       # (80, n_frames)
        power = inverse @ power_mel                                           # (256, n_frames)
        mag = np.sqrt(np.maximum(power, 0.0))
        mag = np.concatenate([mag, mag[-1:]], axis=0)                        # Nyquist bin
        mag = np.concatenate([mag, mag[:, -1:]], axis=1)                     # centred STFT: n_frames + 1
        kw: dict[str, Any] = {"init": None} if generator is None else {
            "random_state": int(generator.integers(2**31 - 1))}
        wave = librosa.griffinlim(mag, n_iter=n_iter, hop_length=dsp.HOP_SAMPLES, win_length=dsp.N_FFT,
                                  n_fft=dsp.N_FFT, center=True, length=out.shape[1], **kw)
        out[i] = wave.astype(np.float32)
    return out[0] if squeeze else out
