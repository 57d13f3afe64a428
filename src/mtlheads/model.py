"""The LightningModule: one shared word encoder with one head-gate slot, one decoder per task.

Training steps see single-task mini-batches (see ``training/data.py``); evaluation runs one
dataloader per task and reports each task's metrics plus their unweighted mean, ``score``,
which selects the best checkpoint (He & Choi 2021, §4.1). The gate slot (``heads``) holds at most one
:class:`~mtlheads.heads.gate.HeadGate`, hooked into the encoder: a fixed mask, hard-concrete L0 gates,
an importance gate, per-task masks. The slot asks the gate for its loss term and optimizer groups, so
the model knows no gate kind by name.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from mtlheads.encoder.word_encoder import WordEncoder
from mtlheads.heads.gate import GateHandle, HeadGate, install_head_gate
from mtlheads.heads.prune import fold_mask
from mtlheads.tasks.base import Metric, Task
from mtlheads.training.balancer import MovingAverageBalancer

BALANCER_KEY = "mtlheads_balancer"  # the loss balancer's running state, saved and restored by the model


@dataclass
class OptimConfig:
    """AdamW with separate learning rates; linear warmup over ``warmup`` of the steps, then decay to 0."""

    encoder_lr: float = 5e-5
    decoder_lr: float = 1e-3
    weight_decay: float = 0.0
    eps: float = 1e-8
    warmup: float = 0.1
    gate_lr: float = 1e-3  # hard-concrete gates (heads=hard_concrete): own group, no decay, constant lr
    multiplier_lr: float = 1e-2  # Lagrange multipliers of heads.target_heads


class MultiTaskModel(pl.LightningModule):
    """Shared encoder + ``nn.ModuleDict`` of task decoders.

    Args:
        encoder: word-level encoder (subword pooling, word dropout, sliding window, head gate).
        tasks: task objects with their vocabularies already fitted.
        optim: optimizer settings.
        balancer: optional loss balancer called as ``balancer(task, loss)``.
        heads: the gate for the slot (None: no gate). Its ``regularizer()`` is added to every mini-batch's
            task loss, before the balancer (as in He & Choi's code).
    """

    def __init__(
        self,
        *,
        encoder: WordEncoder,
        tasks: Mapping[str, Task],
        optim: OptimConfig,
        balancer: MovingAverageBalancer | None = None,
        heads: HeadGate | None = None,
    ):
        super().__init__()
        self.encoder = encoder
        self.heads: HeadGate | None = None
        self._gate_handle: GateHandle | None = None
        self._folded = False
        self.set_heads(heads)
        self.tasks = dict(tasks)
        self.decoders = nn.ModuleDict({n: t.build_decoder(encoder.hidden_size) for n, t in tasks.items()})
        self.optim, self.balancer = optim, balancer
        self.final_decode = False  # True: test-time decoding (e.g. Eisner for DEP)
        self.eval_names: list[str] = []  # task of each eval dataloader, in order
        self.results: dict[str, dict[str, float]] = {}
        self.history: list[dict] = []  # dev results of every training epoch
        # What every checkpoint carries besides the weights (run config, vocabularies): mtlheads.checkpoint
        # fills it and reads it back; the model only passes it through.
        self.checkpoint_extras: dict[str, Any] = {}
        self._metrics: dict[str, Metric] = {}
        self._epoch_started = time.perf_counter()

    def set_heads(self, gate: HeadGate | None) -> None:
        """Puts ``gate`` in the gate slot, replacing what was there (None: empty).

        The gate is hooked into the encoder, except a fixed mask with ``fold`` set, which removes the
        masked heads and FFNs from the weights (cheaper to train) where the encoder family allows it.
        """
        if self._folded:
            raise ValueError("this model's masked heads were removed from its weights: build a new model")
        if self._gate_handle is not None:
            self._gate_handle.remove()
        self.heads, self._gate_handle = gate, None
        if gate is None:
            return
        if getattr(gate, "fold", False) and fold_mask(self.encoder.model, gate.mask, gate.ffn()):
            self._folded = True  # the gate stays in the slot: checkpoints keep the mask to rebuild the model
        else:
            self._gate_handle = install_head_gate(self.encoder.model, gate)

    def forward(self, task: str, inputs: dict[str, torch.Tensor]):
        """Runs the encoder and ``task``'s decoder; returns (decoder output, word mask (B, N))."""
        if self.heads is not None:
            self.heads.select_task(task)
        t = self.tasks[task]
        hidden, mask = self.encoder(
            inputs, cls_is_root=t.cls_is_root, sep_is_eos=getattr(t, "sep_is_eos", False)
        )
        return self.decoders[task](hidden, mask), mask

    # ---- training -------------------------------------------------------------------------------
    def task_loss(self, batch: dict) -> torch.Tensor:
        """The task loss of one single-task batch (no gate term, no balancer)."""
        out, mask = self(batch["task"], batch["inputs"])
        return self.tasks[batch["task"]].loss(out, batch["targets"], mask)

    def example_losses(self, batch: dict) -> torch.Tensor:
        """(B,) each sentence's own task loss, from one batched encoder pass: every decoder is run on one
        sentence at a time, so a sentence's loss (and its gradient) is what a batch of one would give."""
        task = self.tasks[batch["task"]]
        if self.heads is not None:
            self.heads.select_task(batch["task"])
        sep_is_eos = getattr(task, "sep_is_eos", False)
        hidden, mask = self.encoder(batch["inputs"], cls_is_root=task.cls_is_root, sep_is_eos=sep_is_eos)
        decoder = self.decoders[batch["task"]]
        losses = []
        for b, sentence in enumerate(batch["sentences"]):
            width = int(mask[b].sum())  # a sentence's positions are a prefix: cut the batch's padding off
            m, h = mask[b : b + 1, :width], hidden[b : b + 1, :width]
            losses.append(task.loss(decoder(h, m), task.targets([sentence]), m))
        return torch.stack(losses)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        name = batch["task"]
        loss = self.task_loss(batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"non-finite loss {loss.item()} for task '{name}' "
                f"at step {self.global_step}, batch {batch_idx}"
            )
        self.log(f"train/loss_{name}", loss.detach(), batch_size=len(batch["sentences"]))
        reg = self.heads.regularizer() if self.heads is not None else None
        if reg is not None:
            self.log("train/loss_reg", reg.detach(), batch_size=len(batch["sentences"]))
            loss = loss + reg
        return self.balancer(name, loss) if self.balancer is not None else loss

    # ---- evaluation (dev and test share the code; the prefix is the split) ---------------------
    def _eval_start(self) -> None:
        self._metrics = {n: self.tasks[n].new_metric() for n in self.eval_names}

    def _eval_step(self, batch: dict) -> None:
        name = batch["task"]
        out, mask = self(name, batch["inputs"])
        preds = self.tasks[name].decode(out, mask, final=self.final_decode)
        self._metrics[name].update(preds, batch["sentences"])

    def _eval_end(self, split: str) -> None:
        self.results = {n: m.compute() for n, m in self._metrics.items()}
        for n, scores in self.results.items():
            for k, v in scores.items():
                self.log(f"{split}/{n}/{k}", float(v))
        score = self.score(self.results)
        self.log(f"{split}/score", score)
        if split == "dev" and self.trainer.state.fn == "fit" and not self.trainer.sanity_checking:
            seconds = round(time.perf_counter() - self._epoch_started, 1)  # training + dev evaluation
            self.history.append(
                {"epoch": self.current_epoch, "seconds": seconds, "score": score, **self.results}
            )

    def score(self, results: Mapping[str, Mapping[str, float]]) -> float:
        """Unweighted mean of each task's main metric."""
        return sum(float(results[n][self.tasks[n].main_metric]) for n in results) / max(len(results), 1)

    def on_train_epoch_start(self) -> None:
        self._epoch_started = time.perf_counter()

    def on_validation_epoch_start(self) -> None:
        self._eval_start()

    def validation_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._eval_step(batch)

    def on_validation_epoch_end(self) -> None:
        self._eval_end("dev")

    def on_test_epoch_start(self) -> None:
        self._eval_start()

    def test_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._eval_step(batch)

    def on_test_epoch_end(self) -> None:
        self._eval_end("test")

    # ---- optimisation ---------------------------------------------------------------------------
    def configure_optimizers(self):
        groups = _param_groups(self.encoder, self.optim.encoder_lr, self.optim.weight_decay)
        groups += _param_groups(self.decoders, self.optim.decoder_lr, self.optim.weight_decay)
        if self.heads is not None:
            groups += self.heads.param_groups(self.optim)
        groups = [g for g in groups if g["params"]]
        optimizer = torch.optim.AdamW(groups, eps=self.optim.eps)
        total = int(self.trainer.estimated_stepping_batches)
        warmup = int(self.optim.warmup * total)

        def warmup_then_decay(step: int) -> float:  # linear warmup, then linear decay to 0
            if step < warmup:
                return step / max(1, warmup)
            return max(0.0, (total - step) / max(1, total - warmup))

        schedules = [(lambda _: 1.0) if g.get("constant_lr") else warmup_then_decay for g in groups]
        scheduler = LambdaLR(optimizer, schedules)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ---- checkpoints carry what is needed to rebuild the tasks ---------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint.update(self.checkpoint_extras)
        if self.balancer is not None:
            checkpoint[BALANCER_KEY] = self.balancer.state_dict()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if self.balancer is not None and BALANCER_KEY in checkpoint:
            self.balancer.load_state_dict(checkpoint[BALANCER_KEY])


def _param_groups(module: nn.Module, lr: float, weight_decay: float) -> list[dict]:
    """Two AdamW groups for ``module``: biases and norm weights get no weight decay."""
    decay, no_decay = [], []
    for name, p in module.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 or "norm" in name.lower() else decay).append(p)
    return [
        {"params": decay, "lr": lr, "weight_decay": weight_decay},
        {"params": no_decay, "lr": lr, "weight_decay": 0.0},
    ]
