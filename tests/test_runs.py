"""Run directories: created with config + metadata, resumed when unfinished, protected when finished."""

import json

import pytest
import torch

from neurovox.errors import RunError
from neurovox.runs import RUN_FORMAT_VERSION, open_run, start_run
from neurovox.utils.files import atomic_path
from tests.conftest import RunConfig


def test_start_records_config_seed_and_data_hash(tmp_path):
    data = tmp_path / "data.bin"
    data.write_bytes(b"abc")
    run = start_run(tmp_path / "run", kind="speech", config=RunConfig(seed=3), seed=3, data_path=data)
    meta = json.loads((run.path / "run.json").read_text())
    assert meta["seed"] == 3 and meta["kind"] == "speech" and meta["format_version"] == RUN_FORMAT_VERSION
    assert meta["data_sha256"] == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert "torch" in meta["packages"]
    assert meta["torch_threads"] == torch.get_num_threads()  # CPU results depend on it
    assert (run.path / "config.yaml").read_text().startswith("seed: 3")


def test_unfinished_run_resumes_and_finished_run_is_protected(tmp_path):
    out = tmp_path / "run"
    run = start_run(out, kind="speech", config=RunConfig(), seed=0)
    again = start_run(out, kind="speech", config=RunConfig(), seed=0)
    assert again.path == run.path and not again.is_done
    with pytest.raises(RunError, match="different config"):
        start_run(out, kind="speech", config=RunConfig(seed=1), seed=1)
    run.mark_done()
    with pytest.raises(RunError, match="already holds a finished speech run.*--overwrite"):
        start_run(out, kind="speech", config=RunConfig(), seed=0)
    fresh = start_run(out, kind="speech", config=RunConfig(), seed=0, overwrite=True)
    assert not fresh.is_done


def test_open_run_checks_kind_and_version(tmp_path):
    run = start_run(tmp_path / "run", kind="decoder", config=RunConfig(), seed=0)
    with pytest.raises(RunError, match="holds a 'decoder' run, but a speech run is needed"):
        open_run(run.path, expect_kind="speech")
    meta = json.loads((run.path / "run.json").read_text())
    meta["format_version"] = 0
    (run.path / "run.json").write_text(json.dumps(meta))
    with pytest.raises(RunError, match="run format 0.*Re-run the training"):
        open_run(run.path)
    with pytest.raises(RunError, match="not a neurovox run directory"):
        open_run(tmp_path)


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    with atomic_path(target) as tmp:
        tmp.write_text("whole")
    assert target.read_text() == "whole"
