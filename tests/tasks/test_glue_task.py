import pytest
import torch
from transformers import AutoTokenizer

from mtlheads.data.glue_reader import GlueExample
from mtlheads.encoder.word_encoder import tokenize_pairs
from mtlheads.tasks.glue import GlueTask


def ex(a, b, label):
    return GlueExample(text_a=a, text_b=b, label=label, source="x:1", guid="0")


def test_pairs_use_the_models_own_format(minilm_dir):
    tok = AutoTokenizer.from_pretrained(minilm_dir)
    enc = tokenize_pairs(tok, ["a cat", "dogs bark loudly"], ["it sleeps", "no"], max_length=512)
    ids = enc["input_ids"][0][enc["attention_mask"][0].bool()].tolist()
    assert tok.convert_ids_to_tokens(ids) == ["[CLS]", "a", "cat", "[SEP]", "it", "sleeps", "[SEP]"]
    assert enc["token_type_ids"][0, :7].tolist() == [0, 0, 0, 0, 1, 1, 1]
    assert (enc["word_index"] == -1).all()
    long = tokenize_pairs(tok, ["word " * 400], ["word " * 400], max_length=128)
    assert long["input_ids"].shape[1] == 128


def test_classification_targets_loss_decode():
    task = GlueTask(name="rte")
    batch = [ex("a", "b", "entailment"), ex("c", "d", "not_entailment")]
    targets = task.targets(batch)
    assert targets["labels"].tolist() == [
        task.labels.index("entailment"),
        task.labels.index("not_entailment"),
    ]
    dec = task.build_decoder(8)
    hidden = torch.randn(2, 1, 8)
    out = dec(hidden)
    assert out.shape == (2, 2)
    assert task.loss(out, targets, None).item() == pytest.approx(
        torch.nn.functional.cross_entropy(out, targets["labels"]).item()
    )
    assert set(task.decode(out, None)) <= set(task.labels)
    metric = task.new_metric()
    metric.update(["entailment", "entailment"], batch)
    assert metric.compute()["acc"] == pytest.approx(0.5)


def test_regression_and_unlabelled_test_rows():
    task = GlueTask(name="stsb")
    assert task.regression and task.main_metric == "corr"
    out = task.build_decoder(4)(torch.randn(3, 1, 4))
    assert out.shape == (3, 1)
    targets = task.targets([ex("a", "b", 1.0), ex("a", "b", 2.5), ex("a", "b", 4.0)])
    assert task.loss(out, targets, None).item() == pytest.approx(
        ((out.squeeze(-1) - targets["labels"]) ** 2).mean().item()
    )
    with pytest.raises(ValueError, match="no labels"):
        task.targets([ex("a", "b", None)])
