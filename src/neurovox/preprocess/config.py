"""Configuration of the preprocessing stage (flat, typed, one unit comment per field)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from neurovox.errors import ConfigError
from neurovox.utils.check import check_option, check_range


@dataclass
class HighGammaConfig:
    """Raw voltage -> high-gamma envelope frames (`extract_high_gamma`, `CausalHighGamma`).

    Why the 20 Hz envelope low-pass is the default (offline too): set to 0, offline frames are the
    classic frame average of the Hilbert amplitude, which tracks the amplitude physically present in
    the voltage more closely (simulator `GroundTruth.raw_hg_envelope`: median r 0.79 vs 0.74), but
    most of what 20 Hz removes is the band-limited carrier's own random amplitude fluctuation, which
    carries no speech information: against the response that decoders must recover
    (`GroundTruth.envelope`) r drops from 0.59 to 0.46. 20 Hz is also close to SWPD's temporal
    resolution (50 ms windows: a boxcar whose first null is at 20 Hz). Measured on the simulated
    sEEG participant of tests/test_preprocess_simulated.py; causal mode needs a smoother anyway.
    """

    band_low_hz: float = 70.0            # Hz, lower edge of the high-gamma band-pass
    band_high_hz: float = 150.0          # Hz, upper edge (150 Flinker, 170 SWPD)
    filter_order: int = 4                # Butterworth order per band edge (sos design, scipy.signal.butter)
    line_noise_hz: float = 0.0           # Hz, mains frequency to notch (50 or 60); 0 = auto-detect; -1 = no notch
    notch_q: float = 30.0                # quality factor of each harmonic notch (scipy.signal.iirnotch)
    frame_rate_hz: float = 125.0         # Hz, output frame rate (125 = 8 ms hop, 100 = 10 ms hop)
    causal: bool = False                 # forward-only filters and a streaming envelope (real-time); else zero-phase + Hilbert
    envelope_lowpass_hz: float = 20.0    # Hz, envelope low-pass before framing (zero-phase offline, causal otherwise; 0 = none offline)
    seeg_reference: Literal["shaft_average", "bipolar"] = "shaft_average"  # sEEG re-reference (per `group` shaft)
    ecog_reference: Literal["car", "none"] = "car"  # ECoG: common average over good channels of each grid
    log_envelope: bool = False           # take log(envelope) after frame averaging
    zscore: Literal["baseline", "none"] = "baseline"  # per-channel z-score against the pre-stimulus baseline
    baseline_start_s: float = -0.25      # s relative to speech onset, baseline window start
    baseline_stop_s: float = -0.05       # s relative to speech onset, baseline window end
    baseline_split: str = "flinker"      # baseline statistics pool the trials outside this split's test set:
                                         # "flinker", "kfold", "lowo", "swpd" (make_split), or "all" (every trial)
    baseline_fold: int = 0               # test fold of baseline_split (kfold / lowo / swpd), index
    baseline_n_folds: int = 10           # folds of baseline_split (kfold / swpd), count
    clip_sd: float = 10.0                # sd, clip z-scores to +-clip_sd (0 = no clipping)
    block_channels: int = 8              # channels per offline block (peak memory grows with n_jobs x block_channels)
    n_jobs: int = 2                      # threads working on channel blocks offline (memory grows with it)
    block_s: float = 30.0                # s, chunk length of the causal pass over a whole recording

    def __post_init__(self) -> None:
        check_range("band_low_hz", self.band_low_hz, 1.0, None)
        if self.band_high_hz <= self.band_low_hz:
            raise ConfigError(f"band_high_hz ({self.band_high_hz}) must exceed band_low_hz ({self.band_low_hz}); "
                              "use e.g. 70-150 Hz (Flinker) or 70-170 Hz (SWPD).")
        check_option("frame_rate_hz", self.frame_rate_hz, (125.0, 100.0))
        check_option("seeg_reference", self.seeg_reference, ("shaft_average", "bipolar"))
        check_option("ecog_reference", self.ecog_reference, ("car", "none"))
        check_option("zscore", self.zscore, ("baseline", "none"))
        check_option("baseline_split", self.baseline_split, ("flinker", "kfold", "lowo", "swpd", "all"))
        if self.line_noise_hz not in (0.0, -1.0, 50.0, 60.0):
            raise ConfigError(f"line_noise_hz must be 50, 60, 0 (auto-detect) or -1 (no notch), got {self.line_noise_hz}.")
        check_range("filter_order", self.filter_order, 1, 10)
        check_range("clip_sd", self.clip_sd, 0.0, None)
        check_range("envelope_lowpass_hz", self.envelope_lowpass_hz, 0.0, None)
        check_range("block_channels", self.block_channels, 1, None)
        check_range("n_jobs", self.n_jobs, 1, 64)
        check_range("block_s", self.block_s, 0.01, None)
        if self.baseline_stop_s <= self.baseline_start_s:
            raise ConfigError(f"baseline_stop_s ({self.baseline_stop_s}) must exceed baseline_start_s ({self.baseline_start_s}).")


CHANNEL_SETS = ("all", "ld_from_hb")


@dataclass
class PrepareConfig:
    """Everything `prepare` derives from a Recording (high gamma at 125 Hz + aligned speech features).

    The neural features are NOT normalised here (normalisation depends on the split: `Normalizer`).
    """

    band_low_hz: float = 70.0            # Hz, high-gamma band-pass lower edge (raw recordings only)
    band_high_hz: float = 150.0          # Hz, high-gamma band-pass upper edge (raw recordings only)
    filter_order: int = 4                # Butterworth order per band edge
    line_noise_hz: float = 0.0           # Hz, 50 or 60; 0 = auto-detect; -1 = no notch
    causal: bool = False                 # causal high gamma (forward-only filters) instead of zero-phase + Hilbert
    envelope_lowpass_hz: float = 20.0    # Hz, envelope low-pass before framing (anti-alias + smoothing; 0 = none offline)
    seeg_reference: Literal["shaft_average", "bipolar"] = "shaft_average"  # sEEG re-reference
    log_envelope: bool = False           # log of the envelope after frame averaging
    praat: bool = True                   # compute Praat pitch / formants / intensity (parselmouth)
    pitch_floor_hz: float = 0.0          # Hz, Praat pitch floor; 0 = from sex (M 60, F 100, unknown 60)
    pitch_ceiling_hz: float = 0.0        # Hz, Praat pitch ceiling; 0 = from sex (M 300, F 500, unknown 500)
    max_formant_hz: float = 0.0          # Hz, Praat Burg ceiling; 0 = from sex (M 5000, F 5500, unknown 5500)
    formant_window_s: float = 0.025      # s, Praat Burg analysis window
    noise_context_s: float = 1.0         # s, pre-onset span searched for background-noise frames
    noise_guard_s: float = 0.1           # s, margin kept away from any speech segment for noise frames
    channels: str = "all"                # contacts used: "all", or "ld_from_hb": only the macro contacts of a
                                         # hybrid-density grid (channel group "macro"), as a low-density grid would
                                         # record them, so LD vs HB on one participant is one setting apart

    def __post_init__(self) -> None:
        self.high_gamma_config()  # validates the shared fields
        check_option("prepare.channels", self.channels, CHANNEL_SETS)
        check_range("formant_window_s", self.formant_window_s, 0.005, 0.1)
        check_range("noise_context_s", self.noise_context_s, 0.0, None, inclusive=False)
        check_range("noise_guard_s", self.noise_guard_s, 0.0, None)
        for name in ("pitch_floor_hz", "pitch_ceiling_hz", "max_formant_hz"):
            check_range(name, getattr(self, name), 0.0, None)

    def high_gamma_config(self) -> HighGammaConfig:
        """The extraction settings `prepare` uses: 125 Hz frames, no z-score and no clipping (split-dependent)."""
        return HighGammaConfig(band_low_hz=self.band_low_hz, band_high_hz=self.band_high_hz,
                               filter_order=self.filter_order, line_noise_hz=self.line_noise_hz,
                               frame_rate_hz=125.0, causal=self.causal, envelope_lowpass_hz=self.envelope_lowpass_hz,
                               seeg_reference=self.seeg_reference, log_envelope=self.log_envelope,
                               zscore="none", clip_sd=0.0)
