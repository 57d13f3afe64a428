"""The probe statistics against hand computations and brute-force loops over every unit and head."""

from __future__ import annotations

import pytest
import torch

from mtlheads.heads.probe_stats import (
    CentroidStats,
    add_correct,
    attention_argmax,
    dep_correct,
    span_means,
    srl_correct,
    word_attention,
)


def _probs(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).softmax(-1)


def test_word_attention_by_hand():
    # [CLS] w0a w0b w1 [SEP] pad: word 0 of the sentence has two subwords
    p = _probs(1, 2, 6, 6)
    root_word = torch.tensor([[0, 1, 1, 2, -1, -1]])
    src = torch.arange(6).view(1, 6)
    got = word_attention(p, src, root_word, root_word, 3)  # (1, 2, 3, 3)
    for k in range(2):
        a = p[0, k]
        keys = torch.stack([a[:, 0], a[:, 1] + a[:, 2], a[:, 3]], dim=1)  # key columns summed, (6, 3)
        want = torch.stack([keys[0], (keys[1] + keys[2]) / 2, keys[3]])  # query rows averaged
        torch.testing.assert_close(got[0, k], want)


def test_word_attention_reads_rows_from_windows_by_hand():
    # one sentence [CLS] a b c [SEP] (words 0, 1, 2 at ROOT-prefixed 1, 2, 3) cut into two windows of 4 slots:
    # window 0 = [CLS] a b [SEP], window 1 = [CLS] b c [SEP]; a reads window 0, b and c window 1
    p = _probs(2, 1, 4, 4, seed=1)
    slot_word = torch.tensor([[0, 1, 2, -1], [0, 2, 3, -1]])
    src = torch.tensor([[0, 1, 5, 6, 7]])  # flat slots w·4 + s; [SEP] (position 4) is not a word
    query_word = torch.tensor([[0, 1, 2, 3, -1]])
    got = word_attention(p, src, slot_word, query_word, 4)[0, 0]  # (4, 4)
    want = torch.zeros(4, 4)
    want[0, :3] = p[0, 0, 0, :3]  # [CLS] row from window 0: keys CLS, a, b
    want[1, :3] = p[0, 0, 1, :3]
    want[2, [0, 2, 3]] = p[1, 0, 1, :3]  # b's row from window 1: keys CLS, b, c (a is outside the window)
    want[3, [0, 2, 3]] = p[1, 0, 2, :3]
    torch.testing.assert_close(got, want)


def test_attention_argmax_stays_inside_each_sentence():
    attn = torch.zeros(2, 1, 4, 4)
    attn[1, 0, :, 3] = 1.0  # padding column of the shorter sentence 1 would win without the mask
    attn[1, 0, :, 1] = 0.5
    arg = attention_argmax(attn, torch.tensor([3, 2]))
    assert arg[1, 0, :3].tolist() == [1, 1, 1] and arg[0, 0].tolist() == [0, 0, 0, 0]


def test_span_means_equal_loop():
    words = torch.randn(2, 5, 3)
    units = torch.tensor([[0, 0, 0, 7], [0, 1, 3, 7], [1, 2, 4, 7], [1, 4, 4, 7]])
    want = torch.stack([words[b, s : e + 1].mean(0) for b, s, e, _ in units.tolist()])
    torch.testing.assert_close(span_means(words, units), want)


def _brute_force_centroids(x: torch.Tensor, labels: torch.Tensor, C: int) -> torch.Tensor:
    """(C, K) correct counts by explicit loops over heads, labels and units (float64)."""
    x = x.double()
    U, K, _ = x.shape
    correct = torch.zeros(C, K, dtype=torch.long)
    for k in range(K):
        cent = [sum(x[u, k] for u in range(U) if labels[u] == c) / int((labels == c).sum()) for c in range(C)]
        for u in range(U):
            cos = [float(x[u, k] @ cent[c] / (x[u, k].norm() * cent[c].norm())) for c in range(C)]
            if max(range(C), key=lambda c: (cos[c], -c)) == labels[u]:
                correct[labels[u], k] += 1
    return correct


@pytest.mark.parametrize("chunk_units", [1, 7, 10_000])
def test_nearest_centroid_equals_brute_force(tmp_path, chunk_units):
    g = torch.Generator().manual_seed(0)
    U, K, d, C = 60, 5, 4, 4
    labels = torch.cat([torch.arange(C), torch.randint(0, C, (U - C,), generator=g)])
    x = torch.randn(U, K, d, generator=g) + 0.7 * torch.randn(C, K, d, generator=g)[labels]  # label signal
    with CentroidStats(
        num_labels=C, num_heads=K, head_dim=d, spill_dir=tmp_path, chunk_units=chunk_units
    ) as s:
        for lo, hi in ((0, 25), (25, 26), (26, U)):  # three batches of different sizes
            s.add(x[lo:hi], labels[lo:hi])
        assert s.spill_bytes() == U * K * d * 4  # float32 on disk, not in memory
        correct, counts = s.finish()
    assert counts.tolist() == torch.bincount(labels, minlength=C).tolist()
    want = _brute_force_centroids(x, labels, C)
    assert 0 < int(want.sum()) < U * K  # neither trivial nor hopeless
    assert correct.tolist() == want.tolist()


def test_dep_correct_equals_loop():
    g = torch.Generator().manual_seed(2)
    argmax = torch.randint(0, 6, (3, 4, 6), generator=g)  # (B, K, N + 1)
    columns = [(0, 3), (1, 6), (0, 6), (0, 3)]  # sentence, dependent, head, label
    units = torch.stack([torch.randint(lo, hi, (40,), generator=g) for lo, hi in columns], 1)
    got = dep_correct(argmax, units)
    for u, (b, i, h, _) in enumerate(units.tolist()):
        for k in range(4):
            assert bool(got[u, k]) == (argmax[b, k, i] == h or argmax[b, k, h] == i)
    total = add_correct(torch.zeros(3, 4, dtype=torch.long), got, units[:, 3])
    assert total.sum() == got.sum() and total[1].tolist() == got[units[:, 3] == 1].sum(0).tolist()


def test_srl_correct_equals_loop():
    g = torch.Generator().manual_seed(3)
    argmax = torch.randint(0, 8, (2, 5, 8), generator=g)  # 7 words + ROOT
    rows = []
    for _ in range(50):
        b, p = int(torch.randint(0, 2, (1,), generator=g)), int(torch.randint(0, 7, (1,), generator=g))
        s = int(torch.randint(0, 7, (1,), generator=g))
        e = s + int(torch.randint(0, 7 - s, (1,), generator=g))
        rows.append((b, p, s, e, 0))
    units = torch.tensor(rows)
    got = srl_correct(argmax, units)
    for u, (b, p, s, e, _) in enumerate(rows):
        for k in range(5):
            want = any(argmax[b, k, i + 1] == p + 1 or argmax[b, k, p + 1] == i + 1 for i in range(s, e + 1))
            assert bool(got[u, k]) == want, (u, k)
    assert 0 < int(got.sum()) < got.numel()
    assert srl_correct(argmax, units[:0]).shape == (0, 5)
