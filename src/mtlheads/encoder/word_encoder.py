"""Words in, one vector per word out: tokenisation, word dropout, sliding window, subword pooling."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _per_word(tokenizer, words: list[str]) -> tuple[list[int], list[int]]:
    """Tokenise each word on its own (slow tokenizers): ids and word index (-1 for specials)."""
    unk = tokenizer.unk_token_id
    pieces = [tokenizer(w, add_special_tokens=False)["input_ids"] or [unk] for w in words]
    content = [i for p in pieces for i in p]
    wid = [w for w, p in enumerate(pieces) for _ in p]
    probe = tokenizer.unk_token or "a"  # the special-token frame around any single sentence
    inner = tokenizer(probe, add_special_tokens=False)["input_ids"]
    outer = tokenizer(probe)["input_ids"]
    k = next(i for i in range(len(outer)) if outer[i : i + len(inner)] == inner)
    prefix, suffix = outer[:k], outer[k + len(inner) :]
    return prefix + content + suffix, [-1] * len(prefix) + wid + [-1] * len(suffix)


def tokenize_words(tokenizer, batch_words: list[list[str]]) -> dict[str, Tensor]:
    """Tokenise pre-split sentences (run it in the DataLoader's collate).

    A word with no subword (e.g. a lone zero-width space) becomes the unk token, so every word has a vector.

    Args:
        tokenizer: a transformers tokenizer (fast: one batched call; slow: word by word).
        batch_words: B sentences, each a list of words.

    Returns:
        ``input_ids`` (B, T), ``attention_mask`` (B, T), ``word_index`` (B, T) long (0-based word of each
        subword, -1 for special tokens and padding) and ``token_type_ids`` (B, T) if the model takes them.
    """
    rows: list[tuple[list[int], list[int]]] = []
    if getattr(tokenizer, "is_fast", False):
        enc = tokenizer(batch_words, is_split_into_words=True, add_special_tokens=True, verbose=False)
        for i, words in enumerate(batch_words):
            wid = [-1 if w is None else w for w in enc.word_ids(i)]
            if len(set(wid) - {-1}) < len(words):  # some word gave no subword: make it unk
                seen = set(wid)
                fixed = [w if j in seen else tokenizer.unk_token for j, w in enumerate(words)]
                one = tokenizer([fixed], is_split_into_words=True, add_special_tokens=True, verbose=False)
                wid = [-1 if w is None else w for w in one.word_ids(0)]
                rows.append(
                    (one["input_ids"][0], wid)
                    if len(set(wid) - {-1}) == len(words)
                    else _per_word(tokenizer, words)
                )
            else:
                rows.append((enc["input_ids"][i], wid))
    else:
        rows = [_per_word(tokenizer, words) for words in batch_words]
    B, T = len(rows), max((len(ids) for ids, _ in rows), default=0)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    out = {
        "input_ids": torch.full((B, T), pad, dtype=torch.long),
        "attention_mask": torch.zeros(B, T, dtype=torch.long),
        "word_index": torch.full((B, T), -1, dtype=torch.long),
    }
    for b, (ids, wid) in enumerate(rows):
        out["input_ids"][b, : len(ids)] = torch.tensor(ids)
        out["attention_mask"][b, : len(ids)] = 1
        out["word_index"][b, : len(ids)] = torch.tensor(wid)
    if "token_type_ids" in tokenizer.model_input_names:
        out["token_type_ids"] = torch.zeros(B, T, dtype=torch.long)
    return out


def pool_words(hidden: Tensor, word_index: Tensor, pooling: str = "mean") -> tuple[Tensor, Tensor]:
    """Subword vectors -> word vectors by scatter (no loop over words).

    Args:
        hidden: (B, T, D) subword vectors.
        word_index: (B, T) word of each subword, -1 for specials/padding.
        pooling: "mean", "first" or "last" subword of each word.

    Returns:
        words (B, N, D) with N = max words in the batch (zeros past each sentence's end), mask (B, N) bool.
    """
    B, T, D = hidden.shape
    n_words = (word_index.max(dim=1).values + 1).clamp(min=0)  # (B,)
    N = int(n_words.max()) if B else 0
    valid = word_index >= 0  # (B, T)
    row = torch.arange(B, device=hidden.device).unsqueeze(1)  # (B, 1)
    flat = (row * N + word_index)[valid]  # (S,) word slot of each real subword
    if pooling == "mean":
        words = hidden.new_zeros(B * N, D).index_add_(0, flat, hidden[valid])
        count = hidden.new_zeros(B * N).index_add_(0, flat, hidden.new_ones(flat.shape))
        words = words / count.clamp(min=1).unsqueeze(1)
    elif pooling in ("first", "last"):
        pos = (row * T + torch.arange(T, device=hidden.device))[valid]  # (S,) flat subword position
        pick = torch.zeros(B * N, dtype=torch.long, device=hidden.device)
        pick.scatter_reduce_(0, flat, pos, "amin" if pooling == "first" else "amax", include_self=False)
        words = hidden.reshape(B * T, D)[pick]
    else:
        raise ValueError(f"pooling must be 'mean', 'first' or 'last', not {pooling!r}")
    mask = torch.arange(N, device=hidden.device) < n_words.unsqueeze(1)  # (B, N)
    return words.view(B, N, D) * mask.unsqueeze(-1), mask  # padded word slots are zeros


def default_max_length(model: nn.Module) -> int:
    """Longest subword sequence the model takes: max_position_embeddings minus the position offset
    (RoBERTa-like models start positions after ``padding_idx``: 514 - 2 = 512)."""
    n = getattr(model.config, "max_position_embeddings", None) or 512
    emb = getattr(getattr(model, "base_model", model), "embeddings", None)
    pad = getattr(getattr(emb, "position_embeddings", None), "padding_idx", None)
    return int(n) - (pad + 1 if pad is not None else 0)


class WordEncoder(nn.Module):
    """A transformer encoder read out per word, with UDify word dropout and a sliding window.

    Args:
        model: a transformers base model (``last_hidden_state`` output), gated or not.
        pooling: subword pooling per word: "mean", "first" or "last".
        word_dropout: in training, probability to replace each non-special subword id by ``mask_token_id``.
        mask_token_id: the id used by word dropout.
        special_ids: ids never dropped (CLS, SEP, PAD...: ``tokenizer.all_special_ids``).
        max_length: longest sequence fed to the model (default ``default_max_length(model)``).
        stride: step in subwords between windows (default half a window's content).
    """

    def __init__(
        self,
        *,
        model: nn.Module,
        pooling: str = "mean",
        word_dropout: float = 0.2,
        mask_token_id: int,
        special_ids,
        max_length: int | None = None,
        stride: int | None = None,
    ):
        super().__init__()
        if pooling not in ("mean", "first", "last"):
            raise ValueError(f"pooling must be 'mean', 'first' or 'last', not {pooling!r}")
        self.model, self.pooling, self.word_dropout = model, pooling, float(word_dropout)
        self.mask_token_id = int(mask_token_id)
        self.register_buffer(
            "special_ids", torch.tensor(sorted(set(special_ids)), dtype=torch.long), persistent=False
        )
        self.max_length = int(max_length or default_max_length(model))
        self.stride = int(stride or max((self.max_length - 2) // 2, 1))
        if self.max_length < 3 or not 1 <= self.stride <= self.max_length - 2:
            raise ValueError(
                f"need max_length >= 3 and 1 <= stride <= max_length - 2, "
                f"got {self.max_length}, {self.stride}"
            )
        self.pad_token_id = getattr(model.config, "pad_token_id", None) or 0

    @classmethod
    def from_tokenizer(cls, *, model: nn.Module, tokenizer, **kwargs) -> WordEncoder:
        """Fill ``mask_token_id`` and ``special_ids`` from the tokenizer (falls back to unk for masking)."""
        mask = tokenizer.mask_token_id if tokenizer.mask_token_id is not None else tokenizer.unk_token_id
        return cls(model=model, mask_token_id=mask, special_ids=tokenizer.all_special_ids, **kwargs)

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    def forward(
        self, batch: dict[str, Tensor], *, cls_is_root: bool = False, sep_is_eos: bool = False
    ) -> tuple[Tensor, Tensor]:
        """Encode a ``tokenize_words`` batch.

        Returns:
            words (B, N[+1][+1], D) and mask (B, N[+1][+1]) bool; with ``cls_is_root`` position 0 is the
            first token's ([CLS]) vector (always unmasked) and word i sits at i + 1; with ``sep_is_eos``
            the last token's ([SEP]) vector follows each sentence's last word (constituency fenceposts).
        """
        ids, attn, widx = batch["input_ids"], batch["attention_mask"], batch["word_index"]  # (B, T)
        if self.training and self.word_dropout > 0:
            eligible = (widx >= 0) & attn.bool() & ~torch.isin(ids, self.special_ids)
            drop = (torch.rand(ids.shape, device=ids.device) < self.word_dropout) & eligible
            ids = ids.masked_fill(drop, self.mask_token_id)
        tt = batch.get("token_type_ids")
        if ids.shape[1] <= self.max_length:
            hidden = self._run(ids, attn, tt)  # (B, T, D)
        else:
            hidden = self._run_windows(ids, attn, tt, widx)
        words, mask = pool_words(hidden, widx, self.pooling)  # (B, N, D), (B, N)
        if sep_is_eos:  # the last real token ([SEP]) right after each sentence's last word
            words, mask = _append_last_token(words, mask, hidden, attn)  # (B, N+1, D), (B, N+1)
        if cls_is_root:
            words = torch.cat([hidden[:, :1], words], dim=1)  # (B, 1+N, D)
            mask = torch.cat([mask.new_ones(mask.shape[0], 1), mask], dim=1)
        return words, mask

    def _run(self, ids: Tensor, attn: Tensor, tt: Tensor | None) -> Tensor:
        extra = {} if tt is None else {"token_type_ids": tt}
        return self.model(input_ids=ids, attention_mask=attn, **extra).last_hidden_state

    def _run_windows(self, ids: Tensor, attn: Tensor, tt: Tensor | None, widx: Tensor) -> Tensor:
        """All windows of all sentences in ONE model call (one gate sample); each subword takes its
        vector from the window where it is most central. Layout per sentence: [CLS] content [SEP]."""
        B, T = ids.shape
        C, S, dev = self.max_length - 2, self.stride, ids.device
        ids, attn, widx = ids.cpu(), attn.cpu(), widx.cpu()  # index bookkeeping on CPU
        tt = None if tt is None else tt.cpu()
        lengths = attn.sum(dim=1).tolist()
        windows = []  # (sentence, content start, content length)
        for b, n in enumerate(lengths):
            if n < 2 or widx[b, 0] >= 0 or widx[b, n - 1] >= 0 or bool((widx[b, 1 : n - 1] < 0).any()):
                raise ValueError("sliding window needs each sequence laid out as [CLS] subwords [SEP]")
            m = n - 2
            starts = [0] if m <= C else [*range(0, m - C, S), m - C]
            windows += [(b, st, min(C, m - st)) for st in starts]
        W, Lw = len(windows), max(ln for *_, ln in windows) + 2
        w_ids = ids.new_full((W, Lw), self.pad_token_id)
        w_attn = attn.new_zeros((W, Lw))
        w_tt = None if tt is None else tt.new_zeros((W, Lw))
        src = torch.zeros(B, T, dtype=torch.long)  # flat (W·Lw) source of each original position
        best = torch.full((B, T), -1, dtype=torch.long)
        first_win: dict[int, int] = {}
        for w, (b, st, ln) in enumerate(windows):
            n = lengths[b]
            keep = torch.cat([torch.tensor([0]), torch.arange(1 + st, 1 + st + ln), torch.tensor([n - 1])])
            w_ids[w, : ln + 2] = ids[b, keep]
            w_attn[w, : ln + 2] = 1
            if tt is not None:
                w_tt[w, : ln + 2] = tt[b, keep]
            k = torch.arange(ln)  # position in the window's content
            score = torch.minimum(k, ln - 1 - k)  # distance to the nearer window edge
            pos = 1 + st + k
            better = score > best[b, pos]
            best[b, pos[better]] = score[better]
            src[b, pos[better]] = w * Lw + 1 + k[better]
            src[b, 0] = first_win.setdefault(b, w) * Lw  # [CLS] from the first window
            src[b, n - 1] = w * Lw + ln + 1  # [SEP] from the last window
        w_tt = None if w_tt is None else w_tt.to(dev)
        hidden = self._run(w_ids.to(dev), w_attn.to(dev), w_tt)  # (W, Lw, D)
        hidden = hidden.reshape(W * Lw, -1)[src.view(-1).to(dev)].view(B, T, -1)  # (B, T, D)
        return hidden * attn.to(dev).unsqueeze(-1).to(hidden.dtype)


def tokenize_pairs(
    tokenizer, text_a: list[str], text_b: list[str | None] | None, *, max_length: int
) -> dict[str, Tensor]:
    """Sentence (pair) inputs in the tokenizer's own format, for [CLS]-level tasks.

    Returns the tokenizer's ``input_ids``/``attention_mask`` (and ``token_type_ids`` where the model has
    them), padded to the longest and truncated longest-first to ``max_length``, plus ``word_index`` = -1
    everywhere: there are no words to pool, the encoder's position 0 is [CLS].
    """
    pair = text_b if text_b is not None and all(b is not None for b in text_b) else None
    enc = tokenizer(text_a, pair, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    out = {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
    out["word_index"] = torch.full_like(out["input_ids"], -1)
    return out


def _append_last_token(words: Tensor, mask: Tensor, hidden: Tensor, attn: Tensor) -> tuple[Tensor, Tensor]:
    """Puts each sequence's last real token vector at its sentence's word position n_b (B, N+1, D)."""
    B, N, D = words.shape
    n_words = mask.sum(1)  # (B,)
    last = hidden[torch.arange(B, device=hidden.device), attn.sum(1) - 1]  # (B, D)
    words = torch.cat([words, words.new_zeros(B, 1, D)], dim=1)
    at = torch.arange(N + 1, device=words.device)[None, :] == n_words[:, None]  # (B, N+1)
    words = torch.where(at[..., None], last[:, None, :].to(words.dtype), words)
    return words, torch.arange(N + 1, device=mask.device)[None, :] <= n_words[:, None]
