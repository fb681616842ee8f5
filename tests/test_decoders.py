"""Neural decoders: layouts, shapes, strict causality, streaming, linear baseline (no training data needed)."""

import numpy as np
import pytest
import torch

from neurovox.decoders import (GridLayout, LinearBaseline, StreamingDecoder, build_decoder, decoder_from_args,
                               layout_from_channels, rectangular_layout)
from neurovox.decoders.layout import GridMapper
from neurovox.errors import ConfigError, DataError
from neurovox.io.recording import make_channel_table

N_OUT = 18
SMALL = {"resnet": {"widths": (4, 8)}, "swin": {"dim": 8, "depths": (2,), "n_heads": 2, "window_t": 8},
         "lstm": {"hidden": 16, "n_layers": 1}, "gru": {"hidden": 16, "n_layers": 2}}


def _model(name, layout, causal, seed=0):
    torch.manual_seed(seed)
    return build_decoder(name, n_channels=layout.n_channels, n_out=N_OUT, causal=causal, layout=layout,
                         **SMALL[name]).eval()


def hybrid_channels(n_channels):
    """Interleaved 15 x 15 hybrid grid from x/y positions: 64 macro contacts on the even positions
    (pitch 10 mm), micro contacts between them (5 mm offsets); 128 channels = 64 macro + 64 micro."""
    pos = [(r, c) for r in range(0, 15, 2) for c in range(0, 15, 2)]  # macro
    micro = [(r, c) for r in range(15) for c in range(15) if (r, c) not in pos]
    pos = pos + (micro[:64] if n_channels == 128 else micro)
    xy = np.array([(c * 0.005, -r * 0.005) for r, c in pos])
    xyz = np.column_stack([xy, np.zeros(len(pos))])
    return make_channel_table([f"C{i}" for i in range(len(pos))], "ecog", xyz=xyz), pos


# Layouts --------------------------------------------------------------------------------------------

def test_layout_8x8_from_row_col_with_bad_contacts():
    rows, cols = np.divmod(np.arange(64), 8)
    bad = np.zeros(64, bool)
    bad[[5, 40]] = True
    ch = make_channel_table([f"G{i}" for i in range(64)], "ecog", bad=bad.tolist(), row=rows, col=cols)
    lay = layout_from_channels(ch)
    assert (lay.n_rows, lay.n_cols) == (8, 8)
    assert lay.mask.sum() == 62 and lay.mask[0, 5] == 0 and lay.mask[5, 0] == 0
    x = torch.arange(64, dtype=torch.float32).expand(1, 3, 64) + 1
    grid = GridMapper(lay)(x)
    assert grid.shape == (1, 2, 3, 8, 8)
    assert grid[0, 0, 1, 2, 3] == 2 * 8 + 3 + 1            # channel 19 at row 2, col 3
    assert grid[0, 0, :, 0, 5].abs().sum() == 0             # bad contact zeroed
    assert torch.equal(grid[0, 1, 0], torch.as_tensor(lay.mask))


@pytest.mark.parametrize("n_channels", [128, 225])
def test_layout_hybrid_15x15_from_positions(n_channels):
    ch, pos = hybrid_channels(n_channels)
    lay = layout_from_channels(ch)
    assert (lay.n_rows, lay.n_cols) == (15, 15)
    assert list(zip(lay.rows, lay.cols)) == pos
    assert lay.mask.sum() == n_channels
    assert lay.mask[1, 1] == (1.0 if n_channels == 225 else float((1, 1) in pos))


def test_layout_rectangular_4x16_and_roundtrip():
    rows, cols = np.divmod(np.arange(64), 16)
    lay = layout_from_channels(make_channel_table([f"S{i}" for i in range(64)], row=rows, col=cols))
    assert (lay.n_rows, lay.n_cols) == (4, 16)
    assert GridLayout.from_dict(lay.to_dict()) == lay
    assert rectangular_layout(4, 16) == lay


def test_layout_rejects_seeg_and_missing_positions():
    seeg = make_channel_table([f"A{i}" for i in range(10)], "seeg", xyz=np.random.default_rng(0).normal(size=(10, 3)))
    with pytest.raises(DataError, match="sEEG.*use --model lstm"):
        layout_from_channels(seeg, model="resnet")
    nopos = make_channel_table([f"E{i}" for i in range(10)], "ecog")
    with pytest.raises(DataError, match="neither row/col nor x/y.*--model lstm"):
        layout_from_channels(nopos, model="swin")
    with pytest.raises(DataError, match="needs a grid layout"):
        build_decoder("resnet", n_channels=10, n_out=N_OUT, causal=True, layout=None)
    dup = make_channel_table(["a", "b"], row=[0, 0], col=[1, 1])
    with pytest.raises(DataError, match="share a grid cell"):
        layout_from_channels(dup)
    with pytest.raises(ConfigError, match="Did you mean"):
        build_decoder("resnt", n_channels=4, n_out=N_OUT, causal=True)


# Shapes ---------------------------------------------------------------------------------------------

LAYOUTS = {"64": rectangular_layout(8, 8), "128": layout_from_channels(hybrid_channels(128)[0]),
           "225": layout_from_channels(hybrid_channels(225)[0]), "4x16": rectangular_layout(4, 16)}


@pytest.mark.parametrize("name", ["resnet", "swin", "lstm", "gru"])
@pytest.mark.parametrize("key", ["64", "128", "225", "4x16"])
def test_shapes_on_layouts(name, key):
    lay = LAYOUTS[key]
    model = _model(name, lay, causal=(key != "128"))
    x = torch.randn(2, 16 + 24, lay.n_channels)
    y = model(x, n_target=24)
    assert y.shape == (2, 24, N_OUT)
    assert torch.isfinite(y).all()
    rebuilt = decoder_from_args(name, model.model_args)
    rebuilt.load_state_dict(model.state_dict())
    assert torch.equal(rebuilt.eval()(x, 24), y)


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_layout_free_models_on_seeg(name):
    model = build_decoder(name, n_channels=37, n_out=N_OUT, causal=False, layout=None, **SMALL[name])
    assert model(torch.randn(3, 50, 37), 30).shape == (3, 30, N_OUT)
    with pytest.raises(DataError, match="shape \\(batch, n_frames, n_channels\\)"):
        model(torch.randn(50, 37))


# Strict causality -----------------------------------------------------------------------------------

def _perturb_check(model, n_channels, ts=(0, 1, 17, 40, 63), side="future"):
    """For each t, perturb the frames after t (side "future") or before t ("past"); the outputs at t and on the
    other side must be bit-for-bit unchanged. Returns how many t changed the outputs on the perturbed side."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 64, n_channels, generator=g)
    with torch.no_grad():
        y = model.forward_frames(x)
        changed = 0
        for t in ts:
            moved, kept = (slice(t + 1, None), slice(0, t + 1)) if side == "future" else (slice(0, t), slice(t, None))
            x2 = x.clone()
            x2[:, moved] += 3.0 * torch.randn(x2[:, moved].shape, generator=g)
            y2 = model.forward_frames(x2)
            assert torch.equal(y[:, kept], y2[:, kept]), f"{model.name}: output {'<=' if side == 'future' else '>='} {t} changed"
            if (t < 63) if side == "future" else (t > 0):
                changed += int(not torch.equal(y[:, moved], y2[:, moved]))
    return changed


def _train_a_few_steps(model, n_channels, n_steps=3):
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(2)
    for _ in range(n_steps):
        x = torch.randn(2, 64, n_channels, generator=g)
        loss = (model.forward_frames(x) - x[..., :1].cumsum(1) / 10).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.mark.parametrize("name", ["resnet", "swin", "lstm", "gru"])
def test_causal_models_are_strictly_causal(name):
    lay = LAYOUTS["4x16"] if name == "swin" else LAYOUTS["64"]  # 4 x 16 exercises spatial window shifts
    model = _model(name, lay, causal=True)
    assert _perturb_check(model, lay.n_channels) == 4  # the future does change later outputs
    model = _train_a_few_steps(model, lay.n_channels)
    assert _perturb_check(model, lay.n_channels) == 4


@pytest.mark.parametrize("name", ["resnet", "swin", "lstm", "gru"])
def test_non_causal_models_see_the_future(name):
    lay = LAYOUTS["64"]
    model = _model(name, lay, causal=False)
    x = torch.randn(1, 64, 64)
    x2 = x.clone()
    x2[:, 40:] += 3.0
    with torch.no_grad():
        assert not torch.equal(model.forward_frames(x)[:, :40], model.forward_frames(x2)[:, :40])


def test_causal_linear_baseline_is_strictly_causal():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((30, 64, 8)).astype(np.float32)
    mel = rng.standard_normal((30, 48, 80)).astype(np.float32)
    causal = LinearBaseline(causal=True, n_components=10).fit(x, mel)
    assert causal.lags_frames.tolist() == [-50, -44, -38, -31, -25, -19, -12, -6, 0]
    y = causal.predict_frames(x[:2])
    for t in (0, 20, 50):
        x2 = x[:2].copy()
        x2[:, t + 1:] += 5.0
        y2 = causal.predict_frames(x2)
        assert np.array_equal(y[:, : t + 1], y2[:, : t + 1])
        assert not np.array_equal(y[:, t + 1:], y2[:, t + 1:])
    centred = LinearBaseline(causal=False, n_components=10).fit(x, mel)
    assert centred.lags_frames.tolist() == [-25, -19, -12, -6, 0, 6, 12, 19, 25]
    x2 = x[:2].copy()
    x2[:, 30:] += 5.0
    assert not np.array_equal(centred.predict_frames(x[:2])[:, 10:30], centred.predict_frames(x2)[:, 10:30])


# Strict anticausality (issue 20): the mirror of the causal tests ------------------------------------

@pytest.mark.parametrize("name", ["resnet", "swin", "lstm", "gru"])
def test_anticausal_models_are_strictly_anticausal(name, tmp_path):
    lay = LAYOUTS["4x16"] if name == "swin" else LAYOUTS["64"]
    torch.manual_seed(0)
    model = build_decoder(name, n_channels=lay.n_channels, n_out=N_OUT, causal=False, anticausal=True, layout=lay,
                          **SMALL[name]).eval()
    assert (model.causal, model.anticausal) == (False, True)
    assert _perturb_check(model, lay.n_channels, side="past") == 4  # the past does change earlier outputs
    model = _train_a_few_steps(model, lay.n_channels)
    assert _perturb_check(model, lay.n_channels, side="past") == 4
    # saved and rebuilt from its model_args: still anticausal, same outputs
    rebuilt = decoder_from_args(name, model.model_args)
    rebuilt.load_state_dict(model.state_dict())
    x = torch.randn(1, 40, lay.n_channels)
    with torch.no_grad():
        assert torch.equal(rebuilt.eval().forward_frames(x), model.forward_frames(x))
    with pytest.raises(ConfigError, match="--causal"):
        StreamingDecoder(model)  # a model that needs the future cannot stream
    with pytest.raises(ConfigError, match="not both"):
        build_decoder(name, n_channels=lay.n_channels, n_out=N_OUT, causal=True, anticausal=True, layout=lay)


def test_anticausal_linear_baseline_is_strictly_anticausal():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((30, 64, 8)).astype(np.float32)
    mel = rng.standard_normal((30, 48, 80)).astype(np.float32)
    model = LinearBaseline(anticausal=True, n_components=10).fit(x, mel)
    assert model.lags_frames.tolist() == [0, 6, 12, 19, 25, 31, 38, 44, 50]
    y = model.predict_frames(x[:2])
    for t in (1, 20, 50, 63):
        x2 = x[:2].copy()
        x2[:, :t] += 5.0
        y2 = model.predict_frames(x2)
        assert np.array_equal(y[:, t:], y2[:, t:])
        assert not np.array_equal(y[:, :t], y2[:, :t])
    again = LinearBaseline.from_state_dict(model.state_dict())
    assert again.anticausal and np.array_equal(again.predict_frames(x[:2]), y)
    with pytest.raises(ConfigError, match="not both"):
        LinearBaseline(causal=True, anticausal=True)


def test_train_decoder_cli_takes_anticausal():
    from neurovox.cli import build_parser
    from neurovox.commands.train_decoder import build_config

    args = build_parser().parse_args(["train", "decoder", "--data", "x.h5", "--model", "lstm", "--anticausal",
                                      "--out", "r"])
    cfg = build_config(args)
    assert (cfg.decoder.anticausal, cfg.decoder.causal, cfg.prepare.causal) == (True, False, False)
    args = build_parser().parse_args(["train", "decoder", "--data", "x.h5", "--causal", "--anticausal", "--out", "r"])
    with pytest.raises(ConfigError, match="choose one"):
        build_config(args)


# Streaming ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["resnet", "lstm", "gru"])
def test_streaming_equals_whole_window(name):
    lay = LAYOUTS["64"]
    model = _train_a_few_steps(_model(name, lay, causal=True), lay.n_channels)
    x = torch.randn(2, 80, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        whole = model.forward_frames(x)
    stream = StreamingDecoder(model, batch=2)
    streamed = stream.run(x)
    assert streamed.shape == whole.shape
    assert (streamed - whole).abs().max().item() < 1e-5
    stream.reset()
    single = StreamingDecoder(model)
    one = torch.stack([single.push(x[0, i]) for i in range(10)])
    assert (one - whole[0, :10]).abs().max().item() < 1e-5


def test_streaming_refuses_non_causal_and_swin():
    with pytest.raises(ConfigError, match="--causal"):
        StreamingDecoder(_model("lstm", LAYOUTS["64"], causal=False))
    with pytest.raises(ConfigError, match="no streaming implementation"):
        StreamingDecoder(_model("swin", LAYOUTS["64"], causal=True))


# Linear baseline -------------------------------------------------------------------------------------

def test_linear_baseline_recovers_a_lagged_linear_map():
    rng = np.random.default_rng(0)
    latent = rng.standard_normal((60, 96, 4))                  # 4 sources x 9 lags fit in 50 PCs
    x = (latent @ rng.standard_normal((4, 16)) + 0.05 * rng.standard_normal((60, 96, 16))).astype(np.float32)
    w = rng.standard_normal((16, 80)).astype(np.float32)
    mel = (np.roll(x, 6, axis=1) @ w)[:, 32:] * 0.5 - 40.0   # mel at t driven by neural at t - 6 frames (48 ms)
    model = LinearBaseline(causal=True, n_components=50).fit(x[:50], mel[:50])
    pred = model.predict(x[50:], 64)
    r = np.corrcoef(pred.ravel(), mel[50:].ravel())[0, 1]
    assert r > 0.95
    restored = LinearBaseline.from_state_dict(model.state_dict())
    assert np.array_equal(restored.predict(x[50:], 64), pred)
    with pytest.raises(DataError, match="expects windows"):
        model.predict(x[50:, :, :8], 64)


def test_linear_baseline_ignores_bad_channels():
    """Bad contacts are zeroed in fitting and prediction: whatever a bad channel carries changes nothing."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((40, 64, 6)).astype(np.float32)
    mel = (x[:, 16:, :3] @ rng.standard_normal((3, 80))).astype(np.float32)
    good = np.array([True, True, True, True, False, True])
    model = LinearBaseline(causal=False, n_components=20).fit(x, mel, good=good)
    noisy = x.copy()
    noisy[:, :, 4] = 100 * rng.standard_normal(noisy[:, :, 4].shape)
    assert np.array_equal(model.predict(x, 48), model.predict(noisy, 48))
    assert np.array_equal(LinearBaseline(n_components=20).fit(noisy, mel, good=good).predict(x, 48), model.predict(x, 48))
    restored = LinearBaseline.from_state_dict(model.state_dict())
    assert np.array_equal(restored.predict(noisy, 48), model.predict(x, 48))
    assert not np.array_equal(LinearBaseline(n_components=20).fit(x, mel).predict(noisy, 48), model.predict(x, 48))


# CLI config -----------------------------------------------------------------------------------------

def test_train_decoder_cli_config_layers_quick_flags_and_overrides():
    from neurovox.cli import build_parser
    from neurovox.commands.train_decoder import build_config
    from neurovox.decoders.config import PAPER_SIZES, QUICK_STEPS

    args = build_parser().parse_args(["train", "decoder", "--data", "x.h5", "--model", "swin", "--causal", "--quick",
                                      "--out", "r", "--seed", "3", "--set", "decoder.lr=0.01"])
    cfg = build_config(args)
    assert (cfg.decoder.model, cfg.decoder.causal, cfg.seed, cfg.decoder.lr) == ("swin", True, 3, 0.01)
    assert cfg.decoder.max_steps == QUICK_STEPS and cfg.decoder.target == "mel"  # a step budget, default sizes
    args = build_parser().parse_args(["train", "decoder", "--data", "x.h5", "--out", "r", "--target", "formant",
                                      "--set", "decoder.preset=paper"])
    cfg = build_config(args)
    assert (cfg.decoder.model, cfg.decoder.causal, cfg.decoder.target) == ("lstm", False, "formant")
    assert cfg.decoder.resnet_widths == PAPER_SIZES["resnet_widths"] and cfg.decoder.rnn_layers == 3
    both = build_parser().parse_args(["train", "decoder", "--data", "x.h5", "--out", "r", "--set", "decoder.preset=paper",
                                      "--set", "decoder.resnet_widths=[8,16]"])
    with pytest.raises(ConfigError, match="preset=paper sets decoder.resnet_widths"):
        build_config(both)
    bad = build_parser().parse_args(["train", "decoder", "--data", "x.h5", "--out", "r", "--set", "decoder.modle=lstm"])
    with pytest.raises(ConfigError, match="Did you mean \"model\""):
        build_config(bad)
