"""Parameter-free probes of every attention head (He & Choi 2021, reference §7): the runner.

``probe_heads(model, tokenizer, sentences, kind)`` makes ONE forward pass over the sentences (eval mode, no
grad, batches under a subword budget, sentences without a unit skipped) and scores every (layer, head) on
every label of the probe:

* ``pos``/``ner``/``con`` read each head's context ``softmax(QKᵀ/√d_h)V`` through the same forward pre-hook
  as the head gates (:func:`~mtlheads.heads.gate.install_head_gate` with a recording gate of ones), so there
  is no second copy of any attention code and every encoder family gets the true per-head context
  (the released code corrupted non-BERT encoders here). A word is the mean of its subwords, a unit the mean
  of its words; :class:`~mtlheads.heads.probe_stats.CentroidStats` does the nearest-centroid scoring.
* ``dep``/``srl`` read the attention probabilities (``output_attentions=True``) from the eager attention
  path, switched on only for the probe and restored afterwards (:func:`eager_attention`), so training keeps
  SDPA.

Sentences longer than the encoder's limit are cut into the windows :class:`WordEncoder` uses, in one model
call; every subword takes its context or attention row from the window where it is most central (the
window plan is ``WordEncoder._run_windows`` itself, run on position codes). Attention rows then cover only
that window's keys.

If a gate is already installed on the model (a pruning mask, say) the probe sees the gated contexts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mtlheads.data.sentence import Sentence
from mtlheads.encoder.word_encoder import WordEncoder, pool_words
from mtlheads.heads.gate import HeadGate, head_shape, install_head_gate
from mtlheads.heads.probe_batches import Windowed, collate, plan_batches, tokenize_rows
from mtlheads.heads.probe_results import ProbeResult
from mtlheads.heads.probe_stats import (
    CentroidStats,
    add_correct,
    attention_argmax,
    dep_correct,
    span_means,
    srl_correct,
    word_attention,
)
from mtlheads.heads.probe_units import VALUE_KINDS, ProbeUnits, check_kind, collect_units

log = logging.getLogger(__name__)


class ContextRecorder(HeadGate):
    """A gate of ones that keeps each layer's per-head context ``(..., T, H, d_h)`` of the last forward."""

    keep_context = True

    def __init__(self, *, num_layers: int, num_heads: int):
        super().__init__(num_layers=num_layers, num_heads=num_heads)
        self.register_buffer("ones", torch.ones(num_layers, num_heads), persistent=False)
        self.contexts: list[Tensor | None] = [None] * num_layers

    def forward(self) -> Tensor:
        return self.ones

    def observe(self, layer: int, context: Tensor, gated: Tensor) -> None:
        self.contexts[layer] = context.detach()


@contextmanager
def eager_attention(model: nn.Module) -> Iterator[nn.Module]:
    """Run ``model`` (and its sub-models) on the eager attention path inside the block, then restore.

    Raises:
        ValueError: the model is not eager and cannot switch (it does not use transformers'
            attention interface).
    """
    before = getattr(model.config, "_attn_implementation", None)
    if before == "eager":
        yield model
        return
    if not getattr(model, "_can_set_attn_implementation", lambda: False)():
        raise ValueError(
            f"{type(model).__name__} uses {before!r} attention and cannot switch to 'eager' at run time: "
            "load it with attn_implementation='eager' to probe attention maps"
        )
    model.set_attn_implementation("eager")
    try:
        yield model
    finally:
        model.set_attn_implementation(before)


@dataclass
class _Job:
    """One probe run: the model runner, the units and the planned batches of token rows."""

    runner: Windowed
    units: ProbeUnits
    keep: list[int]  # sentence index of each token row
    rows: list[dict[str, Tensor]]
    batches: list[list[int]]  # indices into rows
    pad: int
    L: int
    H: int

    def __iter__(self) -> Iterator[tuple]:
        """Per batch: the padded batch, codes (W, S), src (B, T), the model output, unit rows (U, 1 + w)."""
        device = next(self.runner.model.parameters()).device
        for n, ids in enumerate(self.batches):
            batch = {k: v.to(device) for k, v in collate([self.rows[i] for i in ids], self.pad).items()}
            codes, src, out = self.runner.encode(batch)
            self.runner.out = None  # the caller holds the only reference: freed before the next forward
            yield batch, codes, src, out, self.units.batch([self.keep[i] for i in ids])
            if n % 50 == 0:
                log.info("probe %s: batch %d/%d", self.units.kind, n + 1, len(self.batches))


def probe_heads(
    model: nn.Module,
    tokenizer,
    sentences: Sequence[Sentence],
    kind: str,
    *,
    max_tokens: int = 4096,
    max_sentences: int = 128,
    max_length: int | None = None,
    stride: int | None = None,
    spill_dir=None,
    chunk_units: int = 1024,
) -> ProbeResult:
    """Score every attention head of ``model`` on every label of probe ``kind`` over ``sentences``.

    Args:
        model: a transformers encoder (``load_encoder``'s model, or ``WordEncoder.model``); a
            ``WordEncoder`` is unwrapped and lends its ``max_length``/``stride``.
        tokenizer: its tokenizer (pre-split words are tokenised as in training).
        sentences: gold sentences carrying the probe's layer.
        kind: ``pos``, ``ner``, ``con`` (value probes) or ``dep``, ``srl`` (attention probes).
        max_tokens: padded subwords per batch (attention probes hold L·H·T² probabilities per sentence).
        max_sentences: sentences per batch.
        max_length: longest subword sequence per model call (default: the model's limit).
        stride: step between windows of longer sentences (default: half a window).
        spill_dir: folder for the value probes' temporary spill file (default: the system temp dir).
        chunk_units: units read back per chunk when the value probes classify.

    Returns:
        A :class:`ProbeResult` with (L, H, C) correct counts and (C,) label counts.
    """
    if isinstance(model, WordEncoder):
        max_length, stride = max_length or model.max_length, stride or model.stride
        model = model.model
    units = collect_units(list(sentences), check_kind(kind))
    keep = [i for i, r in enumerate(units.rows) if len(r)]  # sentences with something to score
    rows = tokenize_rows(tokenizer, [sentences[i] for i in keep])
    lengths = [len(r["input_ids"]) for r in rows]
    job = _Job(
        runner=Windowed(model=model, max_length=max_length, stride=stride),
        units=units,
        keep=keep,
        rows=rows,
        batches=plan_batches(lengths, max_tokens=max_tokens, max_sentences=max_sentences),
        pad=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0,
        L=head_shape(model)[0],
        H=head_shape(model)[1],
    )
    was_training, before = model.training, getattr(model.config, "_attn_implementation", None)
    model.eval()
    try:
        with torch.no_grad():
            if kind in VALUE_KINDS:
                correct, extra = _value_probe(model, job, spill_dir=spill_dir, chunk_units=chunk_units)
            else:
                with eager_attention(model):
                    correct, extra = _attention_probe(job)
    finally:
        model.train(was_training)
    meta = {
        "model": str(getattr(model.config, "_name_or_path", "") or type(model).__name__),
        "model_type": str(getattr(model.config, "model_type", "")),
        "sentences": len(sentences),
        "probed_sentences": len(keep),
        "windowed_sentences": sum(n > job.runner.max_length for n in lengths),
        "batches": len(job.batches),
        "max_tokens": max_tokens,
        "max_length": job.runner.max_length,
        "attn_implementation": before,
        **extra,
    }
    correct = correct.view(len(units.labels), job.L, job.H).permute(1, 2, 0).contiguous()  # (L, H, C)
    return ProbeResult(
        kind=kind, labels=units.labels, correct=correct, counts=units.counts.clone(), meta=meta
    )


def _value_probe(model: nn.Module, job: _Job, *, spill_dir, chunk_units: int) -> tuple[Tensor, dict]:
    """(C, L·H) correct counts of the nearest-centroid probe, and facts for the meta."""
    recorder = ContextRecorder(num_layers=job.L, num_heads=job.H)
    stats: CentroidStats | None = None
    try:
        with install_head_gate(model, recorder):
            for batch, codes, src, _, unit_rows in job:
                ctx = torch.stack(recorder.contexts, dim=2)  # (W, S, L, H, d_h)
                recorder.contexts = [None] * job.L
                W, S, _, _, d_h = ctx.shape
                B, T = src.shape
                flat = ctx.reshape(W * S, -1).float()  # pool in float32 whatever the model's dtype
                if codes.shape != src.shape:  # windows: each position reads its most central slot
                    flat = flat[src.reshape(-1)]
                words, _ = pool_words(flat.view(B, T, -1), batch["word_index"])  # (B, N, L·H·d_h)
                if stats is None:
                    stats = CentroidStats(
                        num_labels=len(job.units.labels),
                        num_heads=job.L * job.H,
                        head_dim=d_h,
                        spill_dir=spill_dir,
                        chunk_units=chunk_units,
                    )
                stats.add(span_means(words.cpu(), unit_rows), unit_rows[:, -1])
                del ctx, flat, words  # not alive during the next forward
        if stats is None:  # nothing to score
            return torch.zeros(len(job.units.labels), job.L * job.H, dtype=torch.long), {}
        correct, _ = stats.finish()
        return correct, {"spill_bytes": stats.spill_bytes()}
    finally:
        if stats is not None:
            stats.close()


def _attention_probe(job: _Job) -> tuple[Tensor, dict]:
    """(C, L·H) correct counts of the DEP or SRL attention probe."""
    job.runner.attentions = True
    correct = torch.zeros(len(job.units.labels), job.L * job.H, dtype=torch.long)
    score = dep_correct if job.units.kind == "dep" else srl_correct
    for batch, codes, src, out, unit_rows in job:
        if out.attentions is None or len(out.attentions) != job.L:
            got = 0 if out.attentions is None else len(out.attentions)
            raise RuntimeError(
                f"{type(job.runner.model).__name__} gave {got} attention maps for {job.L} layers"
            )
        widx = batch["word_index"]
        if bool((widx[:, 0] >= 0).any()):
            raise ValueError("attention probes need a special first token ([CLS]) to stand for ROOT")
        root_word = torch.where(widx >= 0, widx + 1, -1)
        root_word[:, 0] = 0  # the first token ([CLS]) is ROOT
        n_words = (widx.max(1).values + 1).clamp(min=0)  # (B,)
        slot_word = root_word.reshape(-1)[codes.clamp(min=0)].masked_fill(codes < 0, -1)  # (W, S)
        n1 = int(n_words.max()) + 1
        argmax = torch.cat(
            [
                attention_argmax(word_attention(a, src, slot_word, root_word, n1), n_words)
                for a in out.attentions
            ],
            dim=1,
        )  # (B, L·H, N + 1)
        add_correct(correct, score(argmax.cpu(), unit_rows), unit_rows[:, -1])
        del out  # the attention maps are not kept alive during the next forward
    return correct, {}
