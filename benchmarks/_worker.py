"""Measurements that need a fresh process: time and peak resident memory of one case.

Run by `bench_decoders` and `bench_scale` through `run_case(case)`, which starts
`python benchmarks/_worker.py '<json case>'` and reads back one JSON line. A fresh process per case
keeps the memory figures clean: torch's CPU allocator has no peak counter and tracemalloc does not
see it, so memory is the process's resident set from /proc/self/status. The high-water mark (VmHWM)
is reset (`/proc/self/clear_refs` = 5) before each measured phase, so an import-time peak cannot
hide the phase's; where the reset is refused the figure falls back to `resource.getrusage` max RSS
("hwm_reset": false). Growth = peak RSS of the phase minus the RSS just before it. Times are wall
clock and, alongside, CPU time of the process (`time.process_time`, all its threads): on a shared
machine the CPU time is the steadier figure, and the scale ratios use it.

Case kinds:
Common key: threads (torch intra-op threads; default torch's own).
- "step": one decoder's optimisation step at a window size. Keys: model ("resnet" | "swin" | "lstm" |
  "gru"), causal, n_channels, grid (rows, cols), batch, repeats (timed steps after one warm-up),
  repeats_decoder_only (for the decoder-only phase and inference; default repeats), synth (also time the step through
  the synthesizer + spectral loss), n_inference (windows for the inference timing, 0 = none),
  n_lead, n_target, model_kwargs (optional). Phases in this order: decoder only (forward +
  mean-square loss + backward + AdamW; the reference phase of the training curriculum costs about
  the same, it adds only a per-frame loss), then with the frozen synthesizer and spectral loss.
- "length": a simulated raw recording of n_trials words (8x8 grid, 1024 Hz): `prepare` (high gamma +
  speech features + trial frames, no cache), high-gamma extraction alone, then one training epoch
  of the decoder alone over the 5-fold split's training windows (data loading included). Keys:
  n_trials, batch, model, model_kwargs (optional), praat.
"""

from __future__ import annotations

import gc
import json
import resource
import statistics
import sys
import time


def _status_kib(key: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _rss_mib() -> float:
    kib = _status_kib("VmRSS")
    return (kib if kib is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024.0


class PeakRSS:
    """Context manager: `.seconds`, `.peak_mib` (resident high-water mark) and `.growth_mib` of a block."""

    def __enter__(self) -> "PeakRSS":
        gc.collect()
        self.reset_ok = _reset_peak()
        self.base_mib = _rss_mib()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.t0
        hwm = _status_kib("VmHWM") if self.reset_ok else None
        kib = hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self.peak_mib = kib / 1024.0
        self.growth_mib = self.peak_mib - self.base_mib


def _model_kwargs(case: dict) -> dict:
    """JSON lists -> tuples (the decoders take tuples of widths/depths)."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in case.get("model_kwargs", {}).items()}


def measure_step(case: dict) -> dict:
    import torch

    from neurovox.decoders import build_decoder, rectangular_layout
    from neurovox.decoders.losses import spectral_loss
    from neurovox.synth import N_RAW, FormantSynth

    n_lead, n_target = case.get("n_lead", 16), case.get("n_target", 128)
    batch, repeats = case["batch"], case["repeats"]
    repeats_fast = case.get("repeats_decoder_only", repeats)  # decoder-only steps are cheap: more of them
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    layout = rectangular_layout(*case["grid"])
    model = build_decoder(case["model"], n_channels=case["n_channels"], n_out=N_RAW, causal=case["causal"],
                          layout=layout, **_model_kwargs(case)).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(batch, n_lead + n_target, case["n_channels"], generator=gen)
    audio = 0.01 * torch.randn(batch, n_target * 128, generator=gen)
    synth = None
    if case.get("synth"):
        synth = FormantSynth()
        for p in synth.parameters():
            p.requires_grad_(False)

    def step(with_synth: bool) -> None:
        raw = model(x, n_target)
        loss = spectral_loss(synth(raw).wave, audio, (512,))["spec_lin"] if with_synth else raw.square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    def phase(with_synth: bool) -> tuple[float, float, PeakRSS]:
        """Median wall and CPU seconds per step (after one warm-up step), and the phase's memory."""
        wall, cpu = [], []
        with PeakRSS() as mem:
            for i in range((repeats if with_synth else repeats_fast) + 1):
                t0, c0 = time.perf_counter(), time.process_time()
                step(with_synth)
                if i:  # the first step warms up (allocator, kernels)
                    wall.append(time.perf_counter() - t0)
                    cpu.append(time.process_time() - c0)
        return statistics.median(wall), statistics.median(cpu), mem

    out = {"n_params": int(model.n_params), "threads": torch.get_num_threads()}
    step_s, cpu_s, mem = phase(False)
    out.update(hwm_reset=mem.reset_ok, rss_before_steps_mib=mem.base_mib, decoder_only_step_s=step_s,
               decoder_only_cpu_s=cpu_s, decoder_only_peak_rss_mib=mem.peak_mib,
               decoder_only_growth_mib=mem.growth_mib)
    if synth is not None:
        step_s, cpu_s, mem2 = phase(True)
        # growth over the RSS before any step: memory the first phase freed but kept is reused here
        out.update(synth_step_s=step_s, synth_cpu_s=cpu_s, synth_peak_rss_mib=mem2.peak_mib,
                   synth_growth_mib=mem2.peak_mib - mem.base_mib)
    n_inf = case.get("n_inference", 0)
    if n_inf:
        model.eval()
        xi = torch.randn(n_inf, n_lead + n_target, case["n_channels"], generator=gen)
        times = []
        with torch.no_grad():
            for i in range(repeats_fast + 1):
                t0 = time.perf_counter()
                model(xi, n_target)
                if i:
                    times.append(time.perf_counter() - t0)
        out["inference_ms_per_window"] = 1e3 * statistics.median(times) / n_inf
    return out


def measure_length(case: dict) -> dict:
    import torch

    from neurovox.decoders import build_decoder, layout_from_channels
    from neurovox.preprocess import Normalizer, PrepareConfig, WindowDataset, extract_high_gamma, make_split, prepare
    from neurovox.simulate import SimulateConfig, simulate_participant
    from neurovox.synth import N_RAW

    t0 = time.perf_counter()
    rec, _ = simulate_participant(SimulateConfig(n_trials=case["n_trials"], layout="grid8x8"), 0, kind="raw")
    out = {"simulate_s": time.perf_counter() - t0, "duration_s": rec.duration_s,
           "n_samples": int(rec.neural.shape[0]), "n_channels": int(rec.neural.shape[1]),
           "input_mib": rec.neural.nbytes / 2**20}
    cfg = PrepareConfig(praat=case.get("praat", True))
    c0 = time.process_time()
    with PeakRSS() as mem:
        prep = prepare(rec, cfg, use_cache=False)
    out.update(prepare_s=mem.seconds, prepare_cpu_s=time.process_time() - c0, prepare_growth_mib=mem.growth_mib,
               prepare_peak_rss_mib=mem.peak_mib, hwm_reset=mem.reset_ok)
    with PeakRSS() as mem:
        extract_high_gamma(rec, cfg.high_gamma_config())
    out.update(high_gamma_s=mem.seconds, high_gamma_growth_mib=mem.growth_mib)
    del rec

    split = make_split(prep, "kfold", fold=0, n_folds=5)
    norm = Normalizer().fit(prep.neural, split.train_frame_mask)
    ds = WindowDataset(prep, split, norm, "train", generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = build_decoder(case["model"], n_channels=prep.neural.shape[1], n_out=N_RAW, causal=False,
                          layout=layout_from_channels(prep.channels), **_model_kwargs(case)).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    loader = torch.utils.data.DataLoader(ds, batch_size=case["batch"], shuffle=True,
                                         generator=torch.Generator().manual_seed(0))

    def epoch() -> int:
        n = 0
        for batch in loader:
            raw = model(batch["neural"], batch["mel_db"].shape[1])
            loss = raw.square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            n += 1
        return n

    c0 = time.process_time()
    with PeakRSS() as mem:
        n_steps = epoch()
    out.update(n_train_windows=len(ds), n_steps=n_steps, epoch_s=mem.seconds, epoch_cpu_s=time.process_time() - c0,
               epoch_growth_mib=mem.growth_mib)
    return out


def run_case(case: dict, timeout_s: float = 1800.0) -> dict:
    """Run `case` in a fresh interpreter (this file) and return its result dict."""
    import subprocess

    proc = subprocess.run([sys.executable, __file__, json.dumps(case)], capture_output=True, text=True,
                          timeout=timeout_s)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark worker failed for {case}: {proc.stderr.strip()[-800:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    case = json.loads(sys.argv[1])
    if case.get("threads"):
        import torch

        torch.set_num_threads(int(case["threads"]))
    result = {"step": measure_step, "length": measure_length}[case.get("kind", "step")](case)
    print(json.dumps(result))
