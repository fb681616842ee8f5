"""prepare.channels=ld_from_hb: a hybrid-density grid's macro contacts as a low-density grid."""

from __future__ import annotations

import numpy as np
import pytest

from neurovox.errors import ConfigError, DataError
from neurovox.io import read_recording
from neurovox.preprocess import prepare
from neurovox.preprocess.config import PrepareConfig


@pytest.fixture(scope="module")
def hybrid(tmp_path_factory):
    from neurovox.cli import main

    out = tmp_path_factory.mktemp("hb")
    assert main(["simulate", "--out", str(out), "--layout", "hybrid225", "--kind", "high_gamma", "--n-trials", "10",
                 "--seed", "2"]) == 0
    return next(out.glob("*.h5"))


def test_ld_from_hb_keeps_the_macro_contacts_on_an_8x8_grid(hybrid, tmp_path):
    rec = read_recording(hybrid)
    assert rec.n_channels == 225
    hb = prepare(rec, PrepareConfig(praat=False), use_cache=False)
    ld = prepare(rec, PrepareConfig(praat=False, channels="ld_from_hb"), use_cache=False)
    macro = np.flatnonzero(rec.channels["group"].to_numpy() == "macro")
    assert ld.neural.shape == (hb.neural.shape[0], 64) and len(macro) == 64
    # high-gamma input is not re-referenced: the LD columns are exactly the HB macro columns
    assert np.array_equal(ld.neural, hb.neural[:, macro])
    assert list(ld.channels["name"]) == list(rec.channels["name"].iloc[macro])
    assert sorted(set(ld.channels["row"])) == list(range(8)) and sorted(set(ld.channels["col"])) == list(range(8))
    from neurovox.decoders.layout import layout_from_channels

    assert layout_from_channels(ld.channels, model="resnet").mask.shape == (8, 8)


def test_ld_from_hb_errors(tmp_path):
    from neurovox.cli import main

    with pytest.raises(ConfigError, match="prepare.channels"):
        PrepareConfig(channels="ld")
    assert main(["simulate", "--out", str(tmp_path), "--kind", "high_gamma", "--n-trials", "10", "--seed", "2"]) == 0
    rec = read_recording(next(tmp_path.glob("*.h5")))
    with pytest.raises(DataError, match="no channels of group 'macro'.*hybrid225"):
        prepare(rec, PrepareConfig(praat=False, channels="ld_from_hb"), use_cache=False)
