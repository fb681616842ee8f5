"""`neurovox info PATH`: what a recording holds, in one screen.

Participant, format, neural kind/rate/duration, channels by type and the bad ones (the file's own,
and those found flat, noisy or spiky against their neighbours by
`neurovox.preprocess.bad_channels.find_bad_channels`), grid or shaft layout, audio rate and level
(RMS and peak in dBFS, clipped fraction), trials per task and the most frequent words, what the
reader derived, and every notice. For a file written by `neurovox simulate`, the encoding model and
every channel's role from the ground truth beside it.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from neurovox.io.recording import Recording

CLIP_LEVEL = 0.999   # |sample| at or above this counts as clipped (full scale is 1.0)
N_TOP_WORDS = 10
N_FOUND_BAD_SHOWN = 12   # found bad channels listed in the text (the JSON has all)


def _dbfs(x: float) -> float:
    return float(20 * np.log10(max(x, 1e-12)))


def _layout(rec: Recording) -> list[str]:
    ch = rec.channels
    lines = []
    seeg = ch[(ch["type"] == "seeg") & (ch["row"] < 0)]
    if len(seeg):
        n_xyz = int(np.isfinite(seeg[["x", "y", "z"]].to_numpy(float)).all(axis=1).sum())
        shafts = seeg.groupby(seeg["group"].replace("", "(none)"), sort=False).size()
        lines.append(f"{len(shafts)} sEEG shafts ({n_xyz}/{len(seeg)} contacts with 3-D positions): "
                     + ", ".join(f"{k} {v}" for k, v in shafts.items()))
        ch = ch.drop(seeg.index)
    for group, sub in ch.groupby(ch["group"].replace("", "(none)"), sort=False):
        rows, cols = sub["row"].to_numpy(int), sub["col"].to_numpy(int)
        on_grid = (rows >= 0) & (cols >= 0)
        n_xyz = int(np.isfinite(sub[["x", "y", "z"]].to_numpy(float)).all(axis=1).sum())
        desc = f"{group}: {len(sub)} {'/'.join(sorted(set(sub['type'])))} contacts"
        if on_grid.any():
            desc += f" on a {rows[on_grid].max() + 1} x {cols[on_grid].max() + 1} grid"
            if (~on_grid).any():
                desc += f" ({int((~on_grid).sum())} without grid position)"
        if n_xyz:
            desc += f", {n_xyz} with 3-D positions"
        lines.append(desc)
    if len(lines) > 12:
        lines = lines[:12] + [f"... {len(lines) - 12} more groups"]
    return lines


GROUND_TRUTH_SEARCH_DEPTH = 4   # bids/sub-XX/ieeg/<file>.nwb sits 4 levels below the simulation folder
N_ROLE_NAMES = 12


def simulated_roles(rec: Recording) -> dict[str, Any] | None:
    """Encoding and channel roles of a simulated recording, read from the `ground_truth.json` that
    `neurovox simulate` wrote beside it (searched up to 4 folders up); None when there is none or
    its channels are not this recording's."""
    src = rec.meta.source_path
    if not src:
        return None
    folder = Path(src).resolve()
    for _ in range(GROUND_TRUTH_SEARCH_DEPTH + 1):
        js = folder / "ground_truth.json"
        if js.is_file():
            try:
                truth = json.loads(js.read_text())
            except (OSError, ValueError):
                return None
            names, kinds = truth.get("ch_names"), truth.get("site_kind")
            if names != rec.channels["name"].tolist() or not kinds or len(kinds) != len(names):
                return None
            by_role: dict[str, list[str]] = {}
            for name, role in zip(names, kinds):
                by_role.setdefault(role, []).append(name)
            from neurovox.simulate.realistic import ROLES

            order = [r for r in ROLES if r in by_role] + sorted(set(by_role) - set(ROLES))
            return {"ground_truth": str(js), "encoding": truth.get("encoding", "linear"),
                    "roles": {r: by_role[r] for r in order}}
        folder = folder.parent
    return None


def found_bad_channels(rec: Recording) -> dict[str, Any] | None:
    """The channels `find_bad_channels` flags in `rec` (beyond the file's own bad ones), JSON-ready:
    {"threshold_z", "channels": [{"name", "reason", "log_var_z", "kurtosis_z"}, ...]}; None when the
    recording is too short to judge."""
    from neurovox.preprocess.bad_channels import MIN_FRAMES, find_bad_channels

    if rec.n_samples < MIN_FRAMES:
        return None
    report = find_bad_channels(rec.neural, rec.channels, rec.neural_sfreq_hz)
    return {"threshold_z": report.threshold_z, "channels": report.found_details()}


def summarize(rec: Recording) -> dict[str, Any]:
    """A JSON-ready summary of `rec` (what `neurovox info` prints)."""
    ch = rec.channels
    audio = rec.audio.astype(np.float64)
    rms = float(np.sqrt(np.mean(audio ** 2))) if audio.size else 0.0
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    tr = rec.trials
    words = Counter(tr["label"].tolist())
    dur = (tr["offset_s"] - tr["onset_s"]).to_numpy(float)
    m = rec.meta
    return {
        "path": m.source_path, "participant": m.participant_id, "sex": m.sex, "hemisphere": m.hemisphere,
        "format": m.source_format, "grid_density": m.grid_density, "language": m.language,
        "neural": {"kind": rec.neural_kind, "unit": rec.neural_unit, "sfreq_hz": rec.neural_sfreq_hz,
                   "n_samples": rec.n_samples, "n_channels": rec.n_channels, "duration_s": rec.neural_duration_s,
                   "dtype": str(rec.neural.dtype)},
        "channels_by_type": dict(Counter(ch["type"].tolist())),
        "bad_channels": rec.bads,
        "bad_channels_found": found_bad_channels(rec),
        "layout": _layout(rec),
        "audio": {"sfreq_hz": rec.audio_sfreq_hz, "duration_s": rec.audio_duration_s, "rms_dbfs": _dbfs(rms),
                  "peak_dbfs": _dbfs(peak), "clipped_fraction": float(np.mean(np.abs(audio) >= CLIP_LEVEL))
                  if audio.size else 0.0},
        "trials": {"n": rec.n_trials, "per_task": dict(Counter(tr["task"].tolist())),
                   "n_words": len(words), "top_words": words.most_common(N_TOP_WORDS),
                   "mean_duration_s": float(dur.mean()), "extras": sorted(rec.extras)},
        "derived": list(m.derived), "notices": list(m.notes),
        "simulated": simulated_roles(rec),
    }


def format_summary(s: dict[str, Any]) -> str:
    """The human-readable text of a `summarize` dict."""
    n, a, t = s["neural"], s["audio"], s["trials"]
    types = ", ".join(f"{k} {v}" for k, v in s["channels_by_type"].items())
    bads = s["bad_channels"]
    bad_txt = f"{len(bads)} bad" + (f": {', '.join(bads[:12])}{' ...' if len(bads) > 12 else ''}" if bads else "")
    lines = [
        f"path          {s['path']}",
        f"participant   {s['participant']} (sex {s['sex']}, hemisphere {s['hemisphere']}, language {s['language']})",
        f"format        {s['format']} (grid density: {s['grid_density']})",
        f"neural        {n['kind']}, {n['n_channels']} channels @ {n['sfreq_hz']:g} Hz, {n['duration_s']:.2f} s "
        f"({n['n_samples']} samples, {n['dtype']}, unit {n['unit']})",
        f"channels      {types}; {bad_txt}",
        f"found bad     {_found_text(s.get('bad_channels_found'))}",
    ]
    lines += [f"layout        {x}" if i == 0 else f"              {x}" for i, x in enumerate(s["layout"])]
    lines += [
        f"audio         {a['sfreq_hz']:g} Hz, {a['duration_s']:.2f} s, RMS {a['rms_dbfs']:.1f} dBFS, "
        f"peak {a['peak_dbfs']:.1f} dBFS, clipped {100 * a['clipped_fraction']:.2f} %",
        f"trials        {t['n']} in {len(t['per_task'])} tasks, mean speech duration {t['mean_duration_s']:.2f} s; "
        "per task: " + ", ".join(f"{k} {v}" for k, v in t["per_task"].items()),
        f"words         {t['n_words']} distinct; top: " + ", ".join(f"{w} {c}" for w, c in t["top_words"]),
    ]
    if t["extras"]:
        lines.append(f"stored keys   {', '.join(t['extras'])}")
    sim = s.get("simulated")
    if sim:
        lines.append(f"simulated     {sim['encoding']} encoding; channel roles from {sim['ground_truth']}")
        for role, names in sim["roles"].items():
            more = f" ... ({len(names) - N_ROLE_NAMES} more)" if len(names) > N_ROLE_NAMES else ""
            lines.append(f"  {role:<20} {len(names):>3}: {', '.join(names[:N_ROLE_NAMES])}{more}")
    for title, items in (("derived", s["derived"]), ("notices", s["notices"])):
        if items:
            lines += [f"{title:<13} - {x}" if i == 0 else f"{'':<13} - {x}" for i, x in enumerate(items)]
        else:
            lines.append(f"{title:<13} none")
    return "\n".join(lines)


def _found_text(found: dict[str, Any] | None) -> str:
    if found is None:
        return "not checked (recording too short)"
    rows = found["channels"]
    rule = f"flat / noisy / spiky: |robust z| > {found['threshold_z']:g} against the neighbours"
    if not rows:
        return f"none ({rule})"
    shown = [f"{r['name']} {r['reason']} (z {r['kurtosis_z'] if r['reason'] == 'spiky' else r['log_var_z']:.1f})"
             for r in rows[:N_FOUND_BAD_SHOWN]]
    more = f" ... ({len(rows) - N_FOUND_BAD_SHOWN} more)" if len(rows) > N_FOUND_BAD_SHOWN else ""
    return f"{len(rows)}: {', '.join(shown)}{more} ({rule})"


def info(path: str, *, subject: str | None = None, nonfinite: str = "raise") -> dict[str, Any]:
    """Read `path` (any supported format) and return its summary."""
    from neurovox.io import read_recording

    return summarize(read_recording(path, subject=subject, nonfinite=nonfinite))


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from neurovox.cli import command_parser

    p = command_parser(subparsers, "info", "summarise a recording (any supported format)", __doc__.split("\n\n")[0],
                       run)
    p.add_argument("path", help="Flinker .h5/.mat file, SWPD .nwb file or sub-XX directory, or BIDS root")
    p.add_argument("--subject", default=None, help="BIDS subject label when the root holds several")
    p.add_argument("--nonfinite", default="raise", choices=("raise", "mark_bad", "interpolate"),
                   help="what to do with NaN/Inf neural samples (default: raise an error naming the channels)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


def run(args: argparse.Namespace) -> int:
    summary = info(args.path, subject=args.subject, nonfinite=args.nonfinite)
    print(json.dumps(summary, indent=2, default=str) if args.json else format_summary(summary))
    return 0
