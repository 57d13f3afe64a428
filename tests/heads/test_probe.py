"""The probe runner: known heads found, contexts through the gate hook, eager switch, sliding windows."""

from __future__ import annotations

import pytest
import torch
from test_probe_toys import (
    CON_CLASS,
    DEP_TARGET,
    NER_CLASS,
    POS_CLASS,
    SRL_TARGET,
    toy_bert,
    toy_con_sentences,
    toy_ner_sentences,
    toy_sentences,
)
from tiny_encoders import base_config, inputs, tiny_model
from transformers import AutoTokenizer, BertConfig, BertModel

from mtlheads.data.sentence import Sentence
from mtlheads.heads.gate import find_projections, install_head_gate
from mtlheads.heads.probe import ContextRecorder, eager_attention, probe_heads
from mtlheads.heads.probe_batches import Windowed, collate, tokenize_rows

L, H, D = 2, 4, 32


@pytest.fixture(scope="module")
def tokenizer(minilm_dir):
    return AutoTokenizer.from_pretrained(minilm_dir)


# kind -> (word classes, wired head, the head's (layer, head), arc targets)
TOYS = {
    "pos": (POS_CLASS, "value", (1, 2), None),
    "con": (CON_CLASS, "value", (0, 3), None),
    "ner": (NER_CLASS, "value", (1, 1), None),
    "dep": (POS_CLASS, "arc", (1, 1), DEP_TARGET),
    "srl": (POS_CLASS, "arc", (0, 2), SRL_TARGET),
}


@pytest.mark.parametrize("kind", sorted(TOYS))
def test_each_probe_finds_the_wired_head(tokenizer, kind):
    classes, role, (layer, head), target = TOYS[kind]
    model = toy_bert(tokenizer, classes, **{role: (layer, head)}, arc_target=target)
    sentences = {"ner": toy_ner_sentences, "con": toy_con_sentences}.get(kind, toy_sentences)()
    result = probe_heads(model, tokenizer, sentences, kind)
    assert result.shape == (2, 4) and result.counts.sum() > 0
    acc = result.accuracy.flatten(0, 1)  # (L·H, C)
    wired = layer * 4 + head
    assert acc[wired].tolist() == [1.0] * len(result.labels)  # right on every unit of every label
    # the only head right on everything, hence the best by weighted accuracy
    others = torch.cat([acc[:wired], acc[wired + 1 :]])
    assert (others.min(1).values < 1).all()
    assert result.summary()["best_weighted_head"] == {"layer": layer + 1, "head": head + 1, "accuracy": 1.0}
    if kind in ("dep", "srl"):  # self-attending heads never link two words: the best head of every label
        assert others.max() == 0
        assert [(r["layer"], r["head"]) for r in result.best_rows()] == [(layer + 1, head + 1)] * len(acc[0])
    if kind in ("pos", "ner", "con"):  # the wired value head reads each subword alone: windows change nothing
        windowed = probe_heads(model, tokenizer, sentences, kind, max_length=5, stride=1)
        assert windowed.meta["windowed_sentences"] > 0
        assert windowed.accuracy[layer, head].tolist() == [1.0] * len(result.labels)
    # any batching gives the same counts (one or two sentences per batch here)
    small = probe_heads(model, tokenizer, sentences, kind, max_tokens=10, chunk_units=3)
    assert small.meta["batches"] > 2 and torch.equal(small.correct, result.correct)


def _hand_contexts(model, batch: dict, names: tuple[str, str, str]) -> list[torch.Tensor]:
    """Per layer softmax(QKᵀ/√(d_h·f) + mask)V from the weights and the layer input, (B, T, H, d_h)."""
    hidden = model(**batch, output_hidden_states=True).hidden_states
    cfg, keep = model.config, batch["attention_mask"].bool()
    factor = 1 + sum(t in (getattr(cfg, "pos_att_type", None) or []) for t in ("c2p", "p2c"))
    out = []
    for layer, x in zip(model.encoder.layer, hidden, strict=False):
        att = layer.attention.self
        q, k, v = (
            getattr(att, n)(x).unflatten(-1, (H, D // H)).transpose(1, 2) for n in names
        )  # (B, H, T, d)
        scores = q @ k.transpose(-1, -2) / (D // H * factor) ** 0.5
        probs = scores.masked_fill(~keep[:, None, None, :], float("-inf")).softmax(-1)
        out.append((probs @ v).transpose(1, 2))
    return out


FAMILIES = {
    "bert": ({}, ("query", "key", "value")),
    "roberta": ({}, ("query", "key", "value")),
    "electra": ({"embedding_size": D}, ("query", "key", "value")),
    "deberta-v2": ({"relative_attention": False}, ("query_proj", "key_proj", "value_proj")),
}


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_hook_contexts_equal_softmax_qk_v_by_hand(family, impl):
    extra, names = FAMILIES[family]
    model = tiny_model(family, {**base_config(layers=L, heads=H, hidden=D), **extra}, impl=impl)
    batch, recorder = inputs(), ContextRecorder(num_layers=L, num_heads=H)
    with torch.no_grad(), install_head_gate(model, recorder):
        model(**batch)
        got = list(recorder.contexts)
    want = _hand_contexts(model, batch, names)
    real = batch["attention_mask"].bool()  # padded query rows are nobody's context
    for layer in range(L):
        assert got[layer].shape == (2, 7, H, D // H)
        torch.testing.assert_close(got[layer][real], want[layer][real], atol=1e-5, rtol=1e-4)


def test_hook_contexts_of_relative_deberta_equal_attention_times_values():
    config = {**base_config(layers=L, heads=H, hidden=D), "relative_attention": True}
    model = tiny_model("deberta-v2", {**config, "pos_att_type": ["p2c", "c2p"], "max_relative_positions": 16})
    batch, recorder = inputs(), ContextRecorder(num_layers=L, num_heads=H)
    with torch.no_grad(), install_head_gate(model, recorder):
        out = model(**batch, output_attentions=True, output_hidden_states=True)
    real = batch["attention_mask"].bool()
    for layer in range(L):
        v = model.encoder.layer[layer].attention.self.value_proj(out.hidden_states[layer])
        want = (out.attentions[layer] @ v.unflatten(-1, (H, D // H)).transpose(1, 2)).transpose(1, 2)
        torch.testing.assert_close(recorder.contexts[layer][real], want[real], atol=1e-5, rtol=1e-4)


def _tiny_bert(impl: str = "sdpa") -> BertModel:
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=30522, hidden_size=D, num_hidden_layers=L, num_attention_heads=H, intermediate_size=37
    )
    return BertModel._from_config(cfg, add_pooling_layer=False, attn_implementation=impl).eval()


def test_eager_switch_is_restored_even_after_an_error(tokenizer):
    model = _tiny_bert().train()
    seen = []
    hook = model.register_forward_pre_hook(lambda m, a: seen.append(m.config._attn_implementation))
    result = probe_heads(model, tokenizer, toy_sentences(), "dep")
    assert seen == ["eager"] and result.meta["attn_implementation"] == "sdpa"
    assert model.training  # the probe ran in eval mode and gave the mode back
    hook.remove()
    configs = [m.config for m in model.modules() if hasattr(m, "config")]
    assert all(c._attn_implementation == "sdpa" for c in configs)

    def boom(module, args):
        raise RuntimeError("boom")

    hook = model.register_forward_pre_hook(boom)
    with pytest.raises(RuntimeError, match="boom"):
        probe_heads(model, tokenizer, toy_sentences(), "srl")
    hook.remove()
    assert model.config._attn_implementation == "sdpa" and model.training
    with pytest.raises(RuntimeError, match="boom"), eager_attention(model):
        raise RuntimeError("boom")
    assert model.config._attn_implementation == "sdpa"
    assert not model._forward_pre_hooks and all(not p._forward_pre_hooks for _, p in find_projections(model))
    assert (
        probe_heads(_tiny_bert("eager"), tokenizer, toy_sentences(), "dep").meta["attn_implementation"]
        == "eager"
    )


def _centrality(window_codes: torch.Tensor, code: int) -> int:
    """Distance of ``code`` to the nearer edge of the window's content ([CLS] and [SEP] excluded)."""
    content = [int(c) for c in window_codes if c >= 0][1:-1]
    i = content.index(code)
    return min(i, len(content) - 1 - i)


def test_windows_read_each_subword_from_its_most_central_window(tokenizer):
    model = _tiny_bert()
    words = "the big dog sleeps quickly while the small xylophones run past an old cat".split()
    sentences = [Sentence(words=words), Sentence(words=words[:3])]
    batch = collate(tokenize_rows(tokenizer, sentences), tokenizer.pad_token_id)
    runner, recorder = (
        Windowed(model=model, max_length=8, stride=3),
        ContextRecorder(num_layers=L, num_heads=H),
    )
    with torch.no_grad(), install_head_gate(model, recorder):
        codes, src, _ = runner.encode(batch)
        contexts = list(recorder.contexts)
        B, T = batch["input_ids"].shape
        assert codes.shape[0] > 4 and codes.shape[1] <= 8  # several windows of at most 8 subwords
        for b in range(B):
            n = int(batch["attention_mask"][b].sum())
            for t in range(n):
                w, k = divmod(int(src[b, t]), codes.shape[1])
                assert int(codes[w, k]) == b * T + t  # the slot really holds this position
                if 0 < t < n - 1:  # content subwords: no window has it nearer its centre
                    holding = [v for v in range(codes.shape[0]) if (codes[v] == b * T + t).any()]
                    assert _centrality(codes[w], b * T + t) == max(
                        _centrality(codes[v], b * T + t) for v in holding
                    )
                # its context is the one the model gives that window alone
                ids = batch["input_ids"].view(-1)[codes[w][codes[w] >= 0]]
                alone = ContextRecorder(num_layers=L, num_heads=H)
                with install_head_gate(model, alone):
                    model(input_ids=ids.unsqueeze(0))
                for layer in range(L):
                    torch.testing.assert_close(
                        contexts[layer][w, k], alone.contexts[layer][0, k], atol=1e-5, rtol=0
                    )
    for kind in ("pos", "dep"):
        long = Sentence(
            words=words, pos=["X"] * len(words), heads=[0] + [1] * (len(words) - 1), rels=["r"] * len(words)
        )
        result = probe_heads(model, tokenizer, [long], kind, max_length=8, stride=3)
        assert result.meta["windowed_sentences"] == 1 and int(result.counts.sum()) == len(words)


@pytest.mark.parametrize("kind", ["pos", "dep"])
def test_probes_run_in_bfloat16(tokenizer, kind):
    classes, role, (layer, head), target = TOYS[kind]
    model = toy_bert(tokenizer, classes, **{role: (layer, head)}, arc_target=target).to(torch.bfloat16)
    result = probe_heads(model, tokenizer, toy_sentences(), kind)
    assert result.summary()["best_weighted_head"] == {"layer": layer + 1, "head": head + 1, "accuracy": 1.0}
