"""Stage-2 losses: spectral loss through the frozen synthesizer and the reference-parameter loss.

- `spectral_loss`: multi-resolution L1 between dB power spectrograms of the decoded and the real
  waveform (several STFT sizes, hop n_fft / 4), plus L1 between their 80-bin mel dB spectrograms at
  the native resolution (n_fft 512, hop 128).
- `reference_loss`: distance between the decoder's bounded parameters and those the frozen speech
  encoder extracts from the real spectrogram. Frequencies (f0, formants, frication centre and
  bandwidth) compare on a log scale; f0, formant frequencies and formant amplitudes are weighted by
  the reference voicing, the frication parameters by (1 - voicing); loudness compares in dB.
"""

from __future__ import annotations

import torch

from neurovox import dsp

DB_FLOOR = 1e-8  # power floor before dB (synth output always carries background noise above it)


def _db(power: torch.Tensor) -> torch.Tensor:
    return 10.0 * torch.log10(power + DB_FLOOR)


def spectral_loss(dec_wave: torch.Tensor, ref_wave: torch.Tensor, n_ffts: tuple[int, ...] = (256, 512, 1024),
                  mel_weight: float = 1.0, frame_weight: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Multi-resolution linear-dB + mel-dB L1 (in dB / 10, so terms are O(1)).

    Parameters
    ----------
    dec_wave, ref_wave : Tensor, shape (batch, n_samples)
        Decoded and real audio at 16 kHz.
    n_ffts : tuple of int
        STFT sizes of the linear-dB terms.
    frame_weight : Tensor, shape (batch, n_frames), optional
        Weight of each 125 Hz frame in the mel term (default uniform).

    Returns
    -------
    terms : dict with "spec_lin", "spec_mel" and "spec_coarse" (frame energy + 8 broad bands), scalars
    """
    lin = dec_wave.new_zeros(())
    for n_fft in n_ffts:
        hop = n_fft // 4
        p_dec = dsp.stft_power(dec_wave, n_fft=n_fft, hop=hop)
        p_ref = dsp.stft_power(ref_wave, n_fft=n_fft, hop=hop)
        lin = lin + (_db(p_dec) - _db(p_ref)).abs().mean() / 10.0
    lin = lin / max(len(n_ffts), 1)
    mel_dec = _db(dsp.power_to_mel(dsp.stft_power(dec_wave)))
    mel_ref = _db(dsp.power_to_mel(dsp.stft_power(ref_wave)))
    err = (mel_dec - mel_ref).abs().mean(-1) / 10.0  # (batch, n_frames)
    # Coarse terms: frame energy and 8 broad bands. They give loudness a gradient that does not depend
    # on the formants already matching (without them a decoder can collapse to silence early on).
    p_dec, p_ref = 10 ** (mel_dec / 10), 10 ** (mel_ref / 10)
    b, t, m = p_dec.shape
    bands = lambda p: p[..., : m - m % 8].reshape(b, t, 8, -1).sum(-1)  # noqa: E731
    coarse = ((_db(bands(p_dec)) - _db(bands(p_ref))).abs().mean(-1)
              + (_db(p_dec.sum(-1)) - _db(p_ref.sum(-1))).abs()) / 10.0  # (batch, n_frames)
    if frame_weight is not None:
        w = frame_weight[:, : err.shape[1]].to(err)
        mel = (err * w).sum() / w.sum().clamp_min(1.0)
        coarse = (coarse * w).sum() / w.sum().clamp_min(1.0)
    else:
        mel, coarse = err.mean(), coarse.mean()
    return {"spec_lin": lin, "spec_mel": mel_weight * mel, "spec_coarse": coarse}


def _wmean(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    while w.ndim < x.ndim:
        w = w[..., None]
    w = w.expand_as(x)
    return (x * w).sum() / w.sum().clamp_min(1e-6)


def reference_loss(dec: dict[str, torch.Tensor], ref: dict[str, torch.Tensor],
                   frame_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Parameter loss against the frozen encoder's controls (both dicts from `FormantSynth.get_controls`).

    Parameters
    ----------
    dec, ref : dict of Tensor
        Bounded controls, (batch, n_frames) or (batch, n_frames, 6) each.
    frame_weight : Tensor, shape (batch, n_frames), optional
        Extra per-frame weight (e.g. 1 inside speech, 0.2 outside).
    """
    v = ref["voicing"].detach()
    fw = torch.ones_like(v) if frame_weight is None else frame_weight.to(v)
    log = lambda x: torch.log(x.clamp_min(1.0))  # noqa: E731  (Hz, always >= 1)
    terms = [
        _wmean((log(dec["f0_hz"]) - log(ref["f0_hz"])).abs(), v * fw),
        _wmean((log(dec["formant_hz"]) - log(ref["formant_hz"])).abs(), v * fw),
        _wmean((dec["formant_amp"] - ref["formant_amp"]).abs(), v * fw),
        _wmean((dec["voicing"] - v).abs(), fw),
        _wmean((_db(dec["loudness"] ** 2) - _db(ref["loudness"] ** 2)).abs() / 10.0, fw),
        _wmean((log(dec["unvoiced_hz"]) - log(ref["unvoiced_hz"])).abs(), (1 - v) * fw),
        _wmean((log(dec["unvoiced_bw_hz"]) - log(ref["unvoiced_bw_hz"])).abs(), (1 - v) * fw),
        _wmean((dec["unvoiced_amp"] - ref["unvoiced_amp"]).abs(), (1 - v) * fw),
    ]
    return torch.stack(terms).sum()
