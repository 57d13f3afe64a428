"""DEP task: ROOT targets, decoder masking, loss, decoding (argmax, MST/Eisner repair), metric, overfit."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from decoder_fit import overfit
from hydra import compose, initialize_config_dir
from hydra.errors import InstantiationException
from hydra.utils import instantiate

from mtlheads.data.sentence import Sentence
from mtlheads.launch.resolvers import CONF_DIR, register_resolvers
from mtlheads.tasks.biaffine import MLP, SharedDropout
from mtlheads.tasks.dep import DepMetric, DepTask, rel_scores
from mtlheads.tasks.eisner import eisner, is_projective_tree, tree_score
from mtlheads.tasks.mst import is_tree, mst

TRAIN = [
    Sentence(
        words=["She", "reads", "books", "."], heads=[2, 0, 2, 2], rels=["nsubj", "root", "obj", "punct"]
    ),
    Sentence(
        words=["The", "old", "man", "sat", "on", "chairs"],
        heads=[3, 3, 4, 0, 6, 4],
        rels=["det", "amod", "nsubj", "root", "case", "obl"],
    ),
    Sentence(words=["Go", "!"], heads=[0, 1], rels=["root", "punct"]),
]


def _mask(word_lengths: list[int]) -> torch.Tensor:
    """(B, 1+n) mask with ROOT at position 0."""
    lengths = torch.tensor(word_lengths) + 1
    return torch.arange(int(lengths.max()))[None, :] < lengths[:, None]


def _task(**kwargs) -> DepTask:
    task = DepTask(**kwargs)
    task.fit_vocab(TRAIN)
    return task


def test_vocab_and_json_roundtrip() -> None:
    task = _task()
    assert task.rels == sorted({"nsubj", "root", "obj", "punct", "det", "amod", "case", "obl"})
    assert (task.name, task.cls_is_root, task.main_metric) == ("dep", True, "las")
    other = DepTask()
    other.load_vocab_state(json.loads(json.dumps(task.vocab_state())))
    assert other.rels == task.rels


def test_targets_put_root_at_position_zero() -> None:
    task = _task()
    batch = [TRAIN[2], Sentence(words=["a", "b", "c"], heads=[0, 1, 2], rels=["root", "dep", "punct"])]
    t = task.targets(batch)
    assert t["heads"].tolist() == [[-100, 0, 1, -100], [-100, 0, 1, 2]]
    ri = task.rels.index
    assert t["rels"].tolist() == [
        [-100, ri("root"), ri("punct"), -100],
        [-100, ri("root"), task.unk_index, ri("punct")],
    ]


def test_decoder_layers_and_padding_heads_masked() -> None:
    task = _task()
    decoder = task.build_decoder(12)
    mlps = [m for m in decoder.modules() if isinstance(m, MLP)]
    assert sorted(m.linear.out_features for m in mlps) == [100, 100, 500, 500]
    assert all(m.dropout.p == 0.33 and isinstance(m.dropout, SharedDropout) for m in mlps)
    w = mlps[0].linear.weight  # orthogonal init: rows or columns orthonormal
    small = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
    assert torch.allclose(small, torch.eye(small.shape[0]), atol=1e-4)
    assert decoder.arc_attn.weight.shape == (1, 501, 500) and decoder.rel_attn.weight.shape == (8, 101, 101)
    out = decoder(torch.randn(2, 5, 12), _mask([4, 2]))
    assert out["arc"].shape == (2, 5, 5) and rel_scores(out).shape == (2, 5, 5, 8)
    assert torch.isinf(out["arc"][1, :, 3:]).all() and torch.isfinite(out["arc"][1, :, :3]).all()


def test_shared_dropout_reuses_one_mask_per_sequence() -> None:
    drop = SharedDropout(p=0.5).train()
    y = drop(torch.ones(3, 7, 20))
    assert (y == y[:, :1, :]).all() and (y == 0).any()
    assert torch.equal(drop.eval()(torch.ones(2, 3, 4)), torch.ones(2, 3, 4))


def test_loss_is_arc_plus_rel_ce_over_words_including_punctuation() -> None:
    task = _task()
    torch.manual_seed(0)
    batch = [TRAIN[2], TRAIN[0]]
    mask = _mask([2, 4])
    s_arc = torch.randn(2, 5, 5).masked_fill(~mask[:, None, :], float("-inf"))
    s_rel = torch.randn(2, 5, 5, len(task.rels))
    loss = task.loss({"arc": s_arc, "rel": s_rel}, task.targets(batch), mask)
    arc_terms, rel_terms = [], []
    for b, sent in enumerate(batch):
        for i, (h, r) in enumerate(
            zip(sent.heads, sent.rels, strict=True), start=1
        ):  # punctuation "!" and "." included
            arc_terms.append(-torch.log_softmax(s_arc[b, i], -1)[h])
            rel_terms.append(-torch.log_softmax(s_rel[b, i, h], -1)[task.rels.index(r)])
    expected = torch.stack(arc_terms).mean() + torch.stack(rel_terms).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_loss_with_unknown_relation_is_finite() -> None:
    task = _task()
    batch = [Sentence(words=["x", "y"], heads=[0, 1], rels=["root", "weird"])]
    out = task.build_decoder(6)(torch.randn(1, 3, 6), _mask([2]))
    assert torch.isfinite(task.loss(out, task.targets(batch), _mask([2])))


def _scores_for(heads_per_sentence: list[list[int]], n_max: int, n_rels: int) -> dict[str, torch.Tensor]:
    """Arc scores whose argmax is the given heads (and relation = dependent index mod n_rels)."""
    b = len(heads_per_sentence)
    s_arc = torch.zeros(b, n_max + 1, n_max + 1)
    s_rel = torch.zeros(b, n_max + 1, n_max + 1, n_rels)
    for i, heads in enumerate(heads_per_sentence):
        for d, h in enumerate(heads, start=1):
            s_arc[i, d, h] = 10.0
            s_rel[i, d, :, d % n_rels] = 1.0
    return {"arc": s_arc, "rel": s_rel}


def test_decode_lengths_with_padding_and_labels_at_predicted_head() -> None:
    task = _task()
    heads = [[2, 0, 2, 2], [0], [2, 0]]
    out = _scores_for(heads, 4, len(task.rels))
    mask = _mask([4, 1, 2])
    out["arc"] = out["arc"].masked_fill(~mask[:, None, :], float("-inf"))
    out["rel"][0, 1, 3, :] = 0.0
    out["rel"][0, 1, 3, 5] = 9.0  # a better label on a head that is not predicted: ignored
    preds = task.decode(out, mask, final=False)
    assert [p[0] for p in preds] == heads
    assert [len(p[1]) for p in preds] == [4, 1, 2]
    assert preds[0][1] == [task.rels[d % len(task.rels)] for d in range(1, 5)]


def test_final_decode_repairs_only_ill_formed_sentences() -> None:
    good, crossing, two_roots = [2, 0, 2, 2], [3, 4, 0, 3], [0, 0, 2]
    out = _scores_for([good, crossing, two_roots], 4, len(TRAIN))
    out["arc"] += 0.01 * torch.randn(out["arc"].shape, generator=torch.Generator().manual_seed(0))
    mask = _mask([4, 4, 3])
    out["arc"] = out["arc"].masked_fill(~mask[:, None, :], float("-inf"))
    eisner_task, mst_task = _task(decoder="eisner"), _task()
    assert mst_task.decoder == "mst"  # the default
    argmax = mst_task.decode(out, mask, final=False)
    assert [p[0] for p in argmax] == [good, crossing, two_roots]
    # Eisner repairs the non-projective sentence too; MST keeps it, a well-formed tree
    final = eisner_task.decode(out, mask, final=True)
    assert final[0][0] == good
    for b, n in ((1, 4), (2, 3)):
        expected = eisner(out["arc"][b, : n + 1, : n + 1].T.numpy().astype(np.float64))[1:].tolist()
        assert final[b][0] == expected and is_projective_tree(expected)
    final = mst_task.decode(out, mask, final=True)
    assert [final[0][0], final[1][0]] == [good, crossing]
    expected = mst(out["arc"][2, :4, :4].T.numpy().astype(np.float64))[1:].tolist()
    assert final[2][0] == expected and is_tree(expected) and expected != two_roots
    assert DepTask(single_root=False).single_root is False


def test_mst_decoding_recovers_a_non_projective_tree_eisner_cannot() -> None:
    # "A hearing is scheduled on the issue today": "on the issue" modifies "hearing" across the verb, and
    # the argmax also attaches "is" to ROOT (two ROOT children), so final decoding must repair it.
    gold = [2, 4, 4, 0, 7, 7, 2, 4]
    assert is_tree(gold) and not is_projective_tree(gold)
    n = len(gold)
    s_arc = torch.full((2, n + 1, n + 1), -5.0)  # (B, dependent, head)
    for d, h in enumerate(gold, start=1):
        s_arc[0, d, h] = 5.0
    s_arc[0, 3, 0] = 6.0
    for d, h in enumerate([2, 0, 2], start=1):  # a padded 3-word sentence in the same batch
        s_arc[1, d, h] = 5.0
    s_arc[1, :, 4:] = float("-inf")
    out = {"arc": s_arc, "rel": torch.zeros(2, n + 1, n + 1, len(TRAIN))}
    mask = _mask([n, 3])
    mst_task, eisner_task = _task(decoder="mst"), _task(decoder="eisner")
    assert mst_task.decode(out, mask, final=False)[0][0] != gold  # the argmax is not a tree
    mst_heads = mst_task.decode(out, mask, final=True)[0][0]
    eisner_heads = eisner_task.decode(out, mask, final=True)[0][0]
    assert mst_heads == gold
    assert eisner_heads != gold and is_projective_tree(eisner_heads)
    scores = s_arc[0].T.double().numpy()  # (head, dependent)
    assert tree_score(scores, eisner_heads) < tree_score(scores, gold)
    # the public helper decodes one sentence with either decoder, whatever the task's own choice
    assert mst_task.tree_heads(s_arc[0], decoder="eisner").tolist() == eisner_heads
    assert eisner_task.tree_heads(s_arc[0], decoder="mst").tolist() == gold
    assert eisner_task.tree_heads(s_arc[0]).tolist() == eisner_heads
    for task in (mst_task, eisner_task):  # the short sentence's well-formed argmax is kept
        assert task.decode(out, mask, final=True)[1][0] == [2, 0, 2]


def test_bad_decoder_names_the_config_key() -> None:
    with pytest.raises(ValueError, match=r"tasks\.dep\.task\.decoder must be 'mst' or 'eisner', got 'cle'"):
        DepTask(decoder="cle")
    with pytest.raises(ValueError, match=r"tasks\.dep\.task\.decoder"):
        _task().tree_heads(torch.zeros(3, 3), decoder="Eisner")
    register_resolvers()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        default = compose("config", overrides=["taskset=dep"])
        bad = compose("config", overrides=["taskset=dep", "tasks.dep.task.decoder=edmonds"])
    assert instantiate(default.tasks.dep.task).decoder == "mst"
    with pytest.raises(InstantiationException, match=r"tasks\.dep\.task\.decoder .* got 'edmonds'"):
        instantiate(bad.tasks.dep.task)  # what a run with that override meets: Hydra wraps the ValueError


def test_metric_excludes_punctuation_tokens() -> None:
    metric = DepMetric()
    gold = [
        Sentence(
            words=["She", "reads", ",", "books", "..."],
            heads=[2, 0, 2, 2, 2],
            rels=["nsubj", "root", "punct", "obj", "punct"],
        ),
    ]
    # She: right head, wrong label; reads: right; ",": wrong (ignored); books: wrong head; "...": ignored
    preds = [([2, 0, 1, 1, 4], ["obj", "root", "x", "obj", "x"])]
    metric.update(preds, gold)
    assert metric.compute() == {"uas": pytest.approx(2 / 3), "las": pytest.approx(1 / 3)}


def test_overfits_a_tiny_batch() -> None:
    torch.manual_seed(0)
    task = _task()
    decoder = task.build_decoder(16)
    lengths = [len(s.words) for s in TRAIN]
    hidden = torch.randn(len(TRAIN), 1 + max(lengths), 16)
    mask = _mask(lengths)
    first, last = overfit(task, decoder, hidden, mask, TRAIN, lr=2e-3, steps=150)
    assert math.isfinite(last) and last < first / 10
    metric = task.new_metric()
    with torch.no_grad():
        preds = task.decode(decoder(hidden, mask), mask, final=True)
    assert [p[0] for p in preds] == [s.heads for s in TRAIN]
    assert [p[1] for p in preds] == [s.rels for s in TRAIN]
    metric.update(preds, TRAIN)
    assert metric.compute() == {"uas": 1.0, "las": 1.0}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_runs_on_the_hidden_device() -> None:
    task = _task()
    decoder = task.build_decoder(8).cuda()
    mask = _mask([len(s.words) for s in TRAIN]).cuda()
    out = decoder(torch.randn(3, mask.shape[1], 8, device="cuda"), mask)
    loss = task.loss(out, task.targets(TRAIN), mask)  # CPU targets are moved to the scores' device
    assert loss.device.type == "cuda" and torch.isfinite(loss)
    preds = task.decode(out, mask, final=True)
    assert [len(h) for h, _ in preds] == [len(s.words) for s in TRAIN]
