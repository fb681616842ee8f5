"""The 18-parameter differentiable formant synthesizer (approach A, DESIGN.md section 3).

Raw network outputs (batch, n_frames, N_RAW) are bounded by named scale functions into physical
controls (`get_controls`), which are rendered into a 16 kHz waveform (`get_signal`); the
spectrogram is `neurovox.dsp.stft_power` of that waveform, so audio and spectrogram agree exactly.

Rendering one frame (controls are linearly interpolated between frame centres, frame t being
centred on sample t * 128 as in `neurovox.dsp`):

- voiced part: a harmonic oscillator bank, partial k at k * f0 (phase accumulated sample by sample
  across frames, partials at or above Nyquist masked), partial amplitude
  ``loudness * voicing * V(k f0)`` with the voiced filter ``V(f) = sum_i a_i P((f - F_i) / B_i)``;
- unvoiced part: white noise (from an explicit `torch.Generator`) shaped in the STFT domain by
  ``loudness * (1 - voicing) * noise_gain * U(f)``, ``U(f) = sum_i a_i P((f - F_i) / B_i) +
  a_u P((f - F_u) / B_u)``, plus the learned background noise (expected power per STFT bin
  ``exp(noise_log_power)``, initialised from a recording's silence), both through one inverse STFT
  (independent noises add in power, which is what the shared noise draw realises in expectation).

P is a single-peak shape with P(0) = 1: a Gaussian ``exp(-d^2 / 2)`` or a learned one (a mixture of
centred Gaussians with learned widths and weights, unimodal by construction). The formant
bandwidth is a fixed affine function of the centre, ``B_i = bw_intercept_hz + bw_slope * F_i``.
Scales: a partial of amplitude A gives peak STFT power (128 A)^2 (Hann 512: sum(w) / 2 = 128);
unvoiced noise of filter amplitude 1 and loudness 1 gives the same expected power per bin times
noise_gain^2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from neurovox import dsp
from neurovox.errors import ConfigError, DataError
from neurovox.synth import scale
from neurovox.utils.check import check_option, check_range

N_FORMANTS = 6
# Look-ahead of rendering (tests/test_synth_lookahead.py pins it): controls are interpolated between frame
# centres and the unvoiced part is shaped in a centred 512-sample STFT, so frame t's parameters shape the
# waveform from 256 samples (16 ms) before frame t's centre, and its spectrogram from 3 frames (24 ms) before.
LOOKAHEAD_MS = 16.0
SPEC_LOOKAHEAD_MS = 24.0
N_RAW = 18  # f0, loudness, voicing, 6 formant freqs, 6 formant amp logits, unvoiced hz/bw/amp
PARAM_NAMES = ("f0_hz", "loudness", "voicing",
               *(f"f{i + 1}_hz" for i in range(N_FORMANTS)),
               *(f"a{i + 1}" for i in range(N_FORMANTS)),
               "unvoiced_hz", "unvoiced_bw_hz", "unvoiced_amp")

# Pitch ranges (Hz): DESIGN.md gives male about 80-200 and female about 180-300; we widen each a
# little so real speakers' extremes (creak, emphasis) stay reachable.
PITCH_RANGES_HZ = {"male": (70.0, 220.0), "female": (140.0, 350.0), "wide": (60.0, 400.0)}
# Formant ranges (Hz). Female from DESIGN.md. Male: about 15 % lower (longer vocal tract, Peterson &
# Barney averages: F1 270-730, F2 840-2290, F3 1690-3010), rounded, with F5/F6 kept below 7 kHz.
# Wide: the union of both.
FORMANT_RANGES_HZ = {
    "female": ((300.0, 950.0), (700.0, 3400.0), (1800.0, 3800.0), (3400.0, 5000.0), (5000.0, 6000.0),
               (6000.0, 7000.0)),
    "male": ((250.0, 850.0), (600.0, 2900.0), (1600.0, 3400.0), (2900.0, 4500.0), (4500.0, 5600.0),
             (5600.0, 7000.0)),
    "wide": ((250.0, 950.0), (600.0, 3400.0), (1600.0, 3800.0), (2900.0, 5000.0), (4500.0, 6000.0),
             (5600.0, 7000.0)),
}
PEAK_SHAPES = ("gaussian", "learned")
_LEARNED_WIDTHS = (0.5, 1.0, 2.0, 4.0)  # initial component widths of the learned peak, in bandwidths


@dataclass
class SynthConfig:
    pitch_range: str = "wide"            # f0 range: "male" 70-220 Hz, "female" 140-350 Hz, "wide" 60-400 Hz
    formant_range: str = "wide"          # formant ranges: "male" | "female" | "wide" (see FORMANT_RANGES_HZ)
    peak_shape: str = "gaussian"         # formant peak shape: "gaussian" | "learned"
    bw_intercept_hz: float = 50.0        # formant bandwidth (Gaussian sigma) at 0 Hz, Hz
    bw_slope: float = 0.08               # bandwidth growth with centre frequency, Hz per Hz
    unvoiced_hz_min: float = 4000.0      # lowest unvoiced (frication) filter centre, Hz
    unvoiced_hz_max: float = 8000.0      # highest unvoiced filter centre, Hz
    unvoiced_bw_min_hz: float = 300.0    # narrowest unvoiced filter bandwidth (sigma), Hz
    unvoiced_bw_max_hz: float = 3000.0   # widest unvoiced filter bandwidth (sigma), Hz
    loudness_max: float = 2.0            # largest loudness (linear amplitude of a unit partial)
    noise_gain: float = 0.5              # unvoiced noise level relative to a partial of equal filter amplitude
    init_noise_power: float = 1e-6       # background-noise power per STFT bin before `set_noise_power`
    noise_seed: int = 0                  # seed of the noise drawn when no generator is passed

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        check_option("synth.pitch_range", self.pitch_range, tuple(PITCH_RANGES_HZ))
        check_option("synth.formant_range", self.formant_range, tuple(FORMANT_RANGES_HZ))
        check_option("synth.peak_shape", self.peak_shape, PEAK_SHAPES)
        check_range("synth.bw_intercept_hz", self.bw_intercept_hz, 1.0, 1000.0)
        check_range("synth.bw_slope", self.bw_slope, 0.0, 1.0)
        check_range("synth.unvoiced_hz_min", self.unvoiced_hz_min, 100.0, dsp.SAMPLE_RATE_HZ / 2)
        check_range("synth.unvoiced_hz_max", self.unvoiced_hz_max, self.unvoiced_hz_min, dsp.SAMPLE_RATE_HZ / 2)
        check_range("synth.unvoiced_bw_min_hz", self.unvoiced_bw_min_hz, 10.0, 8000.0)
        check_range("synth.unvoiced_bw_max_hz", self.unvoiced_bw_max_hz, self.unvoiced_bw_min_hz, 8000.0)
        check_range("synth.loudness_max", self.loudness_max, 1e-3, 1e3, inclusive=False)
        check_range("synth.noise_gain", self.noise_gain, 0.0, 100.0)
        check_range("synth.init_noise_power", self.init_noise_power, 1e-12, 1e6)


class SynthOutput(NamedTuple):
    wave: torch.Tensor        # (batch, n_frames * 128) audio at 16 kHz
    spec_power: torch.Tensor  # (batch, n_frames, 256) dsp.stft_power(wave)
    controls: dict            # bounded named controls (see FormantSynth.get_controls)


def _upsample_frames(x: torch.Tensor, hop: int = dsp.HOP_SAMPLES) -> torch.Tensor:
    """Frame controls (..., n_frames) -> per-sample (..., n_frames * hop), linear between centres.

    Frame t is centred on sample t * hop; samples after the last centre hold its value.
    """
    lead = x.shape[:-1]
    n_frames = x.shape[-1]
    flat = x.reshape(-1, 1, n_frames)
    if n_frames > 1:
        flat = F.interpolate(flat, size=(n_frames - 1) * hop + 1, mode="linear", align_corners=True)
    tail = flat[..., -1:].expand(-1, -1, n_frames * hop - flat.shape[-1])
    return torch.cat([flat, tail], dim=-1).reshape(*lead, n_frames * hop)


class FormantSynth(nn.Module):
    """Differentiable 18-parameter formant synthesizer (waveform out).

    Parameters
    ----------
    cfg : SynthConfig
        Ranges, peak shape and scales (validated here).
    noise_power : array, shape (256,), optional
        Background-noise power per STFT bin (`Prepared.noise_power`); initialises the learned
        background noise.

    Learnable parameters: ``noise_log_power`` (256,) and, for ``peak_shape="learned"``,
    ``peak_logits`` and ``peak_log_widths`` (n_components,).
    """

    def __init__(self, cfg: SynthConfig | None = None, noise_power: np.ndarray | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or SynthConfig()
        cfg.validate()
        self.f0_range_hz = PITCH_RANGES_HZ[cfg.pitch_range]
        ranges = torch.tensor(FORMANT_RANGES_HZ[cfg.formant_range], dtype=torch.float32)
        self.register_buffer("formant_min_hz", ranges[:, 0].clone(), persistent=False)
        self.register_buffer("formant_max_hz", ranges[:, 1].clone(), persistent=False)
        self.n_partials = int(math.ceil(dsp.SAMPLE_RATE_HZ / 2 / self.f0_range_hz[0]))
        self.register_buffer("partial_index", torch.arange(1, self.n_partials + 1, dtype=torch.float32),
                             persistent=False)
        self.register_buffer("bin_hz", torch.arange(dsp.N_FFT // 2 + 1, dtype=torch.float32) * dsp.BIN_HZ,
                             persistent=False)
        self.noise_log_power = nn.Parameter(torch.full((dsp.N_BINS,), math.log(cfg.init_noise_power)))
        if cfg.peak_shape == "learned":
            self.peak_logits = nn.Parameter(torch.tensor([-3.0, 3.0, -3.0, -3.0]))
            self.peak_log_widths = nn.Parameter(torch.log(torch.tensor(_LEARNED_WIDTHS)))
        if noise_power is not None:
            self.set_noise_power(noise_power)

    # Controls ---------------------------------------------------------------------------------

    def set_noise_power(self, noise_power: np.ndarray) -> None:
        """Initialise the background noise from a power spectrum, shape (256,), STFT power units."""
        p = np.asarray(noise_power, dtype=np.float64)
        if p.shape != (dsp.N_BINS,) or not np.all(np.isfinite(p)):
            raise DataError(f"noise_power must be a finite array of shape ({dsp.N_BINS},) (dsp.stft_power "
                            f"units, e.g. Prepared.noise_power), got shape {p.shape}.")
        with torch.no_grad():
            self.noise_log_power.copy_(torch.from_numpy(np.log(np.maximum(p, 1e-10))).float())

    def get_controls(self, raw: torch.Tensor) -> dict[str, torch.Tensor]:
        """Bound raw network outputs into named physical controls.

        Parameters
        ----------
        raw : Tensor, shape (batch, n_frames, N_RAW)
            Unbounded network outputs (any real values).

        Returns
        -------
        controls : dict
            f0_hz, loudness, voicing, unvoiced_hz, unvoiced_bw_hz, unvoiced_amp: (batch, n_frames);
            formant_hz, formant_amp: (batch, n_frames, 6). Frequencies in Hz, loudness a linear
            amplitude, voicing and amplitudes in [0, 1] (formant_amp sums to one).
        """
        if not isinstance(raw, torch.Tensor) or raw.ndim != 3 or raw.shape[-1] != N_RAW:
            got = tuple(raw.shape) if isinstance(raw, torch.Tensor) else type(raw).__name__
            raise DataError(f"raw synthesizer controls must be a tensor of shape (batch, n_frames, {N_RAW}), "
                            f"got {got}. Give the encoder/decoder an output layer of {N_RAW} channels.")
        cfg = self.cfg
        raw = raw.float()
        return {
            "f0_hz": scale.sigmoid_to_hz(raw[..., 0], *self.f0_range_hz),
            "loudness": scale.exp_sigmoid(raw[..., 1], max_value=cfg.loudness_max),
            "voicing": torch.sigmoid(raw[..., 2]),
            "formant_hz": scale.sigmoid_to_hz(raw[..., 3:9], self.formant_min_hz, self.formant_max_hz),
            "formant_amp": scale.softmax_amplitudes(raw[..., 9:15]),
            "unvoiced_hz": scale.sigmoid_to_hz(raw[..., 15], cfg.unvoiced_hz_min, cfg.unvoiced_hz_max),
            "unvoiced_bw_hz": scale.sigmoid_to_hz(raw[..., 16], cfg.unvoiced_bw_min_hz, cfg.unvoiced_bw_max_hz),
            "unvoiced_amp": scale.exp_sigmoid(raw[..., 17], max_value=1.0),
        }

    def controls_to_raw(self, controls: dict[str, torch.Tensor]) -> torch.Tensor:
        """Inverse of `get_controls` (values are clamped into range first), shape (batch, n_frames, N_RAW)."""
        cfg = self.cfg

        def freq(x, lo, hi):
            return scale.logit(scale.hz_to_unit(x, lo, hi))

        cols = [
            freq(controls["f0_hz"], *self.f0_range_hz)[..., None],
            scale.inverse_exp_sigmoid(controls["loudness"], max_value=cfg.loudness_max)[..., None],
            scale.logit(controls["voicing"])[..., None],
            freq(controls["formant_hz"], self.formant_min_hz, self.formant_max_hz),
            torch.log(controls["formant_amp"].clamp_min(1e-8)),
            freq(controls["unvoiced_hz"], cfg.unvoiced_hz_min, cfg.unvoiced_hz_max)[..., None],
            freq(controls["unvoiced_bw_hz"], cfg.unvoiced_bw_min_hz, cfg.unvoiced_bw_max_hz)[..., None],
            scale.inverse_exp_sigmoid(controls["unvoiced_amp"], max_value=1.0)[..., None],
        ]
        return torch.cat(cols, dim=-1)

    # Filters ----------------------------------------------------------------------------------

    def formant_bandwidth_hz(self, formant_hz: torch.Tensor) -> torch.Tensor:
        """Fixed affine bandwidth (Gaussian sigma, Hz) of each formant from its centre (Hz)."""
        return self.cfg.bw_intercept_hz + self.cfg.bw_slope * formant_hz

    def peak(self, distance: torch.Tensor) -> torch.Tensor:
        """Single-peak shape P(d) with P(0) = 1, d = (f - centre) / bandwidth."""
        d2 = distance.square()
        if self.cfg.peak_shape == "gaussian":
            return torch.exp(-0.5 * d2)
        weights = torch.softmax(self.peak_logits, dim=0)
        inv_var = torch.exp(-2.0 * self.peak_log_widths)
        return sum(weights[j] * torch.exp(-0.5 * d2 * inv_var[j]) for j in range(weights.shape[0]))

    def formant_filter(self, freq_hz: torch.Tensor, formant_hz: torch.Tensor, formant_amp: torch.Tensor) -> torch.Tensor:
        """V(f) = sum_i a_i P((f - F_i) / B_i).

        freq_hz : (batch, n_frames, n_freq) or (n_freq,); formant_hz, formant_amp : (batch, n_frames, 6).
        Returns (batch, n_frames, n_freq).
        """
        bw_hz = self.formant_bandwidth_hz(formant_hz)
        out = 0.0
        for i in range(formant_hz.shape[-1]):
            d = (freq_hz - formant_hz[..., i:i + 1]) / bw_hz[..., i:i + 1]
            out = out + formant_amp[..., i:i + 1] * self.peak(d)
        return out

    def unvoiced_filter(self, freq_hz: torch.Tensor, controls: dict[str, torch.Tensor]) -> torch.Tensor:
        """U(f) = sum_i a_i P((f - F_i) / B_i) + a_u P((f - F_u) / B_u), shape (batch, n_frames, n_freq)."""
        frication = self.peak((freq_hz - controls["unvoiced_hz"][..., None]) / controls["unvoiced_bw_hz"][..., None])
        return (self.formant_filter(freq_hz, controls["formant_hz"], controls["formant_amp"])
                + controls["unvoiced_amp"][..., None] * frication)

    # Rendering --------------------------------------------------------------------------------

    def _harmonic(self, f0_hz: torch.Tensor, partial_amp: torch.Tensor) -> torch.Tensor:
        """Oscillator bank. f0_hz (batch, n_frames); partial_amp (batch, n_frames, n_partials) -> (batch, n_samples).

        Amplitudes are linear between frame centres: inside frame block f (samples f*128 ... f*128+127)
        a(t) = (1 - w) A_f + w A_{f+1} with w = j / 128, so the sum over partials is two batched matrix
        products per block (no per-sample amplitude tensor is built).
        """
        batch, n_frames, n_partials = partial_amp.shape
        hop = dsp.HOP_SAMPLES
        f0_up = _upsample_frames(f0_hz)  # (batch, n_samples) Hz
        # Phase in cycles, accumulated across frames in float64 and wrapped to [0, 1) before the
        # partials multiply it (keeps float32 accuracy over long signals).
        cycles = torch.cumsum(f0_up.double() / dsp.SAMPLE_RATE_HZ, dim=-1)
        omega = ((2.0 * math.pi) * (cycles - torch.floor(cycles).detach())).float()  # rad, (batch, n_samples)
        phase = omega.reshape(batch * n_frames, hop, 1) * self.partial_index  # (batch*n_frames, hop, n_partials)
        amp_next = torch.cat([partial_amp[:, 1:], partial_amp[:, -1:]], dim=1)  # hold after the last centre
        amps = torch.stack([partial_amp, amp_next], dim=-1).reshape(batch * n_frames, n_partials, 2)
        both = torch.bmm(torch.sin(phase), amps)  # (batch*n_frames, hop, 2)
        w = torch.arange(hop, device=omega.device, dtype=omega.dtype) / hop  # (hop,)
        wave = both[..., 0] * (1.0 - w) + both[..., 1] * w
        return wave.reshape(batch, n_frames * hop)

    def _noise(self, noise_mag: torch.Tensor, n_samples: int, generator: torch.Generator | None) -> torch.Tensor:
        """White noise shaped in the STFT domain. noise_mag (batch, n_frames, 257) -> (batch, n_samples)."""
        batch = noise_mag.shape[0]
        device, dtype = noise_mag.device, noise_mag.dtype
        if generator is None:
            generator = torch.Generator(device=device).manual_seed(self.cfg.noise_seed)
        white = torch.randn((batch, n_samples), generator=generator, device=device, dtype=dtype)
        window = torch.hann_window(dsp.N_FFT, periodic=True, device=device, dtype=dtype)
        spec = torch.stft(white, dsp.N_FFT, dsp.HOP_SAMPLES, window=window, center=True,
                          pad_mode="constant", return_complex=True)  # (batch, 257, n_frames + 1)
        spec = spec / window.square().sum().sqrt()  # unit expected power per bin
        mag = torch.cat([noise_mag, noise_mag[:, -1:]], dim=1).transpose(1, 2)  # (batch, 257, n_frames + 1)
        return torch.istft(spec * mag, dsp.N_FFT, dsp.HOP_SAMPLES, window=window, center=True, length=n_samples)

    def get_signal(self, f0_hz, loudness, voicing, formant_hz, formant_amp, unvoiced_hz, unvoiced_bw_hz,
                   unvoiced_amp, generator: torch.Generator | None = None) -> torch.Tensor:
        """Render controls (as returned by `get_controls`) into audio.

        Returns
        -------
        wave : Tensor, shape (batch, n_frames * 128), 16 kHz. Noise comes from `generator`
            (default: a fresh generator seeded with ``cfg.noise_seed``, so output is reproducible).
        """
        controls = dict(f0_hz=f0_hz, loudness=loudness, voicing=voicing, formant_hz=formant_hz,
                        formant_amp=formant_amp, unvoiced_hz=unvoiced_hz, unvoiced_bw_hz=unvoiced_bw_hz,
                        unvoiced_amp=unvoiced_amp)
        n_frames = f0_hz.shape[1]
        n_samples = n_frames * dsp.HOP_SAMPLES
        # Voiced: amplitudes read off V(f) at each partial, zero at or above Nyquist.
        partial_hz = f0_hz[..., None] * self.partial_index  # (batch, n_frames, n_partials)
        below_nyquist = (partial_hz < dsp.SAMPLE_RATE_HZ / 2).to(partial_hz.dtype)
        gain = (loudness * voicing)[..., None]
        partial_amp = gain * self.formant_filter(partial_hz, formant_hz, formant_amp) * below_nyquist
        voiced = self._harmonic(f0_hz, partial_amp)
        # Unvoiced + background: one shaped noise, powers added per bin.
        u_amp = (loudness * (1.0 - voicing))[..., None] * self.unvoiced_filter(self.bin_hz, controls)
        u_power = (u_amp * (self.cfg.noise_gain * dsp.N_FFT / 4)).square()  # (batch, n_frames, 257)
        bg_power = torch.exp(self.noise_log_power)
        bg_power = torch.cat([bg_power, bg_power[-1:]])  # the Nyquist bin shares the top bin's level
        noise_mag = torch.sqrt(u_power + bg_power + 1e-12)
        return voiced + self._noise(noise_mag, n_samples, generator)

    def forward(self, raw: torch.Tensor, generator: torch.Generator | None = None) -> SynthOutput:
        """raw (batch, n_frames, N_RAW) -> SynthOutput(wave, spec_power, controls)."""
        controls = self.get_controls(raw)
        wave = self.get_signal(**controls, generator=generator)
        return SynthOutput(wave, dsp.stft_power(wave), controls)

    def render(self, controls: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> SynthOutput:
        """Render already-bounded controls into SynthOutput."""
        wave = self.get_signal(**controls, generator=generator)
        return SynthOutput(wave, dsp.stft_power(wave), controls)


def params_to_vector(controls: dict[str, torch.Tensor]) -> torch.Tensor:
    """The 18 interpretable parameters (order `PARAM_NAMES`), shape (batch, n_frames, 18)."""
    missing = [k for k in ("f0_hz", "loudness", "voicing", "formant_hz", "formant_amp", "unvoiced_hz",
                           "unvoiced_bw_hz", "unvoiced_amp") if k not in controls]
    if missing:
        raise ConfigError(f"controls lack {missing}; pass the dict returned by FormantSynth.get_controls.")
    return torch.cat([
        controls["f0_hz"][..., None], controls["loudness"][..., None], controls["voicing"][..., None],
        controls["formant_hz"], controls["formant_amp"],
        controls["unvoiced_hz"][..., None], controls["unvoiced_bw_hz"][..., None],
        controls["unvoiced_amp"][..., None],
    ], dim=-1)


def vector_to_params(vector: torch.Tensor) -> dict[str, torch.Tensor]:
    """Inverse of `params_to_vector`: (batch, n_frames, 18) -> controls dict."""
    if vector.shape[-1] != len(PARAM_NAMES):
        raise DataError(f"parameter vector must end in {len(PARAM_NAMES)} values ({', '.join(PARAM_NAMES)}), "
                        f"got shape {tuple(vector.shape)}.")
    return {
        "f0_hz": vector[..., 0], "loudness": vector[..., 1], "voicing": vector[..., 2],
        "formant_hz": vector[..., 3:9], "formant_amp": vector[..., 9:15],
        "unvoiced_hz": vector[..., 15], "unvoiced_bw_hz": vector[..., 16], "unvoiced_amp": vector[..., 17],
    }
