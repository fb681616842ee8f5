"""Causal end to end (issue #14 item 5): raw voltage -> causal high gamma -> causal decoder -> parameters.

Perturbing the raw voltage after time t must leave every decoded parameter of a frame whose neural
input ends before t bit-for-bit unchanged, through `prepare` (forward-only filters, streaming
envelope), the run's normaliser and the decoder. A causal decoder refuses high gamma that records
zero-phase (offline) extraction.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neurovox.config import load_config
from neurovox.decoders.train import DecoderRunConfig, causal_input_provenance, train_decoder
from neurovox.errors import ConfigError, DataError

N_TARGET, N_LEAD = 64, 8
# kfold over the 20 trials of `sim_raw` (4 test trials); one epoch of a tiny causal GRU: random-ish
# weights are enough, causality is a property of the whole computation, not of the fit.
# prepare.line_noise_hz is fixed: auto-detection (0) reads the first 60 s of the recording, future included, so
# perturbing the voltage can change which notch every frame gets (found by this test; see the report).
TINY = ["prepare.praat=false", "prepare.causal=true", "prepare.line_noise_hz=60", "split.scheme=kfold", "split.n_folds=5",
        "decoder.model=gru", "decoder.causal=true", "decoder.batch_size=8", f"decoder.n_target_frames={N_TARGET}",
        f"decoder.n_lead_frames={N_LEAD}", "decoder.train_crop_frames=8", "decoder.spec_ffts=[512]",
        "decoder.ema_decay=0", "decoder.max_epochs=1", "decoder.patience=10", "decoder.warmup_steps=1",
        "decoder.ref_only_steps=100000", "decoder.dropout=0", "decoder.rnn_hidden=16", "decoder.rnn_layers=1",
        "decoder.target=formant"]


@pytest.fixture(scope="module")
def raw_causal_run(sim_raw, tmp_path_factory):
    from neurovox.io import write_swpd

    root = tmp_path_factory.mktemp("causal_e2e")
    rec, _ = sim_raw
    path = write_swpd(rec, root / "bids")
    torch.manual_seed(0)
    cfg = load_config(DecoderRunConfig, None, TINY)
    run_dir = train_decoder(path, root / "run", cfg, progress=False, cache_dir=root / "cache")
    return rec, path, run_dir, root


def test_future_raw_voltage_leaves_earlier_parameters_bit_identical(raw_causal_run):
    from neurovox.decode import trial_windows
    from neurovox.decoders.decode import load_trial_decoder
    from neurovox.io import write_swpd
    from neurovox.runs import open_run

    rec, path, run_dir, root = raw_causal_run
    run = open_run(run_dir, expect_kind="decoder")
    assert run.config["prepare"]["causal"] is True               # config.yaml records the causal preparation
    assert run.meta.get("causal_input") == "causal"
    dec = load_trial_decoder(run_dir)
    base = trial_windows(dec, run, path, "test")
    # t: 0.25 s into the first test trial's speech, inside its decoded window. The normaliser is the run's
    # (fitted on training frames before any perturbation) and trial_windows applies it to both versions:
    # refitting it on perturbed data would change every frame's scaling and hide what causality means
    # here (a perturbation after t changes nothing before t).
    first = int(np.argmin(base["trial"]))
    onset_s = float(rec.trials["onset_s"].iloc[int(base["trial"][first])])
    t_sample = int(np.ceil((onset_s + 0.25) * rec.neural_sfreq_hz))
    pert = rec.neural.copy()
    noise = np.random.default_rng(0).standard_normal(pert[t_sample:].shape).astype(np.float32)
    pert[t_sample:] += noise * 5 * float(np.std(rec.neural))
    path2 = write_swpd(rec.replace(neural=pert), root / "bids_perturbed")
    other = trial_windows(dec, run, path2, "test")
    assert np.array_equal(base["trial"], other["trial"])

    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    a = dec.decode(base["neural"], generator=gen())["params"]
    b = dec.decode(other["neural"], generator=gen())["params"]
    # frame f (8 ms) averages raw samples [f * 8 ms, (f + 1) * 8 ms): frames < first_changed end before t
    first_changed = int(t_sample * 125 // rec.neural_sfreq_hz)
    checked = 0
    for i in range(len(base["trial"])):
        onset_s_i = float(rec.trials["onset_s"].iloc[int(base["trial"][i])])
        start = int(np.floor(onset_s_i * 125 + 1e-9)) - 32       # test windows start 32 frames before onset
        # window row j holds neural frame start - N_LEAD + j; target frame k is simultaneous with row N_LEAD + k
        n_rows = int(np.clip(first_changed - (start - N_LEAD), 0, N_LEAD + N_TARGET))
        n_safe = int(np.clip(first_changed - start, 0, N_TARGET))
        assert np.array_equal(base["neural"][i][:n_rows], other["neural"][i][:n_rows])
        assert not np.array_equal(base["neural"][i][n_rows:], other["neural"][i][n_rows:])
        assert np.array_equal(a[i, :n_safe], b[i, :n_safe]), f"window {i}: a parameter before t changed"
        checked += n_safe
    assert checked > 20                                          # the check covered real frames
    assert not np.array_equal(a[first, N_TARGET - 1], b[first, N_TARGET - 1])  # after t the output does change


def test_causal_decoder_needs_causal_preparation(sim_raw, tmp_path):
    cfg = load_config(DecoderRunConfig, None, TINY + ["prepare.causal=false"])
    with pytest.raises(ConfigError, match=r"decoder.causal=true needs prepare.causal=true"):
        train_decoder(tmp_path / "unused.nwb", tmp_path / "run", cfg, progress=False)


def test_cli_causal_flag_prepares_causally():
    from neurovox.cli import build_parser
    from neurovox.commands.train_decoder import build_config

    # through the real parser, so a new flag cannot leave this test's namespace behind
    args = build_parser().parse_args(["train", "decoder", "--data", "x.h5", "--out", "r", "--model", "lstm",
                                      "--causal", "--set", "prepare.praat=false"])
    assert build_config(args).prepare.causal is True
    args.overrides = ["prepare.causal=false"]                    # an explicit choice is kept (and refused later)
    assert build_config(args).prepare.causal is False
    args.causal, args.overrides = None, None
    assert build_config(args).prepare.causal is False


def test_offline_high_gamma_refused_unknown_provenance_warned(sim_raw, sim_hg_path, tmp_path):
    from neurovox.io import read_recording, write_flinker_hdf5
    from neurovox.preprocess import PrepareConfig, prepare
    from neurovox.preprocess.config import HighGammaConfig
    from neurovox.preprocess.highgamma import extract_high_gamma

    rec, _ = sim_raw
    offline = write_flinker_hdf5(extract_high_gamma(rec, HighGammaConfig(zscore="none")), tmp_path / "offline.h5")
    cfg = load_config(DecoderRunConfig, None, TINY)
    with pytest.raises(DataError, match=r"extracted offline .*run `neurovox preprocess --causal` .*raw recording"):
        train_decoder(offline, tmp_path / "run", cfg, progress=False, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "run").exists()
    causal = write_flinker_hdf5(extract_high_gamma(rec, HighGammaConfig(causal=True, zscore="none")),
                                tmp_path / "causal.h5")
    pcfg = PrepareConfig(praat=False, causal=True)
    assert causal_input_provenance(prepare(read_recording(causal), pcfg), causal) == "causal"
    with pytest.warns(UserWarning, match="unknown provenance"):
        note = causal_input_provenance(prepare(read_recording(sim_hg_path), pcfg), sim_hg_path)
    assert note.startswith("warning:")
