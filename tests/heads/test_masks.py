"""Mask files (every mode reads them) and the gates they build: format, errors, per-task masks, training."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import compose_config
from tiny_encoders import base_config, run, tiny_model
from transformers import AutoModel

from mtlheads.heads.gate import MaskGate, install_head_gate
from mtlheads.heads.masks import Mask, TaskMaskGate, mask_gate, read_mask_file, write_mask_file


def _write(tmp_path, data, name="mask.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def test_mask_files_round_trip_single_ffn_and_per_task(tmp_path):
    heads = torch.tensor([[1.0, 0, 1, 0], [0, 0, 0, 0], [1, 1, 1, 1]])
    write_mask_file(tmp_path / "a.json", Mask(heads))
    assert json.loads((tmp_path / "a.json").read_text()) == {"0": [0, 2], "1": [], "2": [0, 1, 2, 3]}
    assert torch.equal(read_mask_file(tmp_path / "a.json", shape=(3, 4)).heads, heads)

    both = Mask(heads, torch.tensor([1.0, 0, 1]))
    write_mask_file(tmp_path / "b.json", {"rte": both, "mrpc": Mask(1 - heads)})
    back = read_mask_file(tmp_path / "b.json", shape=(3, 4))
    assert set(back) == {"rte", "mrpc"}
    assert torch.equal(back["rte"].heads, heads) and torch.equal(back["rte"].ffn, both.ffn)
    assert torch.equal(back["mrpc"].heads, 1 - heads) and back["mrpc"].ffn is None


@pytest.mark.parametrize(
    "data, message",
    [
        ({"0": [0], "1": [1], "2": [4]}, r"layer 2 has heads \[4\] out of range 0..3"),
        ({"0": [0], "1": [1], "3": [0]}, r"out of range: \[3\].*missing: \[2\]"),
        ({"0": [0], "1": [1]}, r"missing: \[2\]"),
        ({"0": [0], "1": "all", "2": []}, "layer 1 must list open heads as integers"),
        ({"heads": {"0": [], "1": [], "2": []}, "ffn": [3]}, "'ffn' must list open FFN layers in 0..2"),
        ({"pos": {"0": [0], "1": [1]}}, r"task 'pos'.*missing: \[2\]"),
        ("{not json", "not a JSON mask file"),
        ([], "non-empty JSON object"),
    ],
)
def test_a_bad_mask_file_is_an_error_naming_the_file(tmp_path, data, message):
    path = _write(tmp_path, data)
    with pytest.raises(ValueError, match=message) as err:
        read_mask_file(path, shape=(3, 4))
    assert str(path) in str(err.value)


def test_missing_file_and_missing_task_name_the_config_key_and_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="heads.file"):
        mask_gate(num_layers=3, num_heads=4, tasks=["pos"], file=str(tmp_path / "none.json"))
    path = _write(tmp_path, {"pos": {"0": [], "1": [], "2": []}})
    with pytest.raises(ValueError, match=r"no mask for task\(s\) \['dep'\]") as err:
        mask_gate(num_layers=3, num_heads=4, tasks=["pos", "dep"], file=str(path))
    assert str(path) in str(err.value)


def test_a_per_task_mask_applies_each_tasks_mask_to_its_batches_only():
    model = tiny_model("bert", base_config(layers=2))
    ungated = run(model)
    closed = torch.zeros(2, 4)
    closed_out = None
    with install_head_gate(model, MaskGate(mask=closed)):
        closed_out = run(model)
    gate = TaskMaskGate(masks={"pos": closed, "dep": torch.ones(2, 4)})
    with install_head_gate(model, gate):
        gate.select_task("pos")
        torch.testing.assert_close(run(model), closed_out)
        gate.select_task("dep")
        torch.testing.assert_close(run(model), ungated)
        with pytest.raises(KeyError, match="no head mask for task 'ner'"):
            gate.select_task("ner")
    assert not torch.allclose(closed_out, ungated)


def test_mtl_under_a_fixed_mask_leaves_the_closed_heads_weights_untouched(tmp_path, tiny_bert_dir):
    """heads=mask heads.fold=false (hooks): closed heads get no gradient, their Q/K/V rows stay pretrained."""
    from mtlheads.checkpoint import load_model
    from mtlheads.modes import train

    mask = {"0": [0, 1], "1": [2]}  # tiny BERT: 2 layers x 4 heads
    path = _write(tmp_path, mask)
    out = tmp_path / "run"
    cfg = compose_config(
        ["mode=mtl", "taskset=[pos,dep]", "heads=mask", f"heads.file={path}", "heads.fold=false"]
        + [f"encoder.name={tiny_bert_dir}"]
        + ["trainer=smoke", "trainer.max_epochs=2", "logger=none", f"out_dir={out}"]
    )
    train.run(cfg)
    assert not (out / "checkpoints" / "last.ckpt").exists()  # dropped after a finished run
    path.unlink()  # the checkpoint holds the mask itself
    model, _, _ = load_model(out)
    assert isinstance(model.heads, MaskGate)
    assert model.heads.mask.tolist() == [[1, 1, 0, 0], [0, 0, 1, 0]]
    pretrained = AutoModel.from_pretrained(tiny_bert_dir)
    d_h = 32 // 4
    for layer, open_heads in ((0, [0, 1]), (1, [2])):
        for h in range(4):
            rows = slice(h * d_h, (h + 1) * d_h)
            for name in ("query", "key", "value"):
                trained = getattr(model.encoder.model.encoder.layer[layer].attention.self, name).weight[rows]
                before = getattr(pretrained.encoder.layer[layer].attention.self, name).weight[rows]
                assert torch.equal(trained, before) == (h not in open_heads), (layer, h, name)
