"""Streaming statistics of the head probes: per (layer, head) and per label, how many units are correct.

Everything is vectorised over units and heads; heads are flattened to ``K = L·H`` columns. Word positions
follow :mod:`mtlheads.heads.probe_units`: attention maps are over ROOT-prefixed words (0 = [CLS] = ROOT,
word k at k + 1).

* :class:`CentroidStats` (POS, NER, CON): cosine nearest centroid, the centroids being the per-label mean
  unit vectors of the probed set itself. Pass 1 (:meth:`CentroidStats.add`, once per batch) adds each unit
  vector to its label's running sum and spills the vectors (float32) to a temporary file; pass 2
  (:meth:`CentroidStats.finish`) reads the spill back ``chunk_units`` at a time and classifies. Memory is
  the sums (C·K·d_h) plus one chunk, whatever the data size.
* :func:`dep_correct`, :func:`srl_correct` (DEP, SRL): a unit is correct for a head when the head's
  attention argmax links its words (either direction), see each function.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
import torch
from torch import Tensor


def span_means(words: Tensor, units: Tensor) -> Tensor:
    """Mean word vector of each unit's span.

    Args:
        words: (B, N, F) word vectors.
        units: (U, >=3) long rows ``(b, start, end, ...)``, inclusive 0-based word spans.

    Returns:
        (U, F) float32.
    """
    B, N, F = words.shape
    b, start, end = units[:, 0], units[:, 1], units[:, 2]
    length = end - start + 1  # (U,)
    unit_of_pair = torch.repeat_interleave(torch.arange(len(units)), length)  # (P,)
    first_pair = torch.cumsum(length, 0) - length  # (U,) index of each unit's first pair
    word = start[unit_of_pair] + torch.arange(len(unit_of_pair)) - first_pair[unit_of_pair]  # (P,)
    flat = words.reshape(B * N, F)[b[unit_of_pair] * N + word].float()  # (P, F)
    sums = torch.zeros(len(units), F).index_add_(0, unit_of_pair, flat)
    return sums / length.unsqueeze(1).float()


def word_attention(probs: Tensor, src: Tensor, slot_word: Tensor, query_word: Tensor, n_words: int) -> Tensor:
    """Subword attention → word attention: query rows averaged, key columns summed over each word's subwords.

    The subword rows may come from several windows of a long sentence: row ``t`` of sentence ``b`` is row
    ``src[b, t] % S`` of window ``src[b, t] // S``, and that window's key slots are words ``slot_word``.

    Args:
        probs: (W, K, S, S) attention probabilities of W windows (K heads, S slots).
        src: (B, T) long, flat window slot (``w·S + s``) of every subword position (any value where
            ``query_word`` is -1).
        slot_word: (W, S) long, ROOT-prefixed word of each window slot, -1 for [SEP]/padding.
        query_word: (B, T) long, ROOT-prefixed word of each subword, -1 for [SEP]/padding.
        n_words: N + 1, the number of ROOT-prefixed word positions in the batch.

    Returns:
        (B, K, N + 1, N + 1) float32; rows/columns of absent words are 0.
    """
    W, K, S, _ = probs.shape
    B, T = src.shape
    valid = (query_word >= 0).view(-1)  # (B·T,)
    where = src.view(-1)[valid]  # (R,) flat window slots of the real query subwords
    rows = probs.permute(0, 2, 1, 3).reshape(W * S, K, S)[where].float()  # (R, K, S)
    keys = slot_word[where // S]  # (R, S)
    keys = torch.where(keys >= 0, keys, n_words).unsqueeze(1).expand(-1, K, -1)  # dump column n_words
    pooled = rows.new_zeros(len(where), K, n_words + 1).scatter_add_(2, keys, rows)[..., :n_words]
    qrow = (torch.arange(B, device=src.device).unsqueeze(1) * n_words + query_word).view(-1)[valid]  # (R,)
    out = pooled.new_zeros(B * n_words, K, n_words).index_add_(0, qrow, pooled)
    count = pooled.new_zeros(B * n_words).index_add_(0, qrow, pooled.new_ones(len(qrow)))
    out = out / count.clamp(min=1).view(-1, 1, 1)
    return out.view(B, n_words, K, n_words).transpose(1, 2)


def attention_argmax(word_attn: Tensor, n_words: Tensor) -> Tensor:
    """Each word's most attended word, among the ROOT-prefixed words of its own sentence.

    Args:
        word_attn: (B, K, N + 1, N + 1) from :func:`word_attention`.
        n_words: (B,) long, words per sentence (without ROOT).

    Returns:
        (B, K, N + 1) long; ties go to the leftmost word.
    """
    keep = torch.arange(word_attn.shape[-1], device=word_attn.device) <= n_words.view(-1, 1)  # (B, N + 1)
    return word_attn.masked_fill(~keep.view(-1, 1, 1, keep.shape[1]), float("-inf")).argmax(-1)


def dep_correct(argmax: Tensor, units: Tensor) -> Tensor:
    """Arc ``dep → head`` is correct for a head if ``argmax[dep] == head`` or ``argmax[head] == dep``.

    Args:
        argmax: (B, K, N + 1) long from :func:`attention_argmax`.
        units: (U, 4) long rows ``(b, dep, head, label)`` in ROOT-prefixed positions.

    Returns:
        (U, K) bool.
    """
    b, dep, head = units[:, 0], units[:, 1], units[:, 2]
    at = _rows(argmax)  # (B·(N + 1), K)
    n1 = argmax.shape[2]
    return (at[b * n1 + dep] == head.unsqueeze(1)) | (at[b * n1 + head] == dep.unsqueeze(1))


def _rows(argmax: Tensor) -> Tensor:
    """(B, K, N + 1) -> (B·(N + 1), K): one row of head answers per (sentence, word)."""
    return argmax.transpose(1, 2).reshape(-1, argmax.shape[1])


def srl_correct(argmax: Tensor, units: Tensor) -> Tensor:
    """``(p, [s, e], r)`` is correct if some ``i`` in ``[s, e]`` has ``argmax[i] == p`` or ``argmax[p] == i``.

    Args:
        argmax: (B, K, N + 1) long from :func:`attention_argmax`.
        units: (U, 5) long rows ``(b, pred, start, end, label)``, 0-based words (shifted by one here).

    Returns:
        (U, K) bool.
    """
    b, pred, start, end = units[:, 0], units[:, 1] + 1, units[:, 2] + 1, units[:, 3] + 1
    K = argmax.shape[1]
    if not len(units):
        return torch.zeros(0, K, dtype=torch.bool)
    at_pred = _rows(argmax)[b * argmax.shape[2] + pred]  # (U, K)
    backward = (at_pred >= start.unsqueeze(1)) & (at_pred <= end.unsqueeze(1))
    # forward: words attending to p, counted by prefix sums once per distinct (sentence, predicate)
    pairs, which = torch.unique(torch.stack([b, pred], 1), dim=0, return_inverse=True)  # (P, 2), (U,)
    hits = (argmax[pairs[:, 0]] == pairs[:, 1].view(-1, 1, 1)).int()  # (P, K, N + 1)
    cum = torch.nn.functional.pad(hits.cumsum(2), (1, 0))  # (P, K, N + 2): cum[..., j] = hits before j
    cum = cum.transpose(1, 2).reshape(-1, K)  # (P·(N + 2), K)
    n2 = argmax.shape[2] + 1
    inside = cum[which * n2 + end + 1] - cum[which * n2 + start]  # (U, K) hits in [start, end]
    return backward | (inside > 0)


def add_correct(total: Tensor, correct: Tensor, labels: Tensor) -> Tensor:
    """``total[c, k] += Σ_units with label c of correct[u, k]``; total (C, K) long, correct (U, K) bool."""
    return total.index_add_(0, labels, correct.long())


class CentroidStats:
    """Cosine nearest-centroid accuracy of every head, centroids from the probed units themselves.

    Args:
        num_labels: C.
        num_heads: K = L·H flattened heads.
        head_dim: d_h.
        spill_dir: folder of the temporary spill file (default: the system temp dir).
        chunk_units: units classified per chunk when the spill is read back.
    """

    def __init__(
        self, *, num_labels: int, num_heads: int, head_dim: int, spill_dir=None, chunk_units: int = 1024
    ):
        self.C, self.K, self.d = int(num_labels), int(num_heads), int(head_dim)
        self.chunk_units = max(1, int(chunk_units))
        self.sums = torch.zeros(self.C, self.K, self.d, dtype=torch.float64)  # per-label running sums
        self.counts = torch.zeros(self.C, dtype=torch.long)
        self.labels: list[Tensor] = []  # small: one long per unit
        self._file = tempfile.TemporaryFile(dir=spill_dir, prefix="mtlheads-probe-")  # gone on close

    def add(self, vectors: Tensor, labels: Tensor) -> None:
        """Pass 1 for one batch: vectors (U, K, d_h), labels (U,) long."""
        vectors = vectors.detach().to(torch.float32).reshape(len(labels), self.K, self.d).contiguous()
        self.sums.index_add_(0, labels, vectors.double())
        self.counts += torch.bincount(labels, minlength=self.C)
        self.labels.append(labels.clone())
        self._file.write(vectors.numpy().tobytes())

    def finish(self) -> tuple[Tensor, Tensor]:
        """Pass 2: classify every spilled unit. Returns correct (C, K) long and counts (C,) long."""
        centroids = self.sums / self.counts.clamp(min=1).view(-1, 1, 1).double()  # (C, K, d)
        unit = (centroids / centroids.norm(dim=-1, keepdim=True).clamp(min=1e-30)).float()
        by_head = unit.permute(1, 2, 0).contiguous()  # (K, d, C)
        labels = torch.cat(self.labels) if self.labels else torch.zeros(0, dtype=torch.long)
        correct = torch.zeros(self.C, self.K, dtype=torch.long)
        row = self.K * self.d
        buf = np.empty(self.chunk_units * row, dtype=np.float32)
        self._file.flush()
        self._file.seek(0)
        for lo in range(0, len(labels), self.chunk_units):
            n = min(self.chunk_units, len(labels) - lo)
            view = memoryview(buf)[: n * row].cast("B")
            if self._file.readinto(view) != n * row * 4:
                raise OSError("probe spill file is shorter than expected")
            x = torch.from_numpy(buf[: n * row]).view(n, self.K, self.d).transpose(0, 1)  # (K, n, d)
            # cosine argmax: |x| is the same for every label, so x · unit centroid suffices
            pred = torch.bmm(x, by_head).argmax(-1)  # (K, n)
            lab = labels[lo : lo + n]
            add_correct(correct, (pred == lab.unsqueeze(0)).T, lab)
        return correct, self.counts.clone()

    def spill_bytes(self) -> int:
        """Size of the spill file so far."""
        self._file.flush()
        return os.fstat(self._file.fileno()).st_size

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> CentroidStats:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
