"""The scoring step on a tiny model: batched GradTS per-instance matrices equal a batch-1 loop."""

from __future__ import annotations

import pytest
import torch
from conftest import compose_config

from mtlheads.build import build_encoder, build_model, build_tasks, read_task_data
from mtlheads.heads.gradts import kv_linears, normalize_rows
from mtlheads.score import score_task
from mtlheads.training.data import TaskSplit, eval_loader


@pytest.fixture
def pos_model(tiny_bert_dir):
    cfg = compose_config(["taskset=pos", f"encoder.name={tiny_bert_dir}", "logger=none"])
    torch.manual_seed(0)
    tasks = build_tasks(cfg)
    encoder, tokenizer = build_encoder(cfg.encoder)
    data = read_task_data(cfg, tasks, tokenizer, splits=("train",))
    model = build_model(cfg, tasks, encoder).double()
    split = data["pos"]["train"]
    return model, tokenizer, TaskSplit(sentences=split.sentences[:12], lengths=split.lengths[:12])


def _batch_one_loop(model, tokenizer, split, variant: str) -> torch.Tensor:
    """Each sentence alone: its loss, backward, |G_K| + |G_V| block means read off the weights' .grad."""
    model.eval()
    heads = model.encoder.model.config.num_attention_heads
    rows = []
    for i in range(len(split.sentences)):
        one = TaskSplit(sentences=split.sentences[i : i + 1], lengths=split.lengths[i : i + 1])
        loader = eval_loader(
            task="pos", split=one, tasks=model.tasks, tokenizer=tokenizer, max_tokens=10**6, max_sentences=1
        )
        model.zero_grad(set_to_none=True)
        model.task_loss(next(iter(loader))).backward()
        per_layer = []
        for k, v in kv_linears(model.encoder.model):
            g = k.weight.grad.abs() + v.weight.grad.abs()  # (D_out, D_in)
            if variant == "rows":
                per_layer.append(g.view(heads, -1, g.shape[1]).mean(dim=(1, 2)))
            else:
                per_layer.append(g.view(g.shape[0], heads, -1).mean(dim=(0, 2)))
        rows.append(torch.stack(per_layer))
    return torch.stack(rows)  # (N, L, H)


@pytest.mark.parametrize("variant", ["columns", "rows"])
def test_batched_gradts_instances_equal_a_batch_of_one_loop(pos_model, variant):
    model, tokenizer, split = pos_model
    got = score_task(model, "pos", split, tokenizer, max_tokens=4000, max_sentences=8, kind="gradts",
                     variant=variant, dropout=False)  # fmt: skip
    loop = _batch_one_loop(model, tokenizer, split, variant)
    assert got.instances.shape == loop.shape == (12, 2, 4)
    torch.testing.assert_close(got.instances.double(), normalize_rows(loop), rtol=1e-6, atol=1e-12)
    torch.testing.assert_close(got.raw_heads.double(), loop.mean(dim=0), rtol=1e-6, atol=1e-12)
    torch.testing.assert_close(got.heads.sum(dim=1).double(), torch.ones(2, dtype=torch.float64))
    assert got.examples == 12 and got.ffn is None


def test_the_two_gradts_variants_differ_and_scoring_changes_no_weight(pos_model):
    model, tokenizer, split = pos_model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cols = score_task(
        model, "pos", split, tokenizer, max_tokens=4000, max_sentences=8, kind="gradts", dropout=False
    )
    rows = score_task(model, "pos", split, tokenizer, max_tokens=4000, max_sentences=8, kind="gradts",
                      variant="rows", dropout=False)  # fmt: skip
    assert not torch.allclose(cols.heads, rows.heads)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    ticket = score_task(
        model, "pos", split, tokenizer, max_tokens=4000, max_sentences=8, kind="ticket", limit=5
    )
    assert ticket.examples == 5 and ticket.ffn.shape == (2,) and ticket.instances is None
    with pytest.raises(ValueError, match="importance.kind"):
        score_task(model, "pos", split, tokenizer, max_tokens=4000, max_sentences=8, kind="fisher")
