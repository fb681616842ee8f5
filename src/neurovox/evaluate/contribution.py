"""Which electrodes carry the decoded speech: occlusion analysis of a trained decoder on its test trials.

    table = electrode_contributions(decoder, test, channels, seed=0)   # one row per channel
    neurovox contribution --run RUN --data FILE --out DIR              # CSV + figures + report.html

Each electrode in turn is occluded in every test window (its normalised input set to 0, the training
mean: the value a silent, average contact has) and the test trials are decoded again; its contribution
is the drop of each trial's PCC and tilt-removed PCC against the unoccluded decoding, averaged over
trials, with a bootstrap 95 % CI over trials (Chen et al. 2024 occlude electrodes the same way for
their cortical maps). Bad contacts are masked inside every decoder, so occluding one changes nothing:
their contribution is exactly 0. Only spectrogram metrics are used (no vocoding): n_channels + 1
decodings of the test set, seconds for the linear baseline and the LSTM.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from neurovox.errors import DataError, RunError
from neurovox.evaluate import metrics as M
from neurovox.utils.files import atomic_path

METRICS = ("pcc", "pcc_tilt")


def electrode_contributions(decoder: Any, test: Any, channels: pd.DataFrame, *, seed: int = 0, n_boot: int = 2000,
                            progress: bool = False) -> pd.DataFrame:
    """Occlusion contribution of every channel.

    Parameters
    ----------
    decoder : TrialDecoder with ``decode_mel(neural_windows) -> mel_db (n, n_target, 80)``
    test : neurovox.evaluate.chance.TestSet
    channels : DataFrame
        The recording's channel table (name, bad, row, col, x, y, z, group), one row per neural channel.

    Returns
    -------
    DataFrame
        One row per channel: the channel table's columns and, for each metric m in METRICS, ``drop_m``
        (mean over trials of intact minus occluded), ``drop_m_ci_low`` and ``drop_m_ci_high``.
    """
    windows = np.ascontiguousarray(test.neural_windows, dtype=np.float32)
    n_channels = windows.shape[-1]
    if len(channels) != n_channels:
        raise DataError(f"The channel table has {len(channels)} rows but the decoder's input has {n_channels} channels.")
    rng = np.random.default_rng(seed)

    def scores(mel: np.ndarray) -> dict[str, np.ndarray]:
        out = {"pcc": M.pcc_per_trial(test.mel_db, mel, test.speech_mask)}
        if test.train_mel_mean_db is not None:
            out["pcc_tilt"] = M.pcc_tilt_removed(test.mel_db, mel, test.train_mel_mean_db, test.speech_mask)
        return out

    intact = scores(decoder.decode_mel(windows))
    rows = []
    channel_iter: Any = range(n_channels)
    if progress:
        from tqdm import tqdm

        channel_iter = tqdm(channel_iter, desc="occluding electrodes", unit="ch")
    for ch in channel_iter:
        occluded = windows.copy()
        occluded[:, :, ch] = 0.0
        after = scores(decoder.decode_mel(occluded))
        row: dict[str, Any] = {}
        for m, base in intact.items():
            drop = base - after[m]
            low, high = M.bootstrap_ci(drop, n_boot=n_boot, generator=rng)
            row |= {f"drop_{m}": float(np.nanmean(drop)), f"drop_{m}_ci_low": low, f"drop_{m}_ci_high": high}
        rows.append(row)
    keep = [c for c in ("name", "type", "bad", "row", "col", "x", "y", "z", "group") if c in channels.columns]
    return pd.concat([channels[keep].reset_index(drop=True), pd.DataFrame(rows)], axis=1)


def contribution_map(table: pd.DataFrame, metric: str = "pcc_tilt") -> np.ndarray | None:
    """Grid (n_rows, n_cols) of the mean drop, NaN where no contact sits; None without grid coordinates."""
    rows, cols = table["row"].to_numpy(int), table["col"].to_numpy(int)
    if (rows < 0).any() or (cols < 0).any():
        return None
    grid = np.full((rows.max() + 1, cols.max() + 1), np.nan)
    grid[rows, cols] = table[f"drop_{metric}"].to_numpy(float)
    return grid


def _figure(path: Path, table: pd.DataFrame, metric: str, title: str) -> Path:
    from neurovox.report.figures import pyplot

    plt = pyplot()
    grid = contribution_map(table, metric)
    values = table[f"drop_{metric}"].to_numpy(float)
    vmax = max(float(np.nanmax(np.abs(values))), 1e-6)
    if grid is not None:
        fig, ax = plt.subplots(figsize=(1.2 + 0.38 * grid.shape[1], 0.9 + 0.38 * grid.shape[0]))
        im = ax.imshow(grid, cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
        for _, r in table[table["bad"]].iterrows():  # bad contacts: crossed out
            ax.text(r["col"], r["row"], "x", ha="center", va="center", fontsize=8, color="#495057")
        ax.set_xlabel("grid column")
        ax.set_ylabel("grid row")
    elif {"x", "y"} <= set(table.columns) and np.isfinite(table[["x", "y"]].to_numpy(float)).all():
        fig, ax = plt.subplots(figsize=(4.5, 4.0))
        im = ax.scatter(table["x"] * 1e3, table["y"] * 1e3, c=values, cmap="RdBu_r", vmin=-vmax, vmax=vmax, s=40)
        ax.set_xlabel("x (mm)")
        ax.set_ylabel("y (mm)")
    else:  # neither grid nor positions: one bar per contact
        fig, ax = plt.subplots(figsize=(max(4.0, 0.12 * len(values)), 2.6))
        im = None
        ax.bar(np.arange(len(values)), values, color="#4263eb")
        ax.set_xlabel("channel")
        ax.set_ylabel(f"drop of {metric}")
    if im is not None:
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label=f"drop of {metric} when occluded")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def contribution_run(run_dir: str | Path, data_path: str | Path, out_dir: str | Path, *, seed: int = 0,
                     n_boot: int = 2000, cache_dir: str | Path | None = None, progress: bool = True) -> pd.DataFrame:
    """`neurovox contribution`: occlusion analysis of a finished decoder run on its test trials; writes
    OUT/contributions.csv, OUT/contribution.json (provenance and the strongest electrodes), OUT/figures/
    and OUT/report.html, all into a temporary folder renamed when complete."""
    from neurovox.decode import load_decoder
    from neurovox.evaluate.evaluate import build_test_set, check_data_hash
    from neurovox.io import read_recording
    from neurovox.report.html import html_page
    from neurovox.runs import open_run

    try:
        run = open_run(run_dir, expect_kind="decoder", require_done=True)
    except RunError as err:
        raise RunError(f"{err} Contribution analysis needs a finished decoder run (`neurovox train decoder`).") from err
    data_meta = check_data_hash(run.path, data_path)
    decoder = load_decoder(run.path)
    if not hasattr(decoder, "decode_mel"):
        raise RunError(f"Run {str(run.path)!r} cannot decode without vocoding; occlusion analysis supports decoder runs.")
    test = build_test_set(decoder, run.config, data_path, seed, Path(cache_dir) if cache_dir else None)
    channels = read_recording(data_path).channels
    layout_path = run.path / "layout.json"
    layout = json.loads(layout_path.read_text()) if layout_path.exists() else None
    if layout:  # the contacts the run masked (the file's bad channels and those found on its training frames)
        channels = channels.assign(bad=~np.asarray(layout["good"], bool))
    table = electrode_contributions(decoder, test, channels, seed=seed, n_boot=n_boot, progress=progress)
    out_dir = Path(out_dir)
    with atomic_path(out_dir) as tmp:
        (tmp / "figures").mkdir(parents=True)
        table.to_csv(tmp / "contributions.csv", index=False)
        top = table.sort_values("drop_pcc_tilt" if "drop_pcc_tilt" in table else "drop_pcc", ascending=False).head(10)
        meta = {"run": str(run.path.resolve()), "data": data_meta, "seed": seed, "n_trials": test.n_trials,
                "n_boot": n_boot, "method": "occlusion: each channel's normalised input set to 0 in every test window",
                "top_channels": top["name"].tolist()}
        (tmp / "contribution.json").write_text(json.dumps(meta, indent=1))
        figs = [_figure(tmp / "figures" / f"contribution_{m}.png", table, m,
                        f"{run.path.name}: drop of {m} per electrode") for m in METRICS if f"drop_{m}" in table]
        rows = "".join(f"<tr><td>{r['name']}</td><td class=\"v\">{r.get('drop_pcc_tilt', float('nan')):+.4f}</td>"
                       f"<td class=\"v\">[{r.get('drop_pcc_tilt_ci_low', float('nan')):+.4f}, "
                       f"{r.get('drop_pcc_tilt_ci_high', float('nan')):+.4f}]</td><td class=\"v\">{r['drop_pcc']:+.4f}</td>"
                       f"<td>{'bad (masked)' if r['bad'] else ''}</td></tr>" for _, r in top.iterrows())
        body = (f"<h1>Electrode contributions: {run.path.name}</h1><p class=\"sub\">{meta['method']}; drop of each "
                f"metric over {test.n_trials} test trials, 95% bootstrap CI over trials</p>"
                + "".join(f"<figure><img src=\"figures/{p.name}\" alt=\"{p.stem}\"></figure>" for p in figs)
                + "<h2>Strongest electrodes</h2><table class=\"metrics\"><thead><tr><th>channel</th><th>drop of "
                "tilt-removed PCC</th><th>95% CI</th><th>drop of PCC</th><th></th></tr></thead>"
                f"<tbody>{rows}</tbody></table><p class=\"note\">All channels: contributions.csv.</p>")
        (tmp / "report.html").write_text(html_page(f"neurovox contributions: {run.path.name}", body))
    return table
