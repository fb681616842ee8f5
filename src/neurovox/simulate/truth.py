"""The simulator's high-gamma ground truth at a pipeline's declared band and envelope bandwidth.

`GroundTruth.raw_hg_envelope` is the frame-averaged Hilbert amplitude of the noiseless high-gamma
component of the raw voltage at FULL bandwidth: it holds the 65-175 Hz carrier's whole amplitude
fluctuation (up to ~100 Hz) and has no filter delay. A pipeline that declares a band (e.g. 70-170 Hz)
and an envelope low-pass (e.g. 20 Hz) promises the amplitude in that band at that bandwidth, and
in causal mode with its filters' delay. `ground_truth_high_gamma` is that same quantity, computed
from the noiseless component with the pipeline's OWN linear filters (`neurovox.preprocess`):

    x        = GroundTruth.raw_hg_component                      (V, raw rate, before any noise)
    y        = band-pass(x)      notches at the mains harmonics + Butterworth band, exactly
                                 `design_sos(...)` of `extract_high_gamma`; zero-phase
                                 (`sosfiltfilt`) offline, forward (`sosfilt`) when cfg.causal
    a        = |y + i H(y)|      exact Hilbert amplitude (the quantity; the causal pipeline
                                 estimates it by rectifying, which is part of what is scored)
    a_smooth = low-pass(a)       2nd-order Butterworth at cfg.envelope_lowpass_hz, zero-phase offline,
                                 forward when causal (0 = none, offline only), as in the pipeline
    frames   = frame averages over [i / rate, (i + 1) / rate)   (`frame_starts`, `frame_average`)
    (log of the frames when cfg.log_envelope)

So the reference is what the pipeline would output from the noiseless high gamma alone, with no
1/f background, common mode, white or line noise, no other contact's signal (no re-reference) and
no rectification error: what is left to score is exactly what preprocessing should get right.
Causal output frame i is compared with frame i (same filters, same delay: no lag search). The
baseline z-score and clipping are not applied (Pearson r does not see an affine map; clipping at
10 sd hardly acts).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.fft
import scipy.signal as ss

from typing import TYPE_CHECKING

from neurovox.errors import ConfigError, DataError

if TYPE_CHECKING:  # runtime imports stay lazy: `import neurovox.simulate` does not load preprocess
    from neurovox.preprocess.config import HighGammaConfig
    from neurovox.simulate.participant import GroundTruth


def ground_truth_high_gamma(gt: GroundTruth, cfg: HighGammaConfig, line_hz: float | None = None) -> np.ndarray:
    """The noiseless high gamma at the band, envelope bandwidth and causality that `cfg` declares.

    Parameters
    ----------
    gt : GroundTruth
        Of a raw simulation kept with `simulate(..., keep_raw_hg_component=True)`.
    cfg : HighGammaConfig
        The settings the scored `extract_high_gamma` / `CausalHighGamma` ran with (band, filter
        order, notch Q, envelope low-pass, frame rate, causal, log).
    line_hz : float, optional
        Mains frequency whose harmonics the pipeline notched (0 = none). Default: cfg.line_noise_hz
        when set (50 / 60; -1 = none), else the simulated line frequency (what auto-detection finds;
        the Recording's notes say which it used).

    Returns
    -------
    frames : ndarray, shape (n_frames, n_channels), float64
        Frame i averages over [i / cfg.frame_rate_hz, (i + 1) / cfg.frame_rate_hz) s, every complete
        frame of the raw span, in channel-table order (flat bad channels: 0). Volts (log V if
        cfg.log_envelope).
    """
    from neurovox.preprocess.config import HighGammaConfig
    from neurovox.preprocess.reference import design_sos, frame_average, frame_starts
    from neurovox.utils.check import validate_type

    validate_type(cfg, HighGammaConfig, "cfg")
    x = getattr(gt, "raw_hg_component", None)
    if x is None:
        raise DataError("ground_truth_high_gamma needs GroundTruth.raw_hg_component, which this ground truth lacks "
                        "(high-gamma simulation, or raw without it). Simulate with "
                        "simulate(cfg, seed, ('raw',), keep_raw_hg_component=True).")
    sfreq_hz = float(gt.config["raw_sfreq_hz"])
    if line_hz is None:
        line_hz = cfg.line_noise_hz if cfg.line_noise_hz != 0 else float(gt.line_freq_hz)
    line_hz = max(float(line_hz), 0.0)
    if cfg.causal and not 0 < cfg.envelope_lowpass_hz < sfreq_hz / 2:
        raise ConfigError(f"causal mode needs 0 < envelope_lowpass_hz < Nyquist ({sfreq_hz / 2:g} Hz), "
                          f"got {cfg.envelope_lowpass_hz}.")
    sos_band = design_sos(sfreq_hz, cfg.band_low_hz, cfg.band_high_hz, cfg.filter_order, line_hz, cfg.notch_q)
    sos_env = (ss.butter(2, cfg.envelope_lowpass_hz, btype="lowpass", fs=sfreq_hz, output="sos")
               if 0 < cfg.envelope_lowpass_hz < sfreq_hz / 2 else None)
    filt = ss.sosfilt if cfg.causal else ss.sosfiltfilt
    n = x.shape[0]
    n_fft = scipy.fft.next_fast_len(n, real=True)
    starts = frame_starts(n, sfreq_hz, cfg.frame_rate_hz)
    out = np.empty((len(starts) - 1, x.shape[1]), np.float64)
    for c0 in range(0, x.shape[1], 16):                       # blocks of channels bound the memory
        cs = slice(c0, min(c0 + 16, x.shape[1]))
        y = filt(sos_band, x[:, cs].astype(np.float64), axis=0)
        amp = np.abs(ss.hilbert(y, N=n_fft, axis=0)[:n])      # as the pipeline: padded to a fast length
        if sos_env is not None:
            amp = filt(sos_env, amp, axis=0)
        out[:, cs] = frame_average(amp, starts)
    if cfg.log_envelope:
        out = np.log(np.maximum(out, 1e-30))
    return out


OWN_SPEECH_DRIVES = ("articulatory", "auditory_own", "planning")


def encoding_strength(sim_dir: str | Path) -> tuple[list[str], np.ndarray]:
    """Per-electrode strength of the own-speech encoding of a realistic simulated participant: the SD over the
    session of the summed drives tied to the participant's own speech (articulatory, auditory feedback,
    planning; `drive_<component>` in ground_truth.npz) divided by the contact's noise SD, i.e. the
    amplitude SNR of what a decoder of the spoken audio can use. Non-encoding contacts and bad
    channels: 0. Returns (channel names, strengths (n_channels,))."""
    import json

    sim_dir = Path(sim_dir)
    try:
        gt = json.loads((sim_dir / "ground_truth.json").read_text())
        arrays = np.load(sim_dir / "ground_truth.npz", allow_pickle=False)
    except FileNotFoundError as err:
        raise DataError(f"{str(sim_dir)!r} holds no simulator ground truth ({err.filename} missing): pass the folder "
                        "`neurovox simulate --out` wrote.") from None
    if gt.get("encoding") != "realistic":
        raise DataError(f"Encoding strength per electrode is defined for the realistic encoding model; {str(sim_dir)!r} "
                        f"was simulated with {gt.get('encoding')!r}.")
    names = list(gt["ch_names"])
    var = np.zeros(len(names))
    for comp in OWN_SPEECH_DRIVES:
        drive, chans = arrays[f"drive_{comp}"], arrays[f"drive_{comp}_channels"]
        for j, ch in enumerate(chans):
            var[int(ch)] += float(drive[:, j].var())
    strength = np.sqrt(var) / np.maximum(arrays["noise_sd"], 1e-12)
    strength[[names.index(b) for b in gt.get("bad_channel_names", [])]] = 0.0
    return names, strength
