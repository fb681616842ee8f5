"""Write a simulated participant to disk: Flinker HDF5 and/or SWPD iBIDS + ground truth + config."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from neurovox.config import save_config
from neurovox.errors import RunError
from neurovox.runs import git_hash
from neurovox.utils.files import atomic_path, write_json_atomic

from neurovox.simulate.config import SimulateConfig
from neurovox.simulate.participant import GROUND_TRUTH_JSON, GROUND_TRUTH_NPZ, simulate

CONFIG_NAME = "config.yaml"
MANIFEST_NAME = "simulation.json"


@dataclass
class SimulateRunConfig:
    """Run config of `neurovox simulate` (the file saved as config.yaml)."""

    seed: int = 0                                                  # RNG seed of the participant
    simulate: SimulateConfig = field(default_factory=SimulateConfig)


def role_summary(roles) -> str:
    """'sensorimotor 14, auditory_onset 5, ...' in `realistic.ROLES` order (linear: its two kinds)."""
    from collections import Counter

    from neurovox.simulate.realistic import ROLES

    counts = Counter(str(r) for r in roles)
    order = [r for r in ROLES if r in counts] + sorted(set(counts) - set(ROLES))
    return ", ".join(f"{r} {counts[r]}" for r in order)


def flinker_path(out_dir: Path, participant_id: str) -> Path:
    return out_dir / f"{participant_id}_high_gamma.h5"


def bids_subject(participant_id: str) -> str:
    """BIDS subject label (alphanumeric) for a participant id."""
    return re.sub(r"[^A-Za-z0-9]", "", participant_id) or "01"


def write_simulation(cfg: SimulateRunConfig, out_dir: str | Path, *, overwrite: bool = False,
                     log=print) -> dict[str, Path]:
    """Simulate `cfg` and write everything into `out_dir` atomically (the folder appears complete or not at all).

    Writes `<id>_high_gamma.h5` (Flinker HDF5, kind high_gamma or both), `bids/` (SWPD-style
    iBIDS root with the raw 1024 Hz NWB, kind raw or both), `ground_truth.npz` + `ground_truth.json`,
    `config.yaml` (the resolved config) and `simulation.json` (file list). Returns name -> path.
    """
    from neurovox.io import write_flinker_hdf5, write_swpd

    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())) and not overwrite:
        raise RunError(f"output {out_dir} already exists and is not empty; pass --overwrite to replace it, "
                       "or choose another --out.")
    sim = cfg.simulate
    kinds = ("high_gamma", "raw") if sim.kind == "both" else (sim.kind,)
    log(f"simulating participant {sim.participant_id}: {sim.encoding} encoding, layout {sim.layout}, {sim.n_trials} trials, "
        f"snr {sim.snr_db:g} dB, kinds {', '.join(kinds)}, seed {cfg.seed} ...")
    t0 = time.perf_counter()
    recs, gt = simulate(sim, cfg.seed, kinds)
    paths: dict[str, Path] = {}
    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        rel: dict[str, str] = {}
        if "high_gamma" in recs:
            p = write_flinker_hdf5(recs["high_gamma"], flinker_path(tmp, sim.participant_id))
            rel["flinker_hdf5"] = p.name
        if "raw" in recs:
            p = write_swpd(recs["raw"], tmp / "bids", subject=bids_subject(sim.participant_id))
            rel["swpd_nwb"] = str(p.relative_to(tmp))
            rel["bids_root"] = "bids"
        gt.save(tmp)
        rel["ground_truth_npz"], rel["ground_truth_json"] = GROUND_TRUTH_NPZ, GROUND_TRUTH_JSON
        save_config(cfg, tmp / CONFIG_NAME)
        rel["config"] = CONFIG_NAME
        rec = next(iter(recs.values()))
        write_json_atomic(tmp / MANIFEST_NAME, {
            "files": rel, "participant_id": sim.participant_id, "voice": gt.voice, "sex": gt.sex,
            "layout": sim.layout, "encoding": sim.encoding, "n_channels": rec.n_channels, "bad_channels": rec.bads,
            "n_trials": rec.n_trials, "duration_s": rec.duration_s, "snr_db": sim.snr_db, "seed": cfg.seed,
            "git": git_hash(), "elapsed_s": round(time.perf_counter() - t0, 2)})
        rel["manifest"] = MANIFEST_NAME
    paths = {k: out_dir / v for k, v in rel.items()}
    log(f"wrote {out_dir} in {time.perf_counter() - t0:.1f} s: {rec.n_channels} channels "
        f"({len(rec.bads)} bad), {rec.n_trials} trials, {rec.duration_s:.0f} s, voice {gt.voice} ({gt.sex})")
    log(f"  channel roles: {role_summary(gt.roles)}")
    for k, p in paths.items():
        log(f"  {k:18s} {p}")
    return paths
