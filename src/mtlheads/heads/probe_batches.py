"""Batches for the head probes: tokenised rows, token-budget batches, and the model run with windows.

:class:`Windowed` runs a transformers encoder on a padded batch exactly as :class:`WordEncoder` would
(sliding windows for sequences over ``max_length``, all windows in one model call), and also returns where
each original subword's vectors sit in the windows' output, so per-head contexts and attention rows can be
read per subword from the window where it is most central.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mtlheads.data.sentence import Sentence
from mtlheads.encoder.word_encoder import WordEncoder, tokenize_words


class Windowed(WordEncoder):
    """Runs the model on a batch, windowed exactly as ``WordEncoder`` when it is too long.

    ``_run_windows`` is fed position codes (``b·T + t``) instead of ids: the windows it builds then name the
    original position of every slot, ``_run`` swaps the codes for the real ids, and the "hidden state" it
    returns is each slot's own flat index, so ``_run_windows`` hands back the slot every position reads.
    """

    def __init__(self, *, model: nn.Module, max_length: int | None, stride: int | None):
        super().__init__(
            model=model,
            word_dropout=0.0,
            mask_token_id=0,
            special_ids=[],
            max_length=max_length,
            stride=stride,
        )
        self.attentions = False

    def encode(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, object]:
        """Returns codes (W, S) (original flat position of each window slot, -1 = padding), src (B, T)
        (flat window slot of each position) and the model output of the windows."""
        ids, attn, widx = batch["input_ids"], batch["attention_mask"], batch["word_index"]
        B, T = ids.shape
        self._ids = ids
        codes = torch.arange(B * T, device=ids.device).view(B, T)
        tt = batch.get("token_type_ids")
        if T <= self.max_length:
            self._run(codes, attn, tt)
            return self.codes, codes, self.out
        src = self._run_windows(codes, attn, tt, widx).squeeze(-1).round().long()  # (B, T)
        return self.codes, src, self.out

    def _run(self, ids: Tensor, attn: Tensor, tt: Tensor | None) -> Tensor:
        codes = ids.masked_fill(attn == 0, -1)  # (W, S)
        real = self._ids.reshape(-1)[codes.clamp(min=0)].masked_fill(attn == 0, self.pad_token_id)
        extra = {} if tt is None else {"token_type_ids": tt}
        if self.attentions:
            extra["output_attentions"] = True
        self.codes, self.out = codes, self.model(input_ids=real, attention_mask=attn, **extra)
        W, S = codes.shape
        return torch.arange(W * S, dtype=torch.float64, device=ids.device).view(W, S, 1)


def tokenize_rows(tokenizer, sentences: Sequence[Sentence], chunk: int = 256) -> list[dict[str, Tensor]]:
    """Each sentence's unpadded ``input_ids``/``word_index`` (and ``token_type_ids``) rows, (T_s,) long."""
    rows = []
    for lo in range(0, len(sentences), chunk):
        batch = tokenize_words(tokenizer, [s.words for s in sentences[lo : lo + chunk]])
        for b, n in enumerate(batch["attention_mask"].sum(1).tolist()):
            rows.append({k: v[b, :n] for k, v in batch.items() if k != "attention_mask"})
    return rows


def plan_batches(lengths: Sequence[int], *, max_tokens: int, max_sentences: int) -> list[list[int]]:
    """Length-sorted batches whose padded size (sentences × longest) stays within ``max_tokens``."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batches: list[list[int]] = []
    for i in order:
        cur = batches[-1] if batches else None
        if cur and len(cur) < max_sentences and (len(cur) + 1) * lengths[i] <= max_tokens:
            cur.append(i)
        else:
            batches.append([i])
    return batches


def collate(rows: Sequence[dict[str, Tensor]], pad_id: int) -> dict[str, Tensor]:
    """Pad token rows into a ``tokenize_words``-style batch."""
    B, T = len(rows), max(len(r["input_ids"]) for r in rows)
    out = {
        "input_ids": torch.full((B, T), pad_id, dtype=torch.long),
        "attention_mask": torch.zeros(B, T, dtype=torch.long),
        "word_index": torch.full((B, T), -1, dtype=torch.long),
    }
    if "token_type_ids" in rows[0]:
        out["token_type_ids"] = torch.zeros(B, T, dtype=torch.long)
    for b, r in enumerate(rows):
        n = len(r["input_ids"])
        out["attention_mask"][b, :n] = 1
        for k, v in r.items():
            out[k][b, :n] = v
    return out
