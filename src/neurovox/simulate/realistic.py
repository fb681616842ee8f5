"""The realistic encoding model (`SimulateConfig.encoding = "realistic"`, the default): named
components, each with its own ground truth, in place of the linear filter of the spectrogram.

Each responsive contact has one role (`ROLES`), set by its position (`make_sites`):

    sensorimotor        articulatory kinematics (`phones.kinematics`) -> L-N response, leading the audio
    auditory_onset      transient at the onset of sound after silence (heard stimulus, and own voice suppressed)
    auditory_sustained  phonetic features + loudness of what is heard (stimulus; own voice suppressed)
    planning            ramp before speech onset, silent during articulation, weak word identity
    none                no speech response (noise only)

Every component is a linear-nonlinear (L-N) cascade (frames at 125 Hz, x the component's input):

    u_c(t)   = (K_c * w_c . x)(t - lag_c)          K_c: causal gamma kernel (order 2), time constant tau_c
                                                   (peak at tau_c; the shift makes the PEAK delay = lag_c)
    r_c(t)   = NR((u_c(t) / z_c - theta_c)_+ / (1 - theta_c))     z_c: 99th percentile of u_c over the session
    NR(v)    = v^2 / (v^2 + c50_c^2) * (1 + c50_c^2)               rectifying, saturating (Naka-Rushton, NR(1) = 1)

and the contact's contribution to the envelope is

    drive_c(t) = A_c * g_trial(t, c) * exp(d_c(t)) * r_c(t - delta_trial)

with A_c the amplitude (1-3 x baseline), g_trial a per-trial gain (shared lognormal x per-contact
lognormal), d_c a slow log-gain drift, delta_trial a per-trial latency jitter (applied by
shifting each trial's inputs). The observed envelope is 1 + sum of drives + noise; the noise
(common pink + own pink + white, like the linear model's) has a level set so that a contact with
the median responsive signal variance has the stated SNR, drifts slowly, and carries occasional
artefact bursts. Inputs:

- articulatory kinematics of the participant's own words (9 articulators + speed), phones
  aligned to each trial's speech span (`phones`);
- heard speech: in tasks with an auditory stimulus (`HEARD_TASKS`) a corpus word spoken by another
  voice (the same word for repetition, another word standing for the cue's last word otherwise)
  ends 0.3-0.7 s before the spoken response; it is not in the microphone audio;
- own voice: the participant's clean audio (loudness) and phones (phonetic features);
- planning events: per trial, a ramp start 0.4-0.9 s before speech onset (never before the
  stimulus offset or the previous word's offset).

docs/simulator.md lists the published fact behind each choice.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter1d
from scipy.signal import fftconvolve
from scipy.special import ndtr

from neurovox import dsp
from neurovox.simulate import phones
from neurovox.simulate.config import SimulateConfig
from neurovox.simulate.layouts import Layout
from neurovox.simulate.neural import mixed_noise, shift_frames, smooth_fields
from neurovox.simulate.speech import _speech_span, _stretch

ROLES = ("sensorimotor", "auditory_onset", "auditory_sustained", "planning", "none")
COMPONENTS = ("articulatory", "auditory_heard", "auditory_own", "planning")
HEARD_TASKS = ("auditory_repetition", "auditory_naming", "sentence_completion")
N_AUDITORY_INPUTS = phones.N_PHONETIC + 1      # phonetic features + loudness

LOUDNESS_REF_DBFS = -6.0        # frame RMS mapped to loudness 1
LOUDNESS_RANGE_DB = 60.0        # ... and this far below it to 0
ADAPT_ATTACK_S = 0.15           # onset sites: adaptation builds up over ~150 ms of sound
ADAPT_RELEASE_S = 1.0           # ... and recovers over ~1 s of silence
NR_EXPONENT = 2.0
PLAN_DECAY_S = 0.15             # planning activity falls off after its peak (quiet during articulation)
ARTIFACT_RADIUS_M = 0.02        # a local artefact reaches contacts within this distance
# integration time constants (s) of the gamma kernel per role (kernel lasts ~5 tau)
TAU_RANGE_S = {"sensorimotor": (0.02, 0.06), "auditory_onset": (0.02, 0.05), "auditory_sustained": (0.04, 0.12)}
THRESHOLD_RANGE = (0.05, 0.25)  # rectification threshold, fraction of the drive's 99th percentile
C50_RANGE = (0.3, 0.6)          # semi-saturation, same units


@dataclass
class Sites:
    """Per-contact parameters of the realistic model (arrays over channels, channel-table order).

    role : (n,) str, one of ROLES.
    lag_s : (n,) delay of the response peak relative to its input (s): negative = leads the audio
        (sensorimotor: -lead; planning: -(peak time before speech onset)); auditory: delay after
        the sound; NaN for "none".
    tau_s : (n,) integration time constant (s) of the gamma kernel (NaN: planning, none).
    kin_weights : (n, 10) weights over `phones.KINEMATIC_FEATURES` (sensorimotor, else 0).
    aud_weights : (n, 8) weights over `phones.PHONETIC_FEATURES` + loudness (auditory_sustained).
    threshold, c50 : (n,) rectification threshold and semi-saturation of the nonlinearity.
    scale : (n,) z_c, the 99th percentile of the linear drive (set when first simulated).
    amplitude : (n,) response amplitude at full drive (multiples of the baseline).
    own_gain : (n,) response to one's own voice relative to heard speech (auditory; 1 elsewhere).
    word_gain : (n, n_words) planning sites' gain per corpus word (word identity; 1 elsewhere).
    snr_db : (n,) stated SNR (dB) of each contact.
    """

    role: np.ndarray
    lag_s: np.ndarray
    tau_s: np.ndarray
    kin_weights: np.ndarray
    aud_weights: np.ndarray
    threshold: np.ndarray
    c50: np.ndarray
    scale: np.ndarray
    amplitude: np.ndarray
    own_gain: np.ndarray
    word_gain: np.ndarray
    snr_db: np.ndarray

    def mask(self, role: str) -> np.ndarray:
        return self.role == role

    @property
    def responsive(self) -> np.ndarray:
        return self.role != "none"

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Arrays for ground_truth.npz, each prefixed `site_`."""
        out = {f"site_{f.name}": getattr(self, f.name) for f in fields(self)}
        out["site_role"] = np.asarray(self.role, dtype="U20")
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "Sites":
        kw = {f.name: np.asarray(arrays[f"site_{f.name}"]) for f in fields(cls)}
        kw["role"] = kw["role"].astype(str)
        return cls(**kw)


# ------------------------------------------------------------------------------------ sites
def _assign_roles(layout: Layout, cfg: SimulateConfig, rng: np.random.Generator) -> np.ndarray:
    """Roles from position: dorsal = sensorimotor (vSMC), ventral = auditory (STG, onset posterior,
    sustained anterior), anterior = planning (IFG / premotor); smooth random fields blur the borders."""
    xyz = layout.xyz_m
    n = len(xyz)
    if layout.name == "seeg":
        dorsal, anterior = xyz[:, 2], xyz[:, 1]
    else:
        dorsal, anterior = -xyz[:, 1], xyz[:, 0]            # grid row 0 on top, columns run posterior -> anterior
    z = lambda a: (a - a.mean()) / (a.std() + 1e-12)        # noqa: E731
    dorsal, anterior = z(dorsal), z(anterior)
    f = smooth_fields(xyz, 4, cfg.spatial_length_mm * 1e-3, rng)
    scores = {"sensorimotor": 1.5 * dorsal + f[0], "auditory_onset": -1.5 * dorsal - 0.8 * anterior + f[1],
              "auditory_sustained": -1.5 * dorsal + 0.8 * anterior + f[1],
              "planning": 1.2 * anterior + 0.3 * dorsal + f[2]}
    n_resp = int(round(cfg.responsive_fraction * n))
    n_sm = int(round(cfg.sensorimotor_share * n_resp))
    n_aud = int(round(cfg.auditory_share * n_resp))
    n_on = int(round(cfg.onset_share * n_aud))
    counts = {"sensorimotor": n_sm, "auditory_onset": n_on, "auditory_sustained": n_aud - n_on,
              "planning": max(0, n_resp - n_sm - n_aud)}
    role = np.full(n, "none", dtype="U20")
    # a responsive contact must be among the "responsive" half of a smooth field, then roles greedily by score
    eligible = f[3] >= np.sort(f[3])[::-1][min(n - 1, int(round(1.6 * n_resp)))] if n_resp else np.zeros(n, bool)
    for name, k in counts.items():
        free = np.flatnonzero((role == "none") & eligible)
        if len(free) < k:
            free = np.flatnonzero(role == "none")
        pick = free[np.argsort(-scores[name][free], kind="stable")[:k]]
        role[pick] = name
    return role


def make_sites(layout: Layout, cfg: SimulateConfig, n_words: int, rng: np.random.Generator) -> Sites:
    """Draw every contact's role and parameters (spatially smooth where it matters)."""
    n = layout.n_channels
    role = _assign_roles(layout, cfg, rng)
    f = smooth_fields(layout.xyz_m, 6, cfg.spatial_length_mm * 1e-3, rng)
    u = ndtr(f)                                                     # uniform-ish marginals, smooth in space
    sm, on, sus, plan = (role == r for r in ROLES[:4])
    lag = np.full(n, np.nan)
    lag[sm] = -(cfg.lead_min_s + (cfg.lead_max_s - cfg.lead_min_s) * u[0][sm])
    aud = on | sus
    lag[aud] = cfg.stg_lag_min_s + (cfg.stg_lag_max_s - cfg.stg_lag_min_s) * u[0][aud]
    lag[plan] = -(0.05 + 0.25 * u[0][plan])                         # planning peak 50-300 ms before onset
    tau = np.full(n, np.nan)
    for name, (lo, hi) in TAU_RANGE_S.items():
        m = role == name
        tau[m] = lo + (hi - lo) * rng.uniform(size=m.sum())
    # sensorimotor tuning: a primary articulator laid out somatotopically (smooth field), a secondary
    # one of either sign and some sensitivity to movement speed
    n_art = len(phones.ARTICULATORS)
    kin_w = np.zeros((n, phones.N_KINEMATIC))
    primary = np.minimum((u[1] * n_art).astype(int), n_art - 1)
    for c in np.flatnonzero(sm):
        kin_w[c, primary[c]] = 1.0
        other = rng.choice([j for j in range(n_art) if j != primary[c]])
        kin_w[c, other] = rng.uniform(-0.5, 0.5)
        kin_w[c, -1] = rng.uniform(0.0, 0.5)
    # sustained auditory tuning: a primary phonetic feature, a secondary one, plus loudness
    aud_w = np.zeros((n, N_AUDITORY_INPUTS))
    primary = np.minimum((u[2] * phones.N_PHONETIC).astype(int), phones.N_PHONETIC - 1)
    for c in np.flatnonzero(sus):
        aud_w[c, primary[c]] = 1.0
        other = rng.choice([j for j in range(phones.N_PHONETIC) if j != primary[c]])
        aud_w[c, other] = rng.uniform(0.0, 0.5)
        aud_w[c, -1] = rng.uniform(0.2, 0.5)
    aud_w[on, -1] = 1.0                                             # onset sites: transient of loudness
    threshold = THRESHOLD_RANGE[0] + (THRESHOLD_RANGE[1] - THRESHOLD_RANGE[0]) * rng.uniform(size=n)
    c50 = C50_RANGE[0] + (C50_RANGE[1] - C50_RANGE[0]) * rng.uniform(size=n)
    amplitude = 1.0 + 2.0 * u[3]
    own = np.ones(n)
    own[aud] = cfg.own_voice_gain_min + (cfg.own_voice_gain_max - cfg.own_voice_gain_min) * u[4][aud]
    word_gain = np.ones((n, n_words))
    word_gain[plan] = np.clip(1.0 + cfg.word_identity_depth * rng.standard_normal((plan.sum(), n_words)), 0.2, None)
    snr = cfg.snr_db + rng.uniform(-cfg.snr_spread_db, cfg.snr_spread_db, n)
    none = role == "none"
    threshold[none] = c50[none] = amplitude[none] = np.nan
    return Sites(role=role, lag_s=lag, tau_s=tau, kin_weights=kin_w, aud_weights=aud_w, threshold=threshold, c50=c50,
                 scale=np.full(n, np.nan), amplitude=amplitude, own_gain=own, word_gain=word_gain, snr_db=snr)


# ------------------------------------------------------------------------------------ inputs
def loudness(audio: np.ndarray) -> np.ndarray:
    """Frame loudness (n_frames,) in [0, 1]: frame RMS in dB re `LOUDNESS_REF_DBFS` over a 60 dB range."""
    n = len(audio) // dsp.HOP_SAMPLES
    rms = np.sqrt(np.mean(audio[: n * dsp.HOP_SAMPLES].reshape(n, dsp.HOP_SAMPLES).astype(np.float64) ** 2, axis=1))
    db = 20 * np.log10(rms + 1e-10)
    return np.clip((db - LOUDNESS_REF_DBFS + LOUDNESS_RANGE_DB) / LOUDNESS_RANGE_DB, 0, 1).astype(np.float32)


def transient(loud: np.ndarray, frame_rate_hz: float) -> np.ndarray:
    """Onset input: loudness above an adaptation state that builds up fast during sound
    (`ADAPT_ATTACK_S`) and recovers slowly in silence (`ADAPT_RELEASE_S`), rectified."""
    a_att, a_rel = 1.0 / (ADAPT_ATTACK_S * frame_rate_hz), 1.0 / (ADAPT_RELEASE_S * frame_rate_hz)
    state, out = 0.0, np.empty_like(loud)
    for i, x in enumerate(loud.tolist()):
        out[i] = x - state if x > state else 0.0
        state += (x - state) * (a_att if x > state else a_rel)
    return out


def stretch_to_span(audio: np.ndarray, onset_s: float, offset_s: float,
                    sfreq_hz: int = dsp.SAMPLE_RATE_HZ) -> tuple[int, np.ndarray]:
    """(start_sample, wave): `audio` (an utterance) resampled so its speech span (`speech._speech_span`)
    lasts offset_s - onset_s, and the sample where it must start for that span to begin at onset_s."""
    s0, s1 = _speech_span(audio, sfreq_hz)
    rate = (s1 - s0) / max((offset_s - onset_s) * sfreq_hz, 1.0)
    wave = _stretch(np.asarray(audio, np.float32), rate)
    return int(round(onset_s * sfreq_hz - s0 / rate)), wave


def add_at(track: np.ndarray, start: int, wave: np.ndarray) -> None:
    """track[start:start + len(wave)] += wave, cut at the track's ends (in place)."""
    a, b = max(start, 0), min(start + len(wave), len(track))
    if b > a:
        track[a:b] += wave[a - start:b - start]


def place_word(audio: np.ndarray, onset_s: float, offset_s: float, n_frames: int) -> np.ndarray:
    """A silent track of n_frames * 128 samples holding `audio` fitted to [onset_s, offset_s] (`stretch_to_span`)."""
    track = np.zeros(n_frames * dsp.HOP_SAMPLES, np.float32)
    add_at(track, *stretch_to_span(audio, onset_s, offset_s))
    return track


@dataclass
class SpeechInputs:
    """What one side (own voice or heard speech) feeds the model, frames at 125 Hz."""

    kin: np.ndarray | None       # (n_frames, 10) articulatory kinematics (own speech only)
    phon: np.ndarray             # (n_frames, 7) phonetic features
    loud: np.ndarray             # (n_frames,) loudness


def word_events(words: list[tuple[str, float, float]]) -> list[tuple[str, float, float]]:
    """Phone events of words given as (word, onset_s, offset_s)."""
    return [e for w, a, b in words for e in phones.align_word(w, a, b)]


def speech_inputs(words: list[tuple[str, float, float]], audio: np.ndarray, n_frames: int, frame_rate_hz: float,
                  with_kinematics: bool) -> SpeechInputs:
    """Inputs from words (word, onset_s, offset_s) and the clean audio that carries them."""
    events = word_events(words)
    kin = phones.kinematics(events, [(a, b) for _, a, b in words], n_frames, frame_rate_hz) if with_kinematics else None
    return SpeechInputs(kin=kin, phon=phones.phonetic_features(events, n_frames, frame_rate_hz), loud=loudness(audio))


# ------------------------------------------------------------------------------------ responses
def gamma_kernel_filter(x: np.ndarray, tau_s: np.ndarray, frame_rate_hz: float) -> np.ndarray:
    """Causal order-2 gamma (alpha) kernel h(t) ~ t exp(-t / tau) per column (peak delay tau_s, unit
    sum, cut at 8 tau), x: (n_frames, k) -> (n_frames, k)."""
    n_taps = int(np.ceil(8 * np.max(tau_s) * frame_rate_hz)) + 1
    t = np.arange(n_taps)[:, None] / frame_rate_hz
    h = t * np.exp(-t / tau_s[None, :]) * (t <= 8 * tau_s[None, :])
    h /= h.sum(axis=0, keepdims=True)
    return fftconvolve(x, h, axes=0)[: x.shape[0]]


def _ln(drive: np.ndarray, cols: np.ndarray, sites: Sites, frame_rate_hz: float, set_scale: bool) -> np.ndarray:
    """Integrate, shift to the sites' lag, normalise, rectify and saturate. drive: (n_frames, len(cols))."""
    tau = sites.tau_s[cols]
    u = gamma_kernel_filter(drive.astype(np.float64), tau, frame_rate_hz)
    u = shift_frames(u, (sites.lag_s[cols] - tau) * frame_rate_hz)      # kernel peak at lag_s
    if set_scale:
        sites.scale[cols] = np.maximum(np.percentile(u, 99.0, axis=0), 1e-6)
    th, c50 = sites.threshold[cols], sites.c50[cols]
    v = np.maximum(u / sites.scale[cols] - th, 0.0) / (1.0 - th)
    vn = v ** NR_EXPONENT
    return (vn / (vn + c50 ** NR_EXPONENT) * (1.0 + c50 ** NR_EXPONENT)).astype(np.float32)


def articulatory_response(sites: Sites, kin: np.ndarray, frame_rate_hz: float, set_scale: bool = False) -> np.ndarray:
    """r (n_frames, n_channels) of the sensorimotor contacts to kinematics kin (n_frames, 10); 0 elsewhere."""
    out = np.zeros((kin.shape[0], len(sites.role)), np.float32)
    cols = np.flatnonzero(sites.mask("sensorimotor"))
    if len(cols):
        out[:, cols] = _ln(kin @ sites.kin_weights[cols].T, cols, sites, frame_rate_hz, set_scale)
    return out


def auditory_response(sites: Sites, inp: SpeechInputs, frame_rate_hz: float, set_scale: bool = False) -> np.ndarray:
    """r (n_frames, n_channels) of the auditory contacts to heard speech `inp`, before the own-voice gain."""
    out = np.zeros((len(inp.loud), len(sites.role)), np.float32)
    cols = np.flatnonzero(sites.mask("auditory_sustained"))
    if len(cols):
        x = np.concatenate([inp.phon, inp.loud[:, None]], axis=1)
        out[:, cols] = _ln(x @ sites.aud_weights[cols].T, cols, sites, frame_rate_hz, set_scale)
    cols = np.flatnonzero(sites.mask("auditory_onset"))
    if len(cols):
        x = np.repeat(transient(inp.loud, frame_rate_hz)[:, None], len(cols), axis=1)
        out[:, cols] = _ln(x, cols, sites, frame_rate_hz, set_scale)
    return out


def planning_response(sites: Sites, trials: pd.DataFrame, start_s: np.ndarray, word_index: np.ndarray,
                      n_frames: int, frame_rate_hz: float) -> np.ndarray:
    """r (n_frames, n_channels) of the planning contacts: per trial a smooth rise from start_s to a peak
    -lag_s before speech onset, then an exponential fall (`PLAN_DECAY_S`), times the word's gain."""
    out = np.zeros((n_frames, len(sites.role)), np.float32)
    cols = np.flatnonzero(sites.mask("planning"))
    if not len(cols):
        return out
    t = np.arange(n_frames) / frame_rate_hz
    for k, onset in enumerate(trials["onset_s"].to_numpy(float)):
        i0, i1 = np.searchsorted(t, start_s[k] - 0.05), np.searchsorted(t, onset + 8 * PLAN_DECAY_S)
        tt = t[i0:i1, None]
        peak = onset + sites.lag_s[cols][None, :]
        start = np.minimum(start_s[k], peak - 0.05)
        x = np.clip((tt - start) / (peak - start), 0, 1)
        rise = x * x * (3 - 2 * x)                                          # smoothstep
        fall = np.exp(-np.maximum(tt - peak, 0) / PLAN_DECAY_S)
        gain = sites.word_gain[cols, word_index[k]][None, :]
        out[i0:i1, cols] += (np.where(tt < peak, rise, fall) * gain).astype(np.float32)
    return out


# ------------------------------------------------------------------------------------ session
def stimulus_plan(trials: pd.DataFrame, words: tuple[str, ...], cfg: SimulateConfig,
                  durations_s: dict[str, float], rng: np.random.Generator) -> pd.DataFrame:
    """Heard stimulus of every trial: word, onset_s, offset_s (NaN / "" for tasks without one).

    Repetition hears the word it will say; naming and sentence completion hear another word (the
    cue's last word). The stimulus ends a gap of stimulus_gap_min_s-max_s before the speech onset
    and starts at least 0.2 s after the previous word's offset (spoken faster if it does not fit otherwise).
    """
    onset, offset = trials["onset_s"].to_numpy(float), trials["offset_s"].to_numpy(float)
    word, s_on, s_off = [""] * len(trials), np.full(len(trials), np.nan), np.full(len(trials), np.nan)
    for k, (task, label) in enumerate(zip(trials["task"], trials["label"])):
        other = str(rng.choice([w for w in words if w != label]))
        gap = rng.uniform(cfg.stimulus_gap_min_s, cfg.stimulus_gap_max_s)
        if task not in HEARD_TASKS:
            continue
        w = label if task == "auditory_repetition" else other
        earliest = (offset[k - 1] if k else 0.0) + 0.2
        start = max(onset[k] - gap - durations_s[w], earliest)
        stop = min(start + durations_s[w], onset[k] - 0.15)
        if stop - start < 0.1:
            continue
        word[k], s_on[k], s_off[k] = w, start, stop
    return pd.DataFrame({"word": word, "onset_s": s_on, "offset_s": s_off})


def piecewise_shift(x: np.ndarray, segments_s: np.ndarray, shift_s: np.ndarray, frame_rate_hz: float) -> np.ndarray:
    """y(t) = x(t - shift_k) for t in segment k (linear interpolation), x: (n_frames, k) or (n_frames,)."""
    n = x.shape[0]
    t = np.arange(n)
    seg = np.clip(np.searchsorted(segments_s[:, 1] * frame_rate_hz, t, side="right"), 0, len(shift_s) - 1)
    src = np.clip(t - shift_s[seg] * frame_rate_hz, 0, n - 1)
    i0 = np.minimum(src.astype(int), n - 2)
    w = (src - i0).astype(np.float32)
    if x.ndim == 1:
        return x[i0] * (1 - w) + x[i0 + 1] * w
    return x[i0] * (1 - w)[:, None] + x[i0 + 1] * w[:, None]


def slow_drift(n_frames: int, n_channels: int, sd: float, timescale_s: float, frame_rate_hz: float,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Log drift at 1 Hz: (times_s (n_s,), drift (n_s, n_channels)), half common to all contacts, half
    own; each contact's drift has SD `sd` over the session (Gaussian-smoothed white noise)."""
    n_s = int(np.ceil(n_frames / frame_rate_hz)) + 1
    if sd <= 0:
        return np.arange(n_s, dtype=float), np.zeros((n_s, n_channels), np.float32)
    w = np.sqrt(0.5) * rng.standard_normal((n_s, 1)) + np.sqrt(0.5) * rng.standard_normal((n_s, n_channels))
    d = gaussian_filter1d(w, timescale_s, axis=0, mode="reflect")
    d = (d - d.mean(0)) / (d.std(0) + 1e-12) * sd
    return np.arange(n_s, dtype=float), d.astype(np.float32)


def at_frames(times_s: np.ndarray, values: np.ndarray, n_frames: int, frame_rate_hz: float) -> np.ndarray:
    """Linear interpolation of a (n_s, n_channels) series onto the frame clock, (n_frames, n_channels)."""
    pos = np.arange(n_frames) / frame_rate_hz
    i0 = np.minimum(np.searchsorted(times_s, pos, side="right") - 1, len(times_s) - 2)
    w = ((pos - times_s[i0]) / (times_s[i0 + 1] - times_s[i0]))[:, None]
    return (values[i0] * (1 - w) + values[i0 + 1] * w).astype(np.float32)


def artifacts(n_frames: int, xyz_m: np.ndarray, rate_per_min: float, frame_rate_hz: float,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Artefact bursts: (burst (n_frames, n_channels) in units of each contact's noise SD, onset_s,
    duration_s, channels (n_bursts, n_channels) bool). Bursts are positive broadband transients
    (movement / muscle), 50-500 ms long, 5-20 noise SDs, on all contacts (30 %) or on the contacts
    within `ARTIFACT_RADIUS_M` of one contact."""
    n_ch = len(xyz_m)
    duration_min = n_frames / frame_rate_hz / 60
    n_bursts = int(rng.poisson(rate_per_min * duration_min))
    out = np.zeros((n_frames, n_ch), np.float32)
    onset = rng.uniform(0, n_frames / frame_rate_hz - 0.5, n_bursts) if n_bursts else np.zeros(0)
    dur = rng.uniform(0.05, 0.5, n_bursts)
    chans = np.zeros((n_bursts, n_ch), bool)
    for b in range(n_bursts):
        if rng.uniform() < 0.3:
            chans[b] = True
        else:
            chans[b] = np.linalg.norm(xyz_m - xyz_m[rng.integers(n_ch)], axis=1) <= ARTIFACT_RADIUS_M
        i0 = int(onset[b] * frame_rate_hz)
        m = max(2, int(dur[b] * frame_rate_hz))
        shape = np.hanning(m + 2)[1:-1] * rng.uniform(5, 20)
        wave = np.abs(rng.standard_normal((m, chans[b].sum()))) * shape[:, None]
        out[i0:i0 + m, chans[b]] += wave[: n_frames - i0].astype(np.float32)
    return out, onset, dur, chans


# ------------------------------------------------------------------------------------ the whole session
@dataclass
class SessionResponse:
    """What `encode_session` returns: the noiseless signal, the noise, and the truth behind them."""

    signal: np.ndarray             # (n_frames, n_channels) float32: sum of the component drives
    noise: np.ndarray              # (n_frames, n_channels) float32: noise incl. drift and artefacts
    sites: Sites
    trial_gain: np.ndarray         # (n_trials,) shared per-trial gain
    arrays: dict                   # everything else for ground_truth.npz (see GroundTruth)


def component_channels(sites: Sites) -> dict[str, np.ndarray]:
    """Channel indices that carry each component."""
    aud = np.flatnonzero(np.isin(sites.role, ("auditory_onset", "auditory_sustained")))
    return {"articulatory": np.flatnonzero(sites.mask("sensorimotor")), "auditory_heard": aud, "auditory_own": aud,
            "planning": np.flatnonzero(sites.mask("planning"))}


def encode_session(cfg: SimulateConfig, layout: Layout, timeline, corpus, voice: str, rng_sites: np.random.Generator,
                   rng_var: np.random.Generator, rng_noise: np.random.Generator,
                   frame_rate_hz: float = dsp.FRAME_RATE_HZ) -> SessionResponse:
    """Simulate every component, the variability and the noise of one session (see the module docstring).

    timeline : `speech.SpeechTimeline` of the participant; corpus : `corpus.Corpus`; voice : the participant's.
    """
    fr = frame_rate_hz
    trials, n_frames, n_ch = timeline.trials, timeline.n_frames, layout.n_channels
    n_trials = len(trials)
    onset, offset = trials["onset_s"].to_numpy(float), trials["offset_s"].to_numpy(float)
    labels = trials["label"].astype(str).tolist()
    sites = make_sites(layout, cfg, len(corpus.words), rng_sites)

    # -- inputs in the audio's time: own speech, heard stimuli (another voice, not in the microphone)
    own_words = list(zip(labels, onset, offset))
    own = speech_inputs(own_words, timeline.clean, n_frames, fr, with_kinematics=True)
    others = [v for v in corpus.voices if v != voice]
    stim_voice = others[int(rng_var.integers(len(others)))] if others else voice
    stim_utts = corpus.for_voice(stim_voice)
    span_s = {w: np.subtract(*_speech_span(u.audio, corpus.sample_rate_hz)[::-1]) / corpus.sample_rate_hz
              for w, u in stim_utts.items()}
    stim = stimulus_plan(trials, corpus.words, cfg, span_s, rng_var)

    # -- variability: per-trial latency (own side and heard side), per-trial gains
    sd = cfg.latency_jitter_sd_s
    latency = np.clip(sd * rng_var.standard_normal(n_trials), -3 * sd, 3 * sd)
    heard_latency = np.clip(sd * rng_var.standard_normal(n_trials), -3 * sd, 3 * sd)
    trial_gain = np.exp(cfg.trial_gain_sd * rng_var.standard_normal(n_trials))
    site_gain = np.exp(cfg.site_trial_gain_sd * rng_var.standard_normal((n_trials, n_ch)))

    # -- what the brain sees: own inputs shifted by each trial's latency, heard inputs likewise
    seg = timeline.segments_s
    own_n = SpeechInputs(kin=piecewise_shift(own.kin, seg, latency, fr), phon=piecewise_shift(own.phon, seg, latency, fr),
                         loud=piecewise_shift(own.loud, seg, latency, fr))
    has = np.flatnonzero(stim["word"].to_numpy() != "")
    heard_track = np.zeros(n_frames * dsp.HOP_SAMPLES, np.float32)
    heard_words = []
    for k in has:
        a, b = stim["onset_s"].iat[k] + heard_latency[k], stim["offset_s"].iat[k] + heard_latency[k]
        w = stim["word"].iat[k]
        add_at(heard_track, *stretch_to_span(stim_utts[w].audio, a, b))
        heard_words.append((w, a, b))
    heard = speech_inputs(heard_words, heard_track, n_frames, fr, with_kinematics=False)

    # -- responses (L-N per component); normalisation set on the participant's own speech
    resp = {"articulatory": articulatory_response(sites, own_n.kin, fr, set_scale=True)}
    resp["auditory_own"] = auditory_response(sites, own_n, fr, set_scale=True) * sites.own_gain[None, :].astype(np.float32)
    resp["auditory_heard"] = auditory_response(sites, heard, fr)
    prev_off = np.r_[0.0, offset[:-1]]
    lead = rng_var.uniform(cfg.plan_start_min_s, cfg.plan_start_max_s, n_trials)
    plan_start = np.fmax(np.fmax(onset - lead, prev_off + 0.1), stim["offset_s"].to_numpy(float))
    word_index = np.array([corpus.words.index(w) for w in labels])
    shifted = trials.assign(onset_s=onset + latency)
    resp["planning"] = planning_response(sites, shifted, plan_start + latency, word_index, n_frames, fr)

    # -- gains: per trial (smoothed over 0.1 s at the segment borders, in the pauses) x slow drift
    t = np.arange(n_frames) / fr
    seg_idx = np.clip(np.searchsorted(seg[:, 1], t, side="right"), 0, n_trials - 1)
    gain = gaussian_filter1d((trial_gain[:, None] * site_gain)[seg_idx], 0.1 * fr, axis=0, mode="nearest")
    drift_t, gain_drift = slow_drift(n_frames, n_ch, cfg.drift_gain_sd, cfg.drift_timescale_s, fr, rng_var)
    gain = (gain * np.exp(at_frames(drift_t, gain_drift, n_frames, fr))).astype(np.float32)
    amp = np.nan_to_num(sites.amplitude, nan=0.0).astype(np.float32)
    chans = component_channels(sites)
    arrays: dict[str, np.ndarray] = {}
    signal = np.zeros((n_frames, n_ch), np.float32)
    for name in COMPONENTS:
        c = chans[name]
        d = resp[name][:, c] * gain[:, c] * amp[c][None, :]
        signal[:, c] += d
        arrays[f"drive_{name}"] = d.astype(np.float32)
        arrays[f"drive_{name}_channels"] = c.astype(np.int64)

    # -- noise: level from the median responsive contact, slow level drift, artefact bursts
    resp_cols = np.flatnonzero(sites.responsive)
    ref_var = float(np.median(signal[:, resp_cols].var(axis=0, dtype=np.float64))) if len(resp_cols) else 1.0
    noise = mixed_noise(n_frames, n_ch, cfg, rng_noise, fr)
    noise = noise / noise.std(0)
    sd_c = np.sqrt(ref_var / 10 ** (sites.snr_db / 10)).astype(np.float32)
    _, noise_drift = slow_drift(n_frames, n_ch, cfg.drift_noise_sd, cfg.drift_timescale_s, fr, rng_noise)
    level = np.exp(noise_drift)
    level /= np.sqrt(np.mean(level ** 2, axis=0, keepdims=True))    # the stated SNR holds on average
    burst, b_on, b_dur, b_ch = artifacts(n_frames, layout.xyz_m, cfg.artifact_rate_per_min, fr, rng_noise)
    noise = ((noise * at_frames(drift_t, level, n_frames, fr) + burst) * sd_c[None, :]).astype(np.float32)

    events = word_events(own_words)
    trial_of = np.concatenate([np.full(len(phones.word_phones(w)), k) for k, w in enumerate(labels)])
    arrays.update(
        sites.to_arrays(),
        articulatory=own.kin, articulatory_names=np.asarray(phones.KINEMATIC_FEATURES, dtype="U16"),
        phonetic=own.phon, phonetic_names=np.asarray(phones.PHONETIC_FEATURES, dtype="U16"),
        phone=np.asarray([e[0] for e in events], dtype="U3"), phone_trial=trial_of.astype(np.int64),
        phone_onset_s=np.asarray([e[1] for e in events]), phone_offset_s=np.asarray([e[2] for e in events]),
        stimulus_word=stim["word"].to_numpy().astype("U16"), stimulus_onset_s=stim["onset_s"].to_numpy(float),
        stimulus_offset_s=stim["offset_s"].to_numpy(float), stimulus_voice=np.asarray(stim_voice),
        plan_start_s=plan_start, trial_latency_s=latency, stimulus_latency_s=heard_latency, site_trial_gain=site_gain,
        drift_time_s=drift_t, gain_drift=gain_drift, noise_drift=noise_drift.astype(np.float32),
        noise_sd=sd_c, artifact_onset_s=b_on, artifact_duration_s=b_dur, artifact_channels=b_ch,
        corpus_words=np.asarray(corpus.words, dtype="U16"),
    )
    return SessionResponse(signal=signal, noise=noise, sites=sites, trial_gain=trial_gain, arrays=arrays)
