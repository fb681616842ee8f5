"""The Lightning module of deep decoder training (`DecoderModule`) and its helpers: the loss terms of a
batch (spectral through the frozen synthesizer, reference parameters, optional STOI), the two-phase
curriculum, the weight EMA, the learning-rate schedule and the early stopping that waits for the
spectral phase."""

from __future__ import annotations

import copy
from typing import Any

import torch

from neurovox.decoders.base import NeuralDecoder
from neurovox.decoders.config import DecoderTrainConfig
from neurovox.decoders.losses import reference_loss, spectral_loss
from neurovox.decoders.speech import FrozenSpeech
from neurovox.decoders.stoi_loss import stoi_loss
from neurovox.utils.resume import mix_seed
from neurovox.utils.training import ema_update, lr_factor


def _lightning():
    import lightning.pytorch as pl
    return pl


class DecoderModule(_lightning().LightningModule):
    """Thin Lightning wrapper: decoder (+ EMA copy) -> frozen synth; losses; AdamW with cosine decay."""

    def __init__(self, decoder: NeuralDecoder, speech: FrozenSpeech | None, cfg: DecoderTrainConfig, seed: int = 0,
                 mel_stats: tuple[torch.Tensor, torch.Tensor] | None = None):
        super().__init__()
        if (cfg.target == "mel") != (mel_stats is not None):
            raise ValueError("target 'mel' needs mel_stats (training mean and SD of each mel bin), 'formant' none")
        # target "mel": the decoder outputs each mel bin standardised with the training frames' mean and SD
        # (buffers, so they travel with the module): an output of 0 is the training mean spectrum.
        if mel_stats is not None:
            self.register_buffer("mel_mean_db", mel_stats[0].float())
            self.register_buffer("mel_sd_db", mel_stats[1].float())
        self.decoder = decoder
        self.ema = copy.deepcopy(decoder).eval() if cfg.ema_decay > 0 else None
        if self.ema is not None:
            for p in self.ema.parameters():
                p.requires_grad_(False)
        self.speech = speech
        self.cfg = cfg
        self.seed = seed
        self._stoi = stoi_loss if cfg.w_stoi > 0 else None
        # Per-frame reference controls of the whole recording (`reference_frames`), sliced per window by
        # start frame; a plain attribute (not a buffer) so checkpoints stay small. None: encoder per batch.
        self.ref_frames: dict[str, torch.Tensor] | None = None

    def reference(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
        """Reference controls of the batch's target frames (precomputed slice, else the encoder on the fly)."""
        if self.cfg.w_ref <= 0:
            return None
        if self.ref_frames is None:
            return self.speech.reference_controls(batch["spec_power"])
        n_target = batch["mel_db"].shape[1]
        idx = batch["start_frame"].long()[:, None] + torch.arange(n_target, device=batch["start_frame"].device)
        return {k: v.to(batch["mel_db"].device)[idx] for k, v in self.ref_frames.items()}

    def in_ref_phase(self) -> bool:
        """First phase of the curriculum: reference loss alone while global_step < ref_only_steps."""
        if self.cfg.target == "mel":
            return False
        has_ref = self.cfg.w_ref > 0 and (self.ref_frames is not None or self.speech.encoder is not None)
        return has_ref and self.global_step < self.cfg.ref_only_steps

    def losses(self, model: NeuralDecoder, batch: dict[str, torch.Tensor], synth: bool = True) -> dict[str, torch.Tensor]:
        """Loss terms of a batch; synth=False (reference phase) skips the synthesizer and the spectral terms."""
        cfg = self.cfg
        n_target = batch["mel_db"].shape[1]
        raw = model(batch["neural"], n_target)
        mask = batch["speech_mask"].float()
        fw = cfg.silence_weight + (1 - cfg.silence_weight) * mask
        if cfg.target == "mel":  # standardised mel dB: mean squared error, speech frames weighted up
            target = (batch["mel_db"] - self.mel_mean_db) / self.mel_sd_db
            loss = (((raw - target) ** 2).mean(-1) * fw).sum() / fw.sum()
            return {"loss": loss, "mel": loss, "_mel_db": raw * self.mel_sd_db + self.mel_mean_db}
        ref = self.reference(batch)
        terms: dict[str, torch.Tensor] = {}
        total = raw.new_zeros(())
        if synth or ref is None:
            # Fresh synthesizer noise at every training step (a function of seed and step, so a resumed run
            # draws what an uninterrupted one would); one fixed draw for validation, comparable across epochs.
            seed = mix_seed(self.seed, self.global_step, 1) if self.training else self.seed
            out = self.speech.synth(raw, generator=torch.Generator(device=raw.device).manual_seed(seed))
            controls = out.controls
            terms.update(spectral_loss(out.wave, batch["audio"], tuple(cfg.spec_ffts), mel_weight=1.0,
                                       frame_weight=fw))
            total = total + (cfg.w_spec * terms["spec_lin"] + cfg.w_mel * terms["spec_mel"]
                             + cfg.w_coarse * terms["spec_coarse"])
            if self._stoi is not None:
                terms["stoi"] = self._stoi(batch["audio"], out.wave)
                total = total + cfg.w_stoi * terms["stoi"]
            terms["_mel_db"] = 10.0 * torch.log10(out.spec_power @ _mel_t(out.spec_power) + 1e-10)
        else:
            controls = self.speech.synth.get_controls(raw)
        if ref is not None:
            terms["ref"] = reference_loss(controls, ref, fw)
            total = total + cfg.w_ref * terms["ref"]
        terms["loss"] = total
        return terms

    def crop(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Random target crop of a training batch (cheaper synthesis); the neural lead moves with it. The
        offset is a function of (seed, global step), so a resumed run crops as an uninterrupted one."""
        n_target = batch["mel_db"].shape[1]
        n = self.cfg.train_crop_frames
        if n <= 0 or n >= n_target:
            return batch
        gen = torch.Generator().manual_seed(mix_seed(self.seed, self.global_step))
        o = int(torch.randint(n_target - n + 1, (1,), generator=gen))
        n_lead = batch["neural"].shape[1] - n_target
        out = dict(batch)
        out["start_frame"] = batch["start_frame"] + o
        out["neural"] = batch["neural"][:, o: o + n_lead + n]
        out["audio"] = batch["audio"][:, o * 128: (o + n) * 128]
        for k in ("spec_power", "mel_db", "speech_mask"):
            out[k] = batch[k][:, o: o + n]
        return out

    def augment(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Random per-window, per-channel gain and channel dropout of the neural input (constant over each
        window, so a causal model stays causal); drawn from (seed, global step) like the crops."""
        cfg = self.cfg
        if cfg.aug_gain_sd <= 0 and cfg.aug_channel_dropout <= 0:
            return batch
        x = batch["neural"]
        gen = torch.Generator().manual_seed(mix_seed(self.seed, self.global_step, 2))
        shape = (x.shape[0], 1, x.shape[2])
        gain = 1.0 + cfg.aug_gain_sd * torch.randn(shape, generator=gen)
        keep = (torch.rand(shape, generator=gen) >= cfg.aug_channel_dropout).float()
        return {**batch, "neural": x * (gain * keep).to(x)}

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        batch = self.augment(batch)
        if self.in_ref_phase():  # whole windows, no synthesis
            terms = self.losses(self.decoder, batch, synth=False)
        else:
            batch = self.crop(batch)
            terms = self.losses(self.decoder, batch)
        bs = batch["neural"].shape[0]
        for k, v in terms.items():
            if not k.startswith("_"):
                self.log(f"train/{k}", v.detach(), prog_bar=(k == "loss"), batch_size=bs)
        return terms["loss"]

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.ema is None:
            return
        ema_update(self.ema, self.decoder, self.global_step, self.cfg.ema_decay)

    def eval_model(self) -> NeuralDecoder:
        return self.ema if self.ema is not None else self.decoder

    def ref_only_run(self) -> bool:
        """The whole run is the reference phase (ref_only_steps >= every step the run can take)."""
        if self.cfg.target == "mel":
            return False
        if self.cfg.w_ref <= 0 or (self.ref_frames is None and self.speech.encoder is None):
            return False
        total = self.trainer.estimated_stepping_batches if self._trainer is not None else float("inf")
        return self.cfg.ref_only_steps >= total

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        # A reference-only run validates (and early-stops) on the reference loss alone, without synthesis;
        # a run with a spectral phase validates on the full loss throughout (one definition per run).
        synth = not self.ref_only_run()
        terms = self.losses(self.eval_model(), batch, synth=synth)
        bs = batch["neural"].shape[0]
        self.log("val_loss", terms["loss"], prog_bar=True, batch_size=bs)
        if synth:
            pcc = batch_pcc(terms["_mel_db"], batch["mel_db"], batch["speech_mask"])
            self.log("val_pcc", pcc, prog_bar=True, batch_size=bs)

    @torch.no_grad()
    def mel_pcc(self, loader: Any) -> float:
        """Mean over windows of the mel-dB PCC (`batch_pcc`) of the eval model's synthesized speech: the
        run summary's val_pcc, recomputed from the final weights (a run resumed after its last epoch has
        no logged metrics)."""
        model = self.eval_model().eval()
        dec, ref, mask = [], [], []
        for batch in loader:
            dec.append(self.losses(model, batch, synth=True)["_mel_db"])
            ref.append(batch["mel_db"])
            mask.append(batch["speech_mask"])
        return float(batch_pcc(torch.cat(dec), torch.cat(ref), torch.cat(mask)))

    def configure_optimizers(self) -> Any:
        opt = torch.optim.AdamW(self.decoder.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total, self.cfg.warmup_steps))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def _mel_t(x: torch.Tensor) -> torch.Tensor:
    from neurovox import dsp
    return torch.from_numpy(dsp.mel_filterbank()).to(x).T


def batch_pcc(dec_mel: torch.Tensor, ref_mel: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over windows of the Pearson r of mel dB over speech frames (flattened time x bins)."""
    rs = []
    for d, r, m in zip(dec_mel, ref_mel, mask.bool()):
        if m.sum() < 2:
            continue
        a, b = d[m].flatten(), r[m].flatten()
        a, b = a - a.mean(), b - b.mean()
        rs.append((a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-8))
    return torch.stack(rs).mean() if rs else dec_mel.new_zeros(())


def phase_early_stopping(base: type) -> type:
    """EarlyStopping that waits through the reference phase of the curriculum (a plateau of the reference
    loss must not end the run before the spectral loss has had its say)."""

    class PhaseEarlyStopping(base):
        def _run_early_stopping_check(self, trainer: Any) -> None:
            if trainer.lightning_module.in_ref_phase():
                return
            super()._run_early_stopping_check(trainer)

    return PhaseEarlyStopping
