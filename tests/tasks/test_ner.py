"""NER task: candidate spans, greedy flat decoding, loss, metric, and overfitting a tiny batch."""

from __future__ import annotations

import json
import math
import random

import pytest
import torch
from decoder_fit import overfit

from mtlheads.data.sentence import Sentence
from mtlheads.tasks.biaffine import Biaffine
from mtlheads.tasks.ner import NULL, NerMetric, NerTask, greedy_spans, span_candidates

TRAIN = [
    Sentence(
        words=["John", "Smith", "lives", "in", "New", "York", "."], entities=[(0, 1, "PER"), (4, 5, "GPE")]
    ),
    Sentence(words=["IBM", "hired", "Mary"], entities=[(0, 0, "ORG"), (2, 2, "PER")]),
    Sentence(words=["Nothing", "here"], entities=[]),
]


def _mask(lengths: list[int]) -> torch.Tensor:
    return torch.arange(max(lengths))[None, :] < torch.tensor(lengths)[:, None]


def _task() -> NerTask:
    task = NerTask()
    task.fit_vocab(TRAIN)
    return task


def test_vocab_null_first_and_json_roundtrip() -> None:
    task = _task()
    assert task.labels == [NULL, "GPE", "ORG", "PER"]
    assert (task.name, task.cls_is_root, task.main_metric) == ("ner", False, "f1")
    other = NerTask()
    other.load_vocab_state(json.loads(json.dumps(task.vocab_state())))
    assert other.labels == task.labels


def test_decoder_shapes_and_zero_init() -> None:
    decoder = _task().build_decoder(12)
    assert decoder.start.out_features == decoder.end.out_features == 150
    biaffine = next(m for m in decoder.modules() if isinstance(m, Biaffine))
    assert biaffine.weight.shape == (4, 151, 151) and not biaffine.weight.any()
    out = decoder(torch.randn(2, 5, 12), _mask([5, 3]))
    assert out.shape == (2, 5, 5, 4)


def test_span_candidates_upper_triangle_within_each_sentence() -> None:
    cand = span_candidates(_mask([4, 2]))
    assert cand.shape == (2, 4, 4)
    assert cand.sum(dim=(1, 2)).tolist() == [10, 3]
    assert cand[1, 0, 1] and not cand[1, 1, 0] and not cand[1, 0, 2]


def test_targets_cover_all_candidates_and_map_unknown_types() -> None:
    task = _task()
    batch = [Sentence(words=["a", "b", "c"], entities=[(0, 1, "PER"), (2, 2, "MONEY")]), TRAIN[1]]
    labels = task.targets(batch)["labels"]
    assert labels.shape == (2, 3, 3)
    assert labels[0, 0, 1] == 3 and labels[0, 2, 2] == task.unk_index == 4
    assert labels[0, 1, 0] == -100 and labels[0, 0, 0] == 0
    assert ((labels >= 0) == span_candidates(_mask([3, 3]))).all()


def test_loss_is_mean_ce_over_all_candidate_spans() -> None:
    task = _task()
    torch.manual_seed(0)
    batch = [Sentence(words=["a", "b"], entities=[(1, 1, "ORG")]), Sentence(words=["c"], entities=[])]
    out = torch.randn(2, 2, 2, 4)
    loss = task.loss(out, task.targets(batch), _mask([2, 1]))
    spans = torch.stack([out[0, 0, 0], out[0, 0, 1], out[0, 1, 1], out[1, 0, 0]])
    expected = torch.nn.functional.cross_entropy(spans, torch.tensor([0, 0, 2, 0]))
    assert loss.item() == pytest.approx(expected.item())


def test_greedy_flat_hand_case_nested_and_overlapping() -> None:
    candidates = [
        (0, 2, 1, 0.9),
        (1, 1, 2, 0.95),
        (2, 3, 3, 0.8),
        (4, 4, 1, 0.5),
        (0, 0, 2, 0.3),
        (3, 4, 2, 0.2),
    ]
    # (1,1) first; (0,2) nests it; (2,3) free; (4,4) free; (0,0) free; (3,4) overlaps (2,3) and (4,4)
    assert greedy_spans(candidates, flat=True) == [(0, 0, 2), (1, 1, 2), (2, 3, 3), (4, 4, 1)]
    # nested mode keeps (0,2) around (1,1) and (0,0) but drops (2,3), which crosses (0,2)
    assert greedy_spans(candidates, flat=False) == [(0, 0, 2), (0, 2, 1), (1, 1, 2), (3, 4, 2), (4, 4, 1)]


def test_greedy_flat_matches_its_defining_property_on_random_candidates() -> None:
    rng = random.Random(0)
    for _ in range(300):
        spans = {(s, e) for s, e in ((rng.randrange(8), rng.randrange(8)) for _ in range(10)) if s <= e}
        candidates = [(s, e, rng.randrange(1, 4), rng.random()) for s, e in spans]
        accepted = greedy_spans(candidates, flat=True)
        kept = {(s, e) for s, e, _ in accepted}

        def intersects(a: tuple[int, int], b: tuple[int, int]) -> bool:
            return a[0] <= b[1] and b[0] <= a[1]

        assert all(not intersects(a, b) for a in kept for b in kept if a != b)
        score = {(s, e): v for s, e, _, v in candidates}
        for s, e, _, v in candidates:  # a rejected span clashes with an accepted, better-scored span
            if (s, e) not in kept:
                assert any(intersects((s, e), k) and score[k] > v for k in kept)


def test_decode_uses_only_candidates_of_each_sentence() -> None:
    task = _task()
    out = torch.zeros(2, 4, 4, 4)
    out[..., 0] = 1.0  # null everywhere by default
    out[0, 0, 1, 3] = 5.0  # PER (0,1)
    out[0, 1, 2, 1] = 4.0  # GPE (1,2): overlaps the better PER span
    out[0, 3, 3, 2] = 3.0  # ORG (3,3)
    out[0, 2, 0, 2] = 9.0  # i > j: never a candidate
    out[1, 0, 0, 1] = 2.0  # GPE (0,0) in a 2-word sentence
    out[1, 2, 3, 3] = 9.0  # padding span
    out[1, 1, 2, 3] = 9.0  # half padding
    preds = task.decode(out, _mask([4, 2]), final=False)
    assert preds == [[(0, 1, "PER"), (3, 3, "ORG")], [(0, 0, "GPE")]]


def test_metric_exact_match_partial_counts_wrong() -> None:
    metric = NerMetric()
    gold = [Sentence(words=list("abcdef"), entities=[(0, 1, "PER"), (3, 3, "LOC")])]
    metric.update([[(0, 1, "PER"), (3, 4, "LOC"), (5, 5, "ORG")]], gold)
    result = metric.compute()
    assert result["p"] == pytest.approx(1 / 3) and result["r"] == pytest.approx(1 / 2)
    assert result["f1"] == pytest.approx(0.4)
    metric.update([[(0, 1, "ORG")]], [Sentence(words=["x", "y"], entities=[(0, 1, "PER")])])  # wrong type
    assert metric.compute()["r"] == pytest.approx(1 / 3)
    assert NerMetric().compute() == {"p": 0.0, "r": 0.0, "f1": 0.0}


def test_overfits_a_tiny_batch() -> None:
    torch.manual_seed(0)
    task = _task()
    decoder = task.build_decoder(16)
    lengths = [len(s.words) for s in TRAIN]
    hidden = torch.randn(len(TRAIN), max(lengths), 16)
    mask = _mask(lengths)
    first, last = overfit(task, decoder, hidden, mask, TRAIN, lr=1e-2, steps=150)
    assert math.isfinite(last) and last < first / 10
    metric = task.new_metric()
    with torch.no_grad():
        preds = task.decode(decoder(hidden, mask), mask, final=True)
    assert preds == [sorted(s.entities) for s in TRAIN]
    metric.update(preds, TRAIN)
    assert metric.compute()["f1"] == 1.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_runs_on_the_hidden_device() -> None:
    task = _task()
    decoder = task.build_decoder(8).cuda()
    mask = _mask([len(s.words) for s in TRAIN]).cuda()
    out = decoder(torch.randn(3, mask.shape[1], 8, device="cuda"), mask)
    loss = task.loss(out, task.targets(TRAIN), mask)
    assert loss.device.type == "cuda" and torch.isfinite(loss)
    assert len(task.decode(out, mask, final=True)) == 3


def old_decode(task: NerTask, out: torch.Tensor, mask: torch.Tensor) -> list[list]:
    """The replaced ``NerTask.decode`` (reference): ``greedy_spans`` on one sentence at a time."""
    score, label = out.detach().max(-1)
    keep = span_candidates(mask) & (label != 0)
    where = keep.nonzero().tolist()
    scores, labels = score[keep].tolist(), label[keep].tolist()
    per_sentence: list[list[tuple[int, int, int, float]]] = [[] for _ in range(out.shape[0])]
    for (b, s, e), v, lab in zip(where, scores, labels, strict=True):
        per_sentence[b].append((s, e, lab, v))
    return [
        [(s, e, task.labels[lab]) for s, e, lab in greedy_spans(cands, flat=task.flat)]
        for cands in per_sentence
    ]


@pytest.mark.parametrize("flat", [True, False])
@pytest.mark.parametrize("seed", range(8))
def test_batched_decode_equals_the_per_sentence_decode(seed: int, flat: bool) -> None:
    """Random span scores (integers for ties), nested and overlapping candidates, padding."""
    task = _task()
    task.flat = flat
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, 10, (7,), generator=g).tolist()
    out = torch.randn(7, max(lengths), max(lengths), len(task.labels), generator=g) * 2
    if seed % 2:
        out = out.round()
    out[..., 0] += 1.5  # null wins about half the spans
    mask = _mask(lengths)
    new, old = task.decode(out, mask), old_decode(task, out, mask)
    assert new == old and sum(map(len, new)) > 0


def test_batched_decode_with_no_candidate() -> None:
    task = _task()
    out = torch.zeros(2, 3, 3, len(task.labels))
    out[..., 0] = 1.0
    assert task.decode(out, _mask([3, 1])) == old_decode(task, out, _mask([3, 1])) == [[], []]
