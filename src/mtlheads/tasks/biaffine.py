"""Small layers shared by the biaffine decoders (NER, DEP, and later CON).

They follow the supar/HanLP (ELIT) implementations the reference builds on:
``SharedDropout`` draws one mask per sequence, ``MLP`` is Linear → LeakyReLU(0.1) → SharedDropout with
orthogonal weights, and ``Biaffine`` is a zero-initialised bilinear form with optional bias columns.
"""

from __future__ import annotations

import torch
from torch import nn


class SharedDropout(nn.Module):
    """Dropout whose mask is drawn once per sequence and reused at every position.

    Args:
        p: Drop probability.
    """

    def __init__(self, *, p: float = 0.5):
        super().__init__()
        self.p = p

    def extra_repr(self) -> str:
        return f"p={self.p}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the shared mask.

        Args:
            x: (B, N, D) batch-first sequence.

        Returns:
            (B, N, D), the same tensor in eval mode or when ``p == 0``.
        """
        if not self.training or self.p <= 0:
            return x
        keep = x.new_empty(x.shape[0], x.shape[-1]).bernoulli_(1 - self.p) / (1 - self.p)
        return x * keep.unsqueeze(1)


class MLP(nn.Module):
    """``Linear → LeakyReLU(0.1) → SharedDropout(p)`` with an orthogonal weight and a zero bias.

    Args:
        n_in: Input size.
        n_out: Output size.
        dropout: SharedDropout probability.
    """

    def __init__(self, *, n_in: int, n_out: int, dropout: float = 0.0):
        super().__init__()
        self.linear = nn.Linear(n_in, n_out)
        self.activation = nn.LeakyReLU(negative_slope=0.1)
        self.dropout = SharedDropout(p=dropout)
        nn.init.orthogonal_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args:
            x: (B, N, n_in).

        Returns:
            (B, N, n_out).
        """
        return self.dropout(self.activation(self.linear(x)))


class Biaffine(nn.Module):
    """Biaffine scorer ``s[b, o, i, j] = [x_i; 1]^T W_o [y_j; 1]`` (bias columns optional).

    Args:
        n_in: Size of ``x`` and ``y`` vectors.
        n_out: Number of output channels (labels); 1 for an unlabelled arc scorer.
        bias_x: Append a constant 1 to ``x``.
        bias_y: Append a constant 1 to ``y``.

    The weight, of shape ``(n_out, n_in + bias_x, n_in + bias_y)``, is initialised to zeros.
    """

    def __init__(self, *, n_in: int, n_out: int = 1, bias_x: bool = True, bias_y: bool = True):
        super().__init__()
        self.n_in, self.n_out, self.bias_x, self.bias_y = n_in, n_out, bias_x, bias_y
        self.weight = nn.Parameter(torch.zeros(n_out, n_in + int(bias_x), n_in + int(bias_y)))

    def extra_repr(self) -> str:
        return f"n_in={self.n_in}, n_out={self.n_out}, bias_x={self.bias_x}, bias_y={self.bias_y}"

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Score every (i, j) pair.

        Args:
            x: (B, N, n_in), the left ("dependent"/"start") side.
            y: (B, M, n_in), the right ("head"/"end") side.

        Returns:
            (B, n_out, N, M) scores.
        """
        if self.bias_x:
            x = torch.cat((x, torch.ones_like(x[..., :1])), -1)
        if self.bias_y:
            y = torch.cat((y, torch.ones_like(y[..., :1])), -1)
        return torch.einsum("bxi,oij,byj->boxy", x, self.weight, y)
