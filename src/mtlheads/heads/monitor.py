"""Watching a learnable gate (``heads=hard_concrete``) in training: after every dev evaluation, the L x H
eval-gate matrix is saved (``gates/<step>.pt``), logged as an image (W&B, TensorBoard) and the open-head
count as a scalar.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
from torch import Tensor

from mtlheads.heads.gate import HeadGate
from mtlheads.utils.io import atomic_save


def gate_image(gates: Tensor) -> np.ndarray:
    """(L, H) gates in [0, 1] -> an RGB uint8 heatmap (H', W', 3): 0 white, 1 black, rows = layers 1..L."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers, heads = gates.shape
    fig, ax = plt.subplots(figsize=(0.4 * heads + 1.5, 0.4 * layers + 0.8))
    im = ax.imshow(gates.detach().cpu().numpy(), cmap="binary", vmin=0, vmax=1)
    ax.set_xticks(range(heads), [str(h + 1) for h in range(heads)])
    ax.set_yticks(range(layers), [str(i + 1) for i in range(layers)])
    ax.set_xlabel("heads")
    ax.set_ylabel("layers")
    fig.colorbar(im, ax=ax)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    rgb = plt.imread(io.BytesIO(buf.getvalue()), format="png")[..., :3]  # floats in [0, 1]
    return (rgb * 255).astype(np.uint8)


class GateMonitor(pl.Callback):
    """Saves and logs the eval gates after each dev evaluation of training (rank 0 only)."""

    def __init__(self, gate: HeadGate, folder: str | os.PathLike):
        self.gate, self.folder = gate, Path(folder)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        gates = self.gate.eval_values().cpu()
        summary = self.gate.summary()
        pl_module.log("gate/open_heads", float(summary["open_heads"]))
        if "expected_open" in summary:
            pl_module.log("gate/expected_open", summary["expected_open"])
        if not trainer.is_global_zero:
            return
        step = trainer.global_step
        atomic_save(gates, self.folder / f"{step}.pt")
        for logger in trainer.loggers:
            if isinstance(logger, pl.loggers.WandbLogger):
                logger.log_image(key="gates", images=[gate_image(gates)], step=step)
            elif isinstance(logger, pl.loggers.TensorBoardLogger):
                logger.experiment.add_image("gates", gate_image(gates), step, dataformats="HWC")
