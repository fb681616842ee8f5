"""The synthesizer's look-ahead (issue #14 item 5): how much audio BEFORE frame t depends on frame t's
parameters. A causal decoder's output frame t sees only neural frames <= t, but rendering it is not
causal in the parameters: controls are interpolated linearly between frame centres (frame t centred
on sample t * 128) and the unvoiced part is shaped in a centred STFT (n_fft 512) and overlap-added,
so frame t's parameters reach 256 samples = 16 ms before sample t * 128 in the waveform, and its
spectrogram (another centred 512-sample STFT) 3 frames = 24 ms earlier. A streaming renderer has
to wait that long (docs/architecture.md, "Causality end to end")."""

import torch

from neurovox import dsp
from neurovox.synth import N_RAW, FormantSynth, SynthConfig

LOOKAHEAD_SAMPLES = 256          # waveform: frame t reaches back to sample t * 128 - 256 (n_fft / 2); the first
                                 # 1-2 of those carry ~0 Hann weight, so 254-255 samples measurably change
LOOKAHEAD_SPEC_FRAMES = 3        # spectrogram: first changed frame is t - 3


def test_synth_lookahead_is_pinned():
    torch.manual_seed(0)
    synth = FormantSynth(SynthConfig()).eval()
    raw = torch.randn(2, 40, N_RAW, generator=torch.Generator().manual_seed(0))

    def render(r):
        with torch.no_grad():
            return synth(r, generator=torch.Generator().manual_seed(0))   # the same noise in both renders

    base = render(raw)
    for t in (5, 17, 30):
        pert = raw.clone()
        pert[:, t] += 1.0                                                 # frame t's parameters only
        out = render(pert)
        changed = (base.wave != out.wave).any(0).nonzero().flatten()
        assert LOOKAHEAD_SAMPLES - 2 <= t * dsp.HOP_SAMPLES - int(changed.min()) <= LOOKAHEAD_SAMPLES, int(changed.min())
        frames = (base.spec_power != out.spec_power).any(-1).any(0).nonzero().flatten()
        assert t - int(frames.min()) == LOOKAHEAD_SPEC_FRAMES, int(frames.min())
    assert LOOKAHEAD_SAMPLES / dsp.SAMPLE_RATE_HZ * 1e3 == 16.0                # ms
