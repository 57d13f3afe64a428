"""CON task: vocabulary, targets, decoder shapes and [SEP] handling, loss, MBR decoding, overfitting."""

from __future__ import annotations

import json

import pytest
import torch
from decoder_fit import overfit
from nltk import Tree

from mtlheads.data.sentence import Sentence
from mtlheads.data.trees import strip_functions, to_string
from mtlheads.tasks.biaffine import MLP, SharedDropout
from mtlheads.tasks.con import ConTask, label_scores
from mtlheads.tasks.evalb import EvalbMetric
from mtlheads.tasks.treecrf import inside

TREES = [
    "(TOP (S (NP-SBJ (PRP She)) (VP (VBZ reads) (NP (NNS books))) (. .)))",
    "(TOP (S (NP (DT The) (JJ old) (NN man)) (VP (VBD sat) (PP (IN on) (NP (NNS chairs))))))",
    "(TOP (S (VP (VB Go) (PRT (RP away)) (. !))))",
    "(TOP (NP (NNP Vince)))",
    "(TOP (FRAG (NP (-LRB- -LRB-) (NN x) (-RRB- -RRB-)) (: :)))",
]


def _sent(tree: str) -> Sentence:
    pos = Tree.fromstring(tree).pos()
    words = [{"-LRB-": "(", "-RRB-": ")"}.get(w, w) for w, _ in pos]  # as the reader unescapes words
    return Sentence(words=words, pos=[t for _, t in pos], tree=tree)


TRAIN = [_sent(t) for t in TREES]


def _mask(word_lengths: list[int], extra: int = 1) -> torch.Tensor:
    """(B, extra+N) prefix mask: [CLS] (+ [SEP] when extra=2) and the words."""
    lengths = torch.tensor(word_lengths) + extra
    return torch.arange(int(lengths.max()))[None, :] < lengths[:, None]


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one intra-op thread avoids oversubscription slowdowns on busy machines."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _task(**kwargs) -> ConTask:
    kwargs.setdefault("hidden_has_sep", False)  # these tests feed [CLS] + words only (see the SEP tests)
    task = ConTask(**kwargs)
    task.fit_vocab(TRAIN)
    return task


def test_vocab_and_json_roundtrip() -> None:
    task = _task()
    assert (task.name, task.cls_is_root, task.sep_is_eos, task.main_metric) == ("con", True, False, "f1")
    assert ConTask().sep_is_eos  # by default the encoder supplies the real [SEP] vector
    assert {"S", "S|<>", "NP", "VP", "VP|<>", "S+VP", "PRT", "FRAG|<>", "NP|<>"} <= set(task.labels)
    assert "NP-SBJ" not in task.labels and task.labels == sorted(task.labels)
    other = ConTask()
    other.load_vocab_state(json.loads(json.dumps(task.vocab_state())))
    assert other.labels == task.labels
    with pytest.raises(RuntimeError):
        ConTask().build_decoder(8)


def test_targets_chart() -> None:
    task = _task()
    charts = task.targets([TRAIN[3], TRAIN[0]])["charts"]
    assert charts.shape == (2, 5, 5)
    idx = task.labels.index
    assert charts[0].tolist()[0][1] == idx("NP") and int((charts[0] >= 0).sum()) == 1
    expected = {
        (0, 4): "S",
        (0, 3): "S|<>",
        (0, 1): "NP",
        (1, 3): "VP",
        (1, 2): "VP|<>",
        (2, 3): "NP",
        (3, 4): "S|<>",
    }
    got = {(i, j): task.labels[int(charts[1, i, j])] for i, j in (charts[1] >= 0).nonzero().tolist()}
    assert got == expected
    unknown = _sent("(TOP (UCP (NN a) (CC and) (JJ b)))")
    assert int(task.targets([unknown])["charts"][0, 0, 3]) == task.unk_index


def test_decoder_layers_shapes_and_padding_invariance() -> None:
    task = _task()
    decoder = task.build_decoder(12).double().eval()  # float64: scores reach the hundreds below
    mlps = [m for m in decoder.modules() if isinstance(m, MLP)]
    assert sorted(m.linear.out_features for m in mlps) == [100, 100, 500, 500]
    assert all(m.dropout.p == 0.33 and isinstance(m.dropout, SharedDropout) for m in mlps)
    n_labels = len(task.labels)
    assert decoder.span_attn.weight.shape == (1, 501, 500)
    assert decoder.label_attn.weight.shape == (n_labels, 101, 101)
    torch.manual_seed(0)  # before the init too: with unseeded float32 weights the check failed now and then
    for p in decoder.parameters():  # the biaffines start at zero: make the check meaningful
        torch.nn.init.normal_(p, std=0.3)
    hidden = torch.randn(2, 6, 12, dtype=torch.float64)  # [CLS] + up to 5 words
    out = decoder(hidden, _mask([5, 2]))
    assert out["span"].shape == (2, 6, 6) and label_scores(out).shape == (2, 6, 6, n_labels)
    assert out["lengths"].tolist() == [5, 2]
    # the short sentence, alone and in the batch: same scores on its spans (padding never leaks in)
    alone = decoder(hidden[1:, :3], _mask([2]))
    assert torch.allclose(out["span"][1, :3, :3], alone["span"][0], atol=1e-5)
    assert torch.allclose(label_scores(out)[1, :3, :3], label_scores(alone)[0], atol=1e-5)
    # fencepost n = [f_n; b_SEP]: the learned [SEP] vector reaches the last fencepost of every sentence
    fence, _ = decoder.fenceposts(hidden, _mask([5, 2]))
    half = 6
    assert torch.equal(fence[1, 2, half:], decoder.sep[half:]) and torch.equal(
        fence[0, 5, half:], decoder.sep[half:]
    )
    assert torch.equal(fence[1, 0, :half], hidden[1, 0, :half]) and torch.equal(
        fence[1, 1, half:], hidden[1, 2, half:]
    )


def test_real_sep_in_hidden() -> None:
    task = _task(hidden_has_sep=True)
    decoder = task.build_decoder(8)
    assert decoder.sep is None
    hidden = torch.randn(2, 7, 8)  # [CLS] + 5 words + [SEP]; the 2-word sentence's [SEP] at position 3
    fence, lengths = decoder.fenceposts(hidden, _mask([5, 2], extra=2))
    assert lengths.tolist() == [5, 2] and fence.shape == (2, 6, 8)
    assert torch.equal(fence[1, 2, 4:], hidden[1, 3, 4:])
    assert decoder(hidden, _mask([5, 2], extra=2))["span"].shape == (2, 6, 6)


def test_loss_and_decode_under_inference_mode() -> None:
    task = _task(n_mlp_span=16, n_mlp_label=8)
    decoder = task.build_decoder(10)
    batch = [TRAIN[0], TRAIN[3], TRAIN[1]]
    mask = _mask([len(s.words) for s in batch])
    out = decoder(torch.randn(3, mask.shape[1], 10), mask)
    loss = task.loss(out, task.targets(batch), mask)
    assert loss.ndim == 0 and torch.isfinite(loss) and loss >= 0
    loss.backward()
    with torch.inference_mode():
        decoder.eval()
        preds = task.decode(decoder(torch.randn(3, mask.shape[1], 10), mask), mask, final=True)
    assert [len(p) for p in preds] == [2 * len(s.words) - 1 for s in batch]
    assert all(
        p[0][:2] == (0, len(s.words)) and all(lab in task.labels for *_, lab in p)
        for p, s in zip(preds, batch, strict=True)
    )
    metric = task.new_metric()
    metric.update(preds, batch)
    assert 0.0 <= metric.compute()["f1"] <= 1.0


def test_overfit_tiny_batch_reproduces_gold_trees() -> None:
    torch.manual_seed(0)
    task = _task(n_mlp_span=64, n_mlp_label=32, dropout=0.0)
    decoder = task.build_decoder(16)
    batch = TRAIN
    mask = _mask([len(s.words) for s in batch])
    hidden = torch.randn(len(batch), mask.shape[1], 16)
    first, last = overfit(task, decoder, hidden, mask, batch, lr=1e-2, steps=60)
    assert last < 0.05 * first
    with torch.inference_mode():
        out = decoder(hidden, mask)
        trees = task.decode(out, mask, sentences=batch)
        spans = task.decode(out, mask)
    assert trees == [to_string(strip_functions(s.tree)) for s in batch]
    metric = EvalbMetric()
    metric.update(spans, batch)
    assert metric.compute() == {"p": 1.0, "r": 1.0, "f1": 1.0}
    viterbi = _task(mbr=False)
    viterbi.load_vocab_state(task.vocab_state())
    assert viterbi.decode(out, mask, sentences=batch) == trees


def test_decode_labels_gathered_at_once_equal_the_per_sentence_lookup() -> None:
    """The batched label gather (and batched CKY backtracking) against the replaced per-sentence loop."""
    from mtlheads.tasks.treecrf import cky, marginals

    task = _task(n_mlp_span=16, n_mlp_label=8)
    g = torch.Generator().manual_seed(4)
    lengths = torch.tensor([5, 1, 9, 3])
    out = {
        "span": torch.randn(4, 10, 10, generator=g),
        "label": torch.randn(4, 10, 10, len(task.labels), generator=g),  # a caller's full scores
        "lengths": lengths,
    }
    trees = cky(marginals(out["span"], lengths), lengths)
    label_ids = out["label"].argmax(-1)
    old = [[(i, j, task.labels[int(label_ids[b, i, j])]) for i, j in spans] for b, spans in enumerate(trees)]
    assert task.decode(out, _mask(lengths.tolist())) == old


def test_bf16_autocast_loss_sums_log_z_and_gold_score_in_float32() -> None:
    """Under ``trainer.precision=bf16-mixed`` the span scores come out of the biaffine in bf16; the NLL
    log Z - score(gold) must still be formed in float32 from them (a bf16 gold sum loses ~1/256 of it)."""
    task = _task(n_mlp_span=16, n_mlp_label=8)
    decoder = task.build_decoder(10)
    for p in decoder.parameters():
        torch.nn.init.normal_(p, std=1.0)  # large scores: where a bf16 sum would be off by a lot
    batch = [TRAIN[1], TRAIN[0], TRAIN[4]]
    mask = _mask([len(s.words) for s in batch])
    hidden = torch.randn(3, mask.shape[1], 10, generator=torch.Generator().manual_seed(0))
    targets = task.targets(batch)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = decoder(hidden, mask)
        loss = task.loss(out, targets, mask)
    assert out["span"].dtype == torch.bfloat16 and loss.dtype == torch.float32
    as_fp32 = {**out, "span": out["span"].float()}  # the same bf16 values, summed in float32 by hand
    gold = targets["charts"] >= 0
    nll = inside(as_fp32["span"], out["lengths"]) - as_fp32["span"].masked_fill(~gold, 0).sum((1, 2))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected = task.loss(as_fp32, targets, mask)
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=1e-6)
    bf16_gold = out["span"].masked_fill(~gold, 0).sum((1, 2))  # what summing in bf16 would give
    assert bf16_gold.dtype == torch.bfloat16 and torch.isfinite(nll).all()


def test_inside_under_bf16_autocast_is_float32() -> None:
    scores = torch.randn(2, 6, 6, generator=torch.Generator().manual_seed(1)).bfloat16()
    lengths = torch.tensor([5, 3])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        log_z = inside(scores, lengths)
    assert log_z.dtype == torch.float32
    torch.testing.assert_close(log_z, inside(scores.float(), lengths), rtol=0, atol=0)
