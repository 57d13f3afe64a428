"""Biaffine scorer: the chunked two-matmul form against the einsum it replaced, scores and decodings."""

from __future__ import annotations

import pytest
import torch

from mtlheads.data.sentence import Sentence
from mtlheads.tasks import biaffine
from mtlheads.tasks.biaffine import Biaffine, bilinear_scores
from mtlheads.tasks.con import ConTask
from mtlheads.tasks.dep import DepTask
from mtlheads.tasks.ner import NerTask


def einsum_forward(self: Biaffine, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The replaced ``Biaffine.forward`` (reference): one three-operand einsum."""
    if self.bias_x:
        x = torch.cat((x, torch.ones_like(x[..., :1])), -1)
    if self.bias_y:
        y = torch.cat((y, torch.ones_like(y[..., :1])), -1)
    return torch.einsum("bxi,oij,byj->boxy", x, self.weight, y)


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("chunk", [1 << 21, 300, 1])  # one chunk, a few, one output channel per chunk
@pytest.mark.parametrize(
    "shape",
    [(3, 5, 7, 4, 6, 6), (2, 4, 4, 1, 9, 8), (4, 6, 6, 13, 11, 11), (1, 1, 1, 1, 2, 2), (0, 3, 3, 2, 4, 4)],
)
def test_scores_and_gradients_equal_the_einsum(monkeypatch, shape, chunk) -> None:
    monkeypatch.setattr(biaffine, "CHUNK_ELEMENTS", chunk)
    B, N, M, O, I, J = shape
    g = torch.Generator().manual_seed(sum(shape) + chunk)
    x, y = torch.randn(B, N, I, generator=g), torch.randn(B, M, J, generator=g)
    w = torch.randn(O, I, J, generator=g)
    grads = []
    for fn in (bilinear_scores, lambda a, b, c: torch.einsum("bxi,oij,byj->boxy", a, b, c)):
        xs, ws, ys = (t.clone().requires_grad_(True) for t in (x, w, y))
        s = fn(xs, ws, ys)
        assert s.shape == (B, O, N, M)
        (s * torch.arange(s.numel(), dtype=s.dtype).view(s.shape).sin()).sum().backward()
        grads.append((s.detach(), xs.grad, ws.grad, ys.grad))
    for new, ref in zip(*grads, strict=True):
        torch.testing.assert_close(new, ref, rtol=1e-5, atol=1e-5)


def test_real_batch_shapes_are_bitwise_equal() -> None:
    """At CON/DEP training shapes (64 sentences, 120 or 51 labels, 101-dim) the matmuls are the einsum's."""
    g = torch.Generator().manual_seed(0)
    for B, N, O, I in [(64, 20, 120, 101), (64, 40, 51, 101), (64, 21, 1, 501)]:
        x, y = torch.randn(B, N, I, generator=g), torch.randn(B, N, I - (I == 501), generator=g)
        w = torch.randn(O, I, y.shape[-1], generator=g)
        assert torch.equal(bilinear_scores(x, w, y), torch.einsum("bxi,oij,byj->boxy", x, w, y))


def _randomised(decoder: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random weights everywhere (the biaffines start at zero: every score would tie)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in decoder.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return decoder.eval()


def _mask(lengths: list[int], extra: int) -> torch.Tensor:
    n = torch.tensor(lengths) + extra
    return torch.arange(int(n.max()))[None, :] < n[:, None]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_decodings_equal_the_einsum_decoders(monkeypatch, seed) -> None:
    """DEP heads/relations, CON trees/labels and NER spans decoded from the new scores are the old ones."""
    words = [["w"] * n for n in (7, 3, 12, 1, 9)]
    dep = DepTask()
    dep.set_labels([f"r{i}" for i in range(9)])
    con = ConTask(hidden_has_sep=False)
    con.set_labels([f"L{i}" for i in range(17)])
    ner = NerTask()
    ner.set_labels(["<null>", "PER", "ORG", "LOC"])
    lengths = [len(w) for w in words]
    g = torch.Generator().manual_seed(100 + seed)
    for task, extra in ((dep, 1), (con, 1), (ner, 0)):
        decoder = _randomised(task.build_decoder(16), seed)
        mask = _mask(lengths, extra)
        hidden = torch.randn(len(words), mask.shape[1], 16, generator=g)
        with torch.no_grad():
            new = [task.decode(decoder(hidden, mask), mask, final=f) for f in (False, True)]
            monkeypatch.setattr(Biaffine, "forward", einsum_forward)
            old = [task.decode(decoder(hidden, mask), mask, final=f) for f in (False, True)]
            monkeypatch.undo()
        assert new == old, task.name
        assert any(p for p in new[0]) or task.name == "ner"


def test_ner_decoding_on_sentences_with_entities(monkeypatch) -> None:
    ner = NerTask()
    ner.fit_vocab([Sentence(words=["a", "b"], entities=[(0, 0, "PER"), (1, 1, "LOC")])])
    decoder = _randomised(ner.build_decoder(8), 5)
    with torch.no_grad():
        decoder.biaffine.weight[1:] += 2.0  # enough non-null spans to decode
    mask = _mask([6, 4], 0)
    hidden = torch.randn(2, 6, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        new = ner.decode(decoder(hidden, mask), mask)
        monkeypatch.setattr(Biaffine, "forward", einsum_forward)
        old = ner.decode(decoder(hidden, mask), mask)
    assert new == old and any(new)


@pytest.mark.parametrize("full_ratio", [0, 1000])  # the gathered path, the full path
@pytest.mark.parametrize("chunk", [1 << 21, 200])
def test_pair_scores_at_equal_full_scores_with_gradients(monkeypatch, chunk, full_ratio) -> None:
    """``at`` (the training losses' path) gives the entries of ``full`` and the same gradients."""
    monkeypatch.setattr(biaffine, "CHUNK_ELEMENTS", chunk)
    monkeypatch.setattr(biaffine, "FULL_PAIRS_PER_PAIR", full_ratio)
    g = torch.Generator().manual_seed(chunk)
    layer = Biaffine(n_in=6, n_out=5)
    with torch.no_grad():
        layer.weight.normal_(generator=g)
    x, y = torch.randn(3, 7, 6, generator=g), torch.randn(3, 7, 6, generator=g)
    b = torch.tensor([0, 0, 1, 2, 2, 2, 1])
    i = torch.tensor([0, 0, 3, 6, 1, 1, 3])  # repeated left positions
    j = torch.tensor([1, 5, 3, 0, 2, 6, 4])
    weights = torch.randn(7, 5, generator=g)
    grads = []
    for take in ("at", "full"):
        layer.zero_grad()
        xs, ys = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
        pairs = layer.pairs(xs, ys)
        s = pairs.at(b, i, j) if take == "at" else pairs.full().permute(0, 2, 3, 1)[b, i, j]
        (s * weights).sum().backward()
        grads.append((s.detach(), xs.grad, ys.grad, layer.weight.grad.clone()))
    for new, ref in zip(*grads, strict=True):
        torch.testing.assert_close(new, ref, rtol=1e-5, atol=1e-5)
    empty = layer.pairs(x, y).at(*(torch.zeros(0, dtype=torch.long) for _ in range(3)))
    assert empty.shape == (0, 5)


def test_dep_and_con_losses_equal_the_full_tensor_losses() -> None:
    """The losses from gold pairs only equal the losses over the full relation/label tensors."""
    dep = DepTask()
    dep.fit_vocab([Sentence(words=["a", "b", "c"], heads=[2, 0, 2], rels=["x", "root", "y"])])
    con = ConTask(hidden_has_sep=False)
    con.fit_vocab(
        [Sentence(words=["a", "b", "c"], pos=["D", "N", "V"], tree="(TOP (S (NP (D a) (N b)) (V c)))")]
    )
    batch_dep = [
        Sentence(words=["a", "b", "c"], heads=[2, 0, 2], rels=["x", "root", "y"]),
        Sentence(words=["a", "b"], heads=[0, 1], rels=["root", "zz"]),  # an unknown relation
    ]
    batch_con = [
        Sentence(words=["a", "b", "c"], pos=["D", "N", "V"], tree="(TOP (S (NP (D a) (N b)) (V c)))"),
        Sentence(words=["a", "b"], pos=["D", "N"], tree="(TOP (NP (D a) (N b)))"),
    ]
    mask = _mask([3, 2], 1)
    for task, batch in ((dep, batch_dep), (con, batch_con)):
        decoder = _randomised(task.build_decoder(8), 11).train()
        hidden = torch.randn(2, 4, 8, generator=torch.Generator().manual_seed(2))
        torch.manual_seed(0)
        out = decoder(hidden, mask)
        full = dict(out)
        pairs = out["rel_pairs"] if task is dep else out["label_pairs"]
        scores = pairs.full().permute(0, 2, 3, 1)
        key = "rel" if task is dep else "label"
        full[key] = scores
        full.pop("rel_pairs" if task is dep else "label_pairs")
        targets = task.targets(batch)
        torch.testing.assert_close(task.loss(out, targets, mask), task.loss(full, targets, mask))


@pytest.mark.parametrize("seed", [0, 1])
def test_decoding_bf16_mixed_outputs(seed) -> None:
    """Outputs made under bf16 autocast decode (inside or after the autocast region) to what their float32
    copies decode to: no decoder hands bf16 to numpy or mixes bf16 factors with float32 weights."""
    from mtlheads.tasks.pos import PosTask
    from mtlheads.tasks.srl import SrlTask

    words = [["w"] * n for n in (7, 3, 12, 1, 9)]
    pos, dep, con, ner, srl = PosTask(), DepTask(), ConTask(hidden_has_sep=False), NerTask(), SrlTask()
    pos.set_labels(["A", "B", "C"])
    dep.set_labels([f"r{i}" for i in range(9)])
    con.set_labels([f"L{i}" for i in range(17)])
    ner.set_labels(["<null>", "PER", "ORG", "LOC"])
    srl.set_labels(["<null>", "ARG0", "ARG1", "ARGM-TMP"])
    lengths = [len(w) for w in words]
    g = torch.Generator().manual_seed(200 + seed)
    for task, extra in ((pos, 0), (dep, 1), (con, 1), (ner, 0), (srl, 0)):
        decoder = _randomised(task.build_decoder(16), seed)
        mask = _mask(lengths, extra)
        hidden = torch.randn(len(words), mask.shape[1], 16, generator=g)
        with torch.inference_mode():
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = decoder(hidden, mask)
                inside = [task.decode(out, mask, final=f) for f in (False, True)]
            after = [task.decode(out, mask, final=f) for f in (False, True)]
        assert inside == after, task.name
