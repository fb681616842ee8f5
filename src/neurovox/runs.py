"""Run directories: every training/decoding/evaluation output lives in one.

Layout of a run directory (all written atomically):

    RUN/config.yaml        resolved config, exactly what ran (see neurovox.config)
    RUN/run.json           kind, seed, data path + SHA-256, neurovox version, git hash, package versions,
                           torch threads (CPU results are bit-for-bit repeatable with the same versions
                           and thread count; another thread count changes the last bits of reductions)
    RUN/checkpoints/       last.ckpt (+ best.ckpt) for resume
    RUN/logs/              TensorBoard event files
    RUN/DONE               written last: a run without it is unfinished and may be resumed

`start_run` refuses to overwrite a finished run unless `overwrite=True`, and refuses to resume an
unfinished run whose config differs from the one given.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from neurovox import __version__
from neurovox.config import config_to_yaml, from_dict, save_config, to_dict
from neurovox.errors import RunError
from neurovox.utils.files import sha256_file, write_json_atomic, write_text_atomic

RUN_FORMAT_VERSION = 1
_PACKAGES = ("numpy", "scipy", "torch", "lightning", "librosa", "h5py", "pynwb", "mne", "pystoi",
             "praat-parselmouth", "scikit-learn")


def git_hash() -> str:
    try:
        root = Path(__file__).resolve().parents[2]
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
        if out.returncode != 0:
            return "unknown"
        return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _torch_threads() -> int:
    import torch  # imported here: opening runs does not need torch

    return torch.get_num_threads()


def package_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


@dataclass
class Run:
    """An opened run directory: its path, its resolved config (dict) and its metadata (run.json)."""

    path: Path
    config: dict[str, Any]
    meta: dict[str, Any]

    @property
    def kind(self) -> str:
        return self.meta["kind"]

    @property
    def is_done(self) -> bool:
        return (self.path / "DONE").exists()

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    def typed_config(self, cls: type) -> Any:
        return from_dict(cls, self.config)

    def mark_done(self, summary: dict[str, Any] | None = None) -> None:
        write_json_atomic(self.path / "DONE", {"finished": _now(), **(summary or {})})


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def start_run(out: str | Path, *, kind: str, config: Any, seed: int,
              data_path: str | Path | None = None, overwrite: bool = False,
              extra_meta: dict[str, Any] | None = None) -> Run:
    """Create (or reopen, to resume) the run directory `out` for a run of `kind` with `config`.

    - `out` finished (has DONE): RunError unless overwrite, which clears it first.
    - `out` unfinished with the same config, data file and `extra_meta` (e.g. the speech run): reopened, so
      training can resume from its checkpoints.
    - `out` unfinished with another config, data file or `extra_meta` value: RunError naming each
      difference (resuming would mix two experiments).
    """
    out = Path(out)
    new_yaml = config_to_yaml(config)
    if out.exists() and any(out.iterdir()):
        if overwrite:
            shutil.rmtree(out)
        elif (out / "DONE").exists():
            raise RunError(
                f"Run directory {str(out)!r} already holds a finished {kind} run. "
                "Pass --overwrite to replace it, or choose another --out."
            )
        elif (out / "config.yaml").exists():
            run = open_run(out)
            if run.kind != kind:
                raise RunError(f"Run directory {str(out)!r} holds a {run.kind!r} run, not {kind!r}.")
            differences = _differences(run, yaml.safe_load(new_yaml) or {}, data_path, extra_meta or {})
            if differences:
                raise RunError(
                    f"Run directory {str(out)!r} holds an unfinished run with a different config or inputs: "
                    f"{'; '.join(differences[:4])}{' ...' if len(differences) > 4 else ''}; resuming would mix two "
                    "experiments. Rerun with the same inputs to resume, --overwrite to start over, or choose another --out."
                )
            return run
        else:
            raise RunError(f"{str(out)!r} exists and is not a neurovox run directory; choose another --out.")
    out.mkdir(parents=True, exist_ok=True)
    (out / "checkpoints").mkdir(exist_ok=True)
    meta = {
        "kind": kind,
        "format_version": RUN_FORMAT_VERSION,
        "neurovox_version": __version__,
        "git_hash": git_hash(),
        "seed": seed,
        "created": _now(),
        "command": " ".join(sys.argv),
        "packages": package_versions(),
        "torch_threads": _torch_threads(),
    }
    if data_path is not None:
        meta["data_path"] = str(Path(data_path).resolve())
        meta["data_sha256"] = sha256_file(data_path)
    meta.update(extra_meta or {})
    save_config(config, out / "config.yaml")
    write_json_atomic(out / "run.json", meta)
    return Run(out, to_dict(config), meta)


def _differences(run: Run, new_config: dict[str, Any], data_path: str | Path | None,
                 extra_meta: dict[str, Any]) -> list[str]:
    """What differs between an existing run and a new start: config keys, the data file, run.json entries."""
    out = [f"config {key}: {old!r} -> {new!r}" for key, old, new in _dict_diff(run.config, new_config)]
    if data_path is not None:
        old_sha, new_sha = run.meta.get("data_sha256"), sha256_file(data_path)
        if old_sha != new_sha:
            out.append(f"data file: {run.meta.get('data_path')!r} (SHA-256 {str(old_sha)[:12]}) -> "
                       f"{str(Path(data_path).resolve())!r} ({new_sha[:12]})")
    for key, new in extra_meta.items():
        if run.meta.get(key) != new:
            out.append(f"{key}: {run.meta.get(key)!r} -> {new!r}")
    return out


def _dict_diff(old: Any, new: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted key, old value, new value) of every leaf that differs between two nested dicts."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return [] if old == new else [(prefix.rstrip(".") or "<root>", old, new)]
    diffs = []
    for key in list(old) + [k for k in new if k not in old]:
        diffs += _dict_diff(old.get(key), new.get(key), f"{prefix}{key}.")
    return diffs


def open_run(path: str | Path, expect_kind: str | tuple[str, ...] | None = None, require_done: bool = False) -> Run:
    """Open an existing run directory, checking its format version and kind."""
    path = Path(path)
    meta_file = path / "run.json"
    if not meta_file.is_file():
        raise RunError(f"{str(path)!r} is not a neurovox run directory (no run.json). "
                       "Pass the --out directory of a `neurovox train ...` command.")
    try:
        meta = json.loads(meta_file.read_text())
        config = yaml.safe_load((path / "config.yaml").read_text()) or {}
    except (OSError, json.JSONDecodeError, yaml.YAMLError) as exc:
        raise RunError(f"Run directory {str(path)!r} is damaged ({exc}); re-run the command that made it.") from None
    version = meta.get("format_version")
    if version != RUN_FORMAT_VERSION:
        raise RunError(
            f"Run directory {str(path)!r} was written by run format {version!r} (neurovox "
            f"{meta.get('neurovox_version', '?')}); this neurovox reads format {RUN_FORMAT_VERSION}. "
            "Re-run the training with this version."
        )
    if expect_kind is not None:
        kinds = (expect_kind,) if isinstance(expect_kind, str) else tuple(expect_kind)
        if meta.get("kind") not in kinds:
            raise RunError(f"{str(path)!r} holds a {meta.get('kind')!r} run, but a {' or '.join(kinds)} run is needed here.")
    run = Run(path, config, meta)
    if require_done and not run.is_done:
        raise RunError(f"Run {str(path)!r} is unfinished (no DONE file). Re-run its command to resume it.")
    return run


def load_run_weights(run_dir: str | Path, kind: str, filename: str, keys: tuple[str, ...], *,
                     device: Any = "cpu", require_done: bool = True) -> tuple[Run, dict[str, Any]]:
    """A run of `kind` and its torch weights file RUN/`filename`, with every key in `keys` present.

    A missing file or key is a RunError that names the command to re-run (`neurovox train <kind>`).
    """
    import torch

    run = open_run(run_dir, expect_kind=kind, require_done=require_done)
    path = run.path / filename
    if not path.is_file():
        raise RunError(f"The {kind} run {str(run.path)!r} has no {filename} (training did not finish?). Re-run its "
                       f"`neurovox train {kind}` command to resume it.")
    payload = torch.load(path, map_location=device, weights_only=False)
    missing = [k for k in keys if k not in payload]
    if missing:
        raise RunError(f"{str(path)!r} has no {', '.join(missing)} (written by an older neurovox?); retrain with "
                       f"`neurovox train {kind} ... --overwrite`.")
    return run, payload


def write_notice(path: str | Path, text: str) -> None:
    write_text_atomic(path, text)
