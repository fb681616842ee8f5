"""The deep decoders' linear branch (decoders/linear_branch.py): it is the linear baseline, it keeps the model's
direction (causal, anticausal), it streams, it survives save/load, and its weight is the validation optimum."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neurovox.decoders.base import build_decoder, decoder_from_args
from neurovox.decoders.linear import LinearBaseline
from neurovox.decoders.linear_branch import MIX_GRID, WithLinearBranch
from neurovox.decoders.streaming import StreamingDecoder
from neurovox.errors import ConfigError
from tests.test_decoders import _perturb_check

N_CH = 8
GOOD = np.array([1, 1, 1, 0, 1, 1, 1, 1], bool)  # channel 3 bad: zeroed in the baseline and in the branch


def _data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((40, 80, N_CH)).astype(np.float32)
    # a mel target that depends on the input at a lag of 6 frames, plus noise
    mel = 40 + 5 * np.repeat(np.roll(x[..., :2].sum(-1, keepdims=True), 6, axis=1), 80, -1) \
        + rng.standard_normal((40, 80, 80)).astype(np.float32)
    return x, mel[:, 16:].astype(np.float32), np.ones((40, 64), bool)


def _branched(direction: str, seed=0):
    x, mel, mask = _data(seed)
    causal, anti = direction == "causal", direction == "anticausal"
    baseline = LinearBaseline(causal=causal, anticausal=anti).fit(x[:30], mel[:30], mask[:30],
                                                                  val=(x[30:], mel[30:], mask[30:]), good=GOOD)
    torch.manual_seed(seed)
    inner = build_decoder("lstm", n_channels=N_CH, n_out=80, causal=causal, anticausal=anti, hidden=16, n_layers=1)
    model = WithLinearBranch(inner, list(baseline.lags_frames), N_CH).eval()
    mean, sd = mel[:30].reshape(-1, 80).mean(0), mel[:30].reshape(-1, 80).std(0)
    model.set_from_baseline(baseline, mean, sd)
    return model, baseline, (x, mel, mask), (mean, sd)


@pytest.mark.parametrize("direction", ["noncausal", "causal", "anticausal"])
def test_branch_is_the_linear_baseline_and_survives_save_load(direction):
    model, baseline, (x, _, _), (mean, sd) = _branched(direction)
    xt = torch.from_numpy(x[:3])
    branch_db = model.branch(xt).numpy() * sd + mean
    np.testing.assert_allclose(branch_db, baseline.predict_frames(x[:3]), atol=1e-3)  # measured 4e-6 dB
    model.branch_mix.fill_(0.3)
    rebuilt = decoder_from_args("lstm", model.model_args).eval()
    rebuilt.load_state_dict(model.state_dict())
    assert torch.equal(rebuilt(xt, 64), model(xt, 64))
    assert float(rebuilt.branch_mix) == pytest.approx(0.3)
    # the mix is (1 - w) deep + w linear
    with torch.no_grad():
        want = 0.7 * model.inner.forward_frames(xt) + 0.3 * model.branch(xt)
    torch.testing.assert_close(model.forward_frames(xt), want)


def test_branch_keeps_causality_and_anticausality():
    causal, *_ = _branched("causal")
    causal.branch_mix.fill_(0.5)
    assert _perturb_check(causal, N_CH) == 4                   # the future changes later outputs, never earlier
    anti, *_ = _branched("anticausal")
    anti.branch_mix.fill_(0.5)
    assert _perturb_check(anti, N_CH, side="past") == 4
    with pytest.raises(ConfigError, match="would break the causal lstm"):
        WithLinearBranch(build_decoder("lstm", n_channels=N_CH, n_out=80, causal=True, hidden=8, n_layers=1),
                         [-6, 0, 6], N_CH)


def test_causal_branch_streams_frame_by_frame_like_the_window():
    model, _, (x, _, _), _ = _branched("causal")
    model.branch_mix.fill_(0.5)
    xt = torch.from_numpy(x[:2])
    streamed = StreamingDecoder(model, batch=2).run(xt)
    with torch.no_grad():
        torch.testing.assert_close(streamed, model.forward_frames(xt), atol=1e-5, rtol=1e-5)


def test_mix_weight_is_the_validation_optimum():
    model, _, (x, mel, mask), (mean, sd) = _branched("noncausal")
    args = [torch.from_numpy(a) for a in (x[30:], mel[30:], mask[30:])]
    stats = torch.from_numpy(mean), torch.from_numpy(sd), torch.from_numpy(mel[:30].reshape(-1, 80).mean(0))
    # an untrained LSTM knows nothing; the branch fits the lagged input: the linear side wins
    chosen = model.choose_mix(*args, *stats)
    assert chosen["weight"] in MIX_GRID and chosen["weight"] >= 0.8, chosen
    assert chosen["val_pcc_tilt"] >= max(chosen["val_pcc_tilt_deep_alone"], chosen["val_pcc_tilt_linear_alone"])
    assert float(model.branch_mix) == chosen["weight"]
    # targets that ARE the deep model's output: the deep side wins
    with torch.no_grad():
        deep_db = model.inner(args[0], 64) * stats[1] + stats[0]
    chosen = model.choose_mix(args[0], deep_db, args[2], *stats)
    assert chosen["weight"] == 0.0 and chosen["val_pcc_tilt"] > 0.999, chosen
