"""Word tokenisation, pooling, word dropout and the sliding window, on a tiny random BERT."""

from __future__ import annotations

import random

import pytest
import torch
from transformers import AutoConfig, AutoModel, BertConfig, BertModel, BertTokenizer

from mtlheads.encoder.word_encoder import WordEncoder, _per_word, default_max_length, tokenize_words
from mtlheads.heads.gate import HeadGate, install_head_gate

VOCAB = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    "the",
    "cat",
    "sat",
    "on",
    "mat",
    "un",
    "##believ",
    "##able",
    "a",
    "##s",
    ".",
    ",",
    "dog",
    "run",
    "##ning",
    "fast",
    "big",
]
WORDS = [
    "the",
    "cat",
    "cats",
    "sat",
    "on",
    "a",
    "mat",
    "unbelievable",
    "dog",
    "running",
    "fast",
    "big",
    ".",
    ",",
    "zzz",
]
SPECIAL = [0, 1, 2, 3, 4]


@pytest.fixture(scope="module")
def tokenizer():
    return BertTokenizer(vocab={w: i for i, w in enumerate(VOCAB)})


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    cfg = BertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        vocab_size=len(VOCAB),
    )
    return BertModel(cfg).eval()


def encoder(model, tokenizer, **kw) -> WordEncoder:
    return WordEncoder.from_tokenizer(model=model, tokenizer=tokenizer, **kw).eval()


def sentences(n: int, lo: int = 1, hi: int = 9, seed: int = 0) -> list[list[str]]:
    rng = random.Random(seed)
    return [[rng.choice(WORDS) for _ in range(rng.randint(lo, hi))] for _ in range(n)]


def test_tokenize_words_indices(tokenizer):
    batch = tokenize_words(tokenizer, [["the", "unbelievable", "cats"], ["a"]])
    assert batch["input_ids"].tolist() == [[2, 5, 10, 11, 12, 6, 14, 3], [2, 13, 3, 0, 0, 0, 0, 0]]
    assert batch["word_index"].tolist() == [[-1, 0, 1, 1, 1, 2, 2, -1], [-1, 0, -1, -1, -1, -1, -1, -1]]
    assert batch["attention_mask"].sum(1).tolist() == [8, 3]
    assert batch["token_type_ids"].shape == (2, 8)


def test_word_without_subword_becomes_unk(tokenizer):
    words = ["the", "\u200b", "", "cat"]
    batch = tokenize_words(tokenizer, [words])
    assert batch["input_ids"][0].tolist() == [2, 5, 1, 1, 6, 3]
    assert batch["word_index"][0].tolist() == [-1, 0, 1, 2, 3, -1]
    ids, wid = _per_word(tokenizer, words)  # the slow-tokenizer path agrees
    assert (ids, wid) == ([2, 5, 1, 1, 6, 3], [-1, 0, 1, 2, 3, -1])


def test_per_word_path_matches_fast_path(tokenizer):
    batch = sentences(6)
    fast = tokenize_words(tokenizer, batch)
    for b, words in enumerate(batch):
        ids, wid = _per_word(tokenizer, words)
        assert fast["input_ids"][b, : len(ids)].tolist() == ids
        assert fast["word_index"][b, : len(ids)].tolist() == wid


@pytest.mark.parametrize("pooling", ["mean", "first", "last"])
def test_pooling_matches_a_loop(model, tokenizer, pooling):
    batch_words = sentences(5)
    batch = tokenize_words(tokenizer, batch_words)
    words, mask = encoder(model, tokenizer, pooling=pooling)(batch)
    hidden = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        token_type_ids=batch["token_type_ids"],
    ).last_hidden_state
    N = max(map(len, batch_words))
    assert words.shape == (5, N, 32) and mask.shape == (5, N) and mask.dtype == torch.bool
    assert mask.sum(1).tolist() == [len(s) for s in batch_words]
    for b, sent in enumerate(batch_words):
        for w in range(len(sent)):
            pos = (batch["word_index"][b] == w).nonzero().squeeze(1).tolist()
            ref = {"mean": hidden[b, pos].mean(0), "first": hidden[b, pos[0]], "last": hidden[b, pos[-1]]}
            torch.testing.assert_close(words[b, w], ref[pooling])
        assert not words[b, len(sent) :].any()


def test_cls_is_root(model, tokenizer):
    batch_words = [["the", "cat"], ["a", "big", "dog", "sat"]]
    batch = tokenize_words(tokenizer, batch_words)
    enc = encoder(model, tokenizer)
    plain, plain_mask = enc(batch)
    words, mask = enc(batch, cls_is_root=True)
    assert words.shape == (2, 5, 32) and mask.tolist() == [[True] * 3 + [False] * 2, [True] * 5]
    torch.testing.assert_close(words[:, 1:], plain)
    hidden = model(**{k: v for k, v in batch.items() if k != "word_index"}).last_hidden_state
    torch.testing.assert_close(words[:, 0], hidden[:, 0])
    assert enc.hidden_size == 32


def test_word_dropout(model, tokenizer):
    seen = []
    hook = model.register_forward_pre_hook(lambda m, a, kw: seen.append(kw["input_ids"]), with_kwargs=True)
    batch = tokenize_words(tokenizer, sentences(64, 20, 40, seed=1))
    enc = WordEncoder.from_tokenizer(model=model, tokenizer=tokenizer, word_dropout=0.2).train()
    torch.manual_seed(0)
    enc(batch)
    enc.eval()
    enc(batch)
    hook.remove()
    model.eval()
    ids, dropped = batch["input_ids"], seen[0]
    eligible = (batch["word_index"] >= 0) & (ids != 1)  # real subwords that are not [UNK]
    changed = dropped != ids
    assert bool((dropped[changed] == 4).all()) and not bool(changed[~eligible].any())
    rate = changed.sum() / eligible.sum()
    assert 0.17 < rate < 0.23, rate
    assert torch.equal(seen[1], ids)  # eval: untouched


def test_sliding_window_matches_single_window(model, tokenizer):
    short, long = sentences(1, 4, 4, seed=2)[0], sentences(1, 60, 60, seed=3)[0]
    batch = tokenize_words(tokenizer, [short, long])
    windowed = encoder(model, tokenizer, max_length=16)
    words, mask = windowed(batch, cls_is_root=True)
    assert words.shape == (2, 61, 32) and mask.sum(1).tolist() == [5, 61]
    plain, _ = encoder(model, tokenizer)(tokenize_words(tokenizer, [short]), cls_is_root=True)
    torch.testing.assert_close(words[0, :5], plain[0], atol=1e-5, rtol=0)

    # brute force: every subword of the long sentence comes from a window where it is most central
    ids = batch["input_ids"][1, : int(batch["attention_mask"][1].sum())]
    content, C, S = ids[1:-1], 14, windowed.stride
    hidden = windowed._run_windows(
        batch["input_ids"], batch["attention_mask"], batch["token_type_ids"], batch["word_index"]
    )[1]
    starts = sorted({*range(0, len(content) - C, S), len(content) - C})
    outs = [
        model(input_ids=torch.cat([ids[:1], content[s : s + C], ids[-1:]])[None]).last_hidden_state[0]
        for s in starts
    ]
    torch.testing.assert_close(hidden[0], outs[0][0])  # [CLS] from the first window
    torch.testing.assert_close(hidden[len(ids) - 1], outs[-1][-1])  # [SEP] from the last one
    for p in range(len(content)):
        cand = {s: min(p - s, s + C - 1 - p) for s in starts if s <= p < s + C}
        best = max(cand.values())
        assert any(
            torch.allclose(hidden[1 + p], outs[starts.index(s)][1 + p - s], atol=1e-5)
            for s, v in cand.items()
            if v == best
        ), p


def test_sliding_window_backward_and_one_gate_sample(model, tokenizer):
    class Counting(HeadGate):
        def __init__(self):
            super().__init__(num_layers=2, num_heads=4)
            self.calls = 0

        def forward(self):
            self.calls += 1
            return torch.ones(2, 4)

    gate = Counting()
    enc = encoder(model, tokenizer, max_length=16)
    with install_head_gate(model, gate):
        words, _ = enc(tokenize_words(tokenizer, sentences(3, 30, 50, seed=4)))
    words.sum().backward()
    assert gate.calls == 1 and model.embeddings.word_embeddings.weight.grad is not None
    model.zero_grad(set_to_none=True)


def test_1500_words_tiny_model(model, tokenizer):
    enc = encoder(model, tokenizer)
    assert enc.max_length == 512
    batch = tokenize_words(tokenizer, sentences(1, 1500, 1500, seed=5))
    assert batch["input_ids"].shape[1] > 512
    words, mask = enc(batch)
    assert words.shape == (1, 1500, 32) and bool(mask.all()) and bool(torch.isfinite(words).all())


def test_default_max_length_and_errors(model, tokenizer):
    roberta = AutoModel.from_config(
        AutoConfig.for_model(
            "roberta",
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=4,
            intermediate_size=37,
            vocab_size=50,
            max_position_embeddings=514,
        )
    )
    assert default_max_length(roberta) == 512 and default_max_length(model) == 512
    with pytest.raises(ValueError, match="pooling"):
        encoder(model, tokenizer, pooling="max")


@pytest.mark.slow
def test_1500_words_real_minilm():
    from mtlheads.encoder.load import load_encoder

    minilm, tok = load_encoder("minilm")
    enc = WordEncoder.from_tokenizer(model=minilm, tokenizer=tok).eval()
    rng = random.Random(0)
    words = [
        rng.choice(["the", "running", "unbelievable", "dog", "Kalamazoo", ",", "ä", "\u200b"])
        for _ in range(1500)
    ]
    with torch.no_grad():
        out, mask = enc(tokenize_words(tok, [words, words[:10]]), cls_is_root=True)
        short, _ = enc(tokenize_words(tok, [words[:10]]), cls_is_root=True)
    assert out.shape == (2, 1501, 384) and mask.sum(1).tolist() == [1501, 11]
    torch.testing.assert_close(out[1, :11], short[0], atol=1e-5, rtol=0)


def test_sep_is_eos_puts_the_sep_vector_after_each_sentences_last_word(minilm_dir):
    from transformers import AutoTokenizer, BertConfig, BertModel

    from mtlheads.encoder.word_encoder import WordEncoder, tokenize_words

    torch.manual_seed(0)
    bert = BertModel(
        BertConfig(
            vocab_size=30522, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
        )
    ).eval()
    tok = AutoTokenizer.from_pretrained(minilm_dir)
    enc = WordEncoder.from_tokenizer(model=bert, tokenizer=tok).eval()
    batch = tokenize_words(tok, [["a", "tiny", "sentence"], ["short"]])
    hidden = bert(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    words, mask = enc(batch, cls_is_root=True, sep_is_eos=True)
    plain, _ = enc(batch, cls_is_root=True)
    assert words.shape[1] == plain.shape[1] + 1
    assert mask.tolist() == [[True] * 5, [True, True, True, False, False]]
    for b, n in enumerate((3, 1)):
        sep = int(batch["attention_mask"][b].sum()) - 1
        torch.testing.assert_close(words[b, n + 1], hidden[b, sep])
        torch.testing.assert_close(words[b, : n + 1], plain[b, : n + 1])
        assert not words[b, n + 2 :].any()
