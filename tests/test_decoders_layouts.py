"""Issue 5: every decoder trains and decodes on every simulated electrode layout.

Tiny participants (10 words, seed 0, SNR 0 dB) on an 8x8 grid (64 ch), a 15x15 hybrid grid with 128
and with 225 channels, and sEEG shafts; linear, ResNet3D, Swin3D and LSTM train for a few steps with
tiny sizes against one shared frozen speech model (`speech_run_tiny10`, trained on the training trials of their fold), then `decode_run` writes
per-trial WAVs, PNGs and npz files. The grid models must refuse sEEG with a message that names the
model and points to the layout-free LSTM. (No position-aware model over 3-D electrode coordinates is
built: sEEG uses the LSTM/GRU and the linear baseline.)
"""

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from neurovox.config import load_config
from neurovox.decode import decode_run
from neurovox.decoders.train import DecoderRunConfig, train_decoder
from neurovox.errors import DataError

N_TRIALS = 10
N_TARGET, N_LEAD = 64, 8  # short windows keep the module fast (test windows start 32 frames before speech onset)
# kfold over 10 trials: 2 test trials, the rest train/validate; one Lightning step per epoch (batch 8), all in
# the reference phase of the curriculum (no synthesis; the tiny crop only keeps the up-front cost estimate cheap).
TINY = ["prepare.praat=false", "split.scheme=kfold", "split.n_folds=5", "decoder.batch_size=8",
        f"decoder.n_target_frames={N_TARGET}", f"decoder.n_lead_frames={N_LEAD}", "decoder.train_crop_frames=8",
        "decoder.spec_ffts=[512]", "decoder.lr=0.01", "decoder.ema_decay=0", "decoder.max_epochs=3",
        "decoder.patience=10", "decoder.warmup_steps=1", "decoder.ref_only_steps=100000", "decoder.dropout=0",
        "decoder.resnet_widths=[4,8]", "decoder.swin_dim=8", "decoder.swin_depths=[2]", "decoder.swin_window_t=8",
        "decoder.rnn_hidden=16", "decoder.rnn_layers=1", "decoder.linear_passes=1", "decoder.target=formant"]
CASES = [(layout, model) for layout in ("grid8x8", "hybrid128", "hybrid225")
         for model in ("linear", "resnet", "swin", "lstm")]
CASES += [("seeg", "linear"), ("seeg", "lstm")]
N_CHANNELS = {"grid8x8": 64, "hybrid128": 128, "hybrid225": 225}


@pytest.fixture(scope="module")
def participants(tmp_path_factory):
    """{layout: path of a 10-word Flinker HDF5 participant}, plus the shared feature cache."""
    from neurovox.io import write_flinker_hdf5
    from neurovox.simulate import SimulateConfig, simulate_participant

    root = tmp_path_factory.mktemp("layouts")
    paths = {}
    for layout in ("grid8x8", "hybrid128", "hybrid225", "seeg"):
        cfg = SimulateConfig(n_trials=N_TRIALS, layout=layout, n_seeg_shafts=3)
        rec, _ = simulate_participant(cfg, 0, kind="high_gamma")
        paths[layout] = write_flinker_hdf5(rec, root / f"{layout}.h5")
    return paths, root / "cache"


def _val_losses(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = sorted((run_dir / "logs").rglob("events.*"))
    return [e.value for e in EventAccumulator(str(events[0])).Reload().Scalars("val_loss")]


@pytest.mark.parametrize("layout,model", CASES)
def test_decoder_trains_and_decodes_on_layout(layout, model, participants, tmp_path, request):
    paths, cache = participants
    torch.manual_seed(0)
    cfg = load_config(DecoderRunConfig, None, TINY + [f"decoder.model={model}"])
    speech = None if model == "linear" else request.getfixturevalue("speech_run_tiny10")
    run_dir = train_decoder(paths[layout], tmp_path / "run", cfg, speech_run=speech, progress=False, cache_dir=cache)
    summary = json.loads((run_dir / "DONE").read_text())
    if model == "linear":
        assert np.isfinite(summary["val_pcc"]) and summary["val_pcc"] > 0.2, summary
    else:
        val = _val_losses(run_dir)
        assert summary["epochs"] == 3 and len(val) == 3, (summary, val)
        assert np.isfinite(val).all() and val[-1] < val[0], val  # the reference loss fell
        assert np.isfinite(summary["val_pcc"]), summary  # synthesized validation speech is finite

    out = decode_run(run_dir, paths[layout], tmp_path / "decoded")
    with np.load(out / "decoded.npz") as z:
        trials = z["trial"]
        n_test = len(trials)
        assert n_test == 2 and z["decoded_mel_db"].shape == z["reference_mel_db"].shape == (n_test, N_TARGET, 80)
        assert np.isfinite(z["decoded_mel_db"]).all()
        if model != "linear":
            assert z["params"].shape == (n_test, N_TARGET, 18)
    for trial in trials:
        wave, rate = sf.read(out / "wav" / f"trial_{int(trial):03d}_decoded.wav")
        assert rate == 16000 and wave.shape == (N_TARGET * 128,) and np.isfinite(wave).all()
        assert (out / "png" / f"trial_{int(trial):03d}.png").stat().st_size > 0
        if model != "linear":
            assert (out / "params" / f"trial_{int(trial):03d}.npz").exists()
    if layout in N_CHANNELS and model in ("resnet", "swin"):
        layout_json = json.loads((run_dir / "layout.json").read_text())
        assert len(layout_json["rows"]) == N_CHANNELS[layout]
        assert (layout_json["n_rows"], layout_json["n_cols"]) == ((8, 8) if layout == "grid8x8" else (15, 15))


@pytest.mark.parametrize("model", ["resnet", "swin"])
def test_grid_models_refuse_seeg_participant(model, participants, tmp_path, capsys):
    """A grid model on sEEG stops with a DataError that names the model and suggests the LSTM; the CLI prints
    it (no traceback) and exits with status 2."""
    from neurovox.cli import main

    paths, cache = participants
    cfg = load_config(DecoderRunConfig, None, TINY + [f"decoder.model={model}"])
    with pytest.raises(DataError, match=rf"The {model} model needs a 2-D electrode grid.*sEEG.*--model lstm"):
        train_decoder(paths["seeg"], tmp_path / "run", cfg, progress=False, cache_dir=cache)
    code = main(["train", "decoder", "--data", str(paths["seeg"]), "--model", model, "--out", str(tmp_path / "cli"),
                 "--cache-dir", str(cache), "--set", "prepare.praat=false"])
    assert code == 2
    err = capsys.readouterr().err
    assert f"{model} model needs a 2-D electrode grid" in err and "--model lstm" in err
    assert not (tmp_path / "run").exists() and not (tmp_path / "cli").exists()  # no half-made run left behind
