"""Overfitting a task decoder on a few sentences: the loss, targets and decoding of a task agree."""

from __future__ import annotations

import torch
from torch import nn


def overfit(
    task, decoder: nn.Module, hidden: torch.Tensor, mask: torch.Tensor, batch, *, lr: float, steps: int
):
    """Trains ``decoder`` alone on fixed ``hidden`` states with Adam; returns (first loss, last loss)."""
    targets = task.targets(batch)
    optimizer = torch.optim.Adam(decoder.parameters(), lr=lr)
    decoder.train()
    first = task.loss(decoder(hidden, mask), targets, mask).item()
    for _ in range(steps):
        optimizer.zero_grad()
        loss = task.loss(decoder(hidden, mask), targets, mask)
        loss.backward()
        optimizer.step()
    decoder.eval()
    return first, loss.item()
