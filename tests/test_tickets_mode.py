"""mode=tickets end to end on the excerpt with a tiny encoder; rewinding; ticket-sharing MTL."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from conftest import compose_config, run_cli
from transformers import AutoModel

from mtlheads.build import build_encoder, build_model, build_tasks
from mtlheads.encoder.word_encoder import tokenize_words
from mtlheads.heads.masks import Mask, write_mask_file
from mtlheads.heads.tickets import structure_sizes

ARGS = ["taskset=pos", "trainer=smoke", "logger=none", "mode.levels=[0.25,0.5]", "mode.seeds=[1,2]"]


def test_tickets_pipeline_writes_masks_rewinds_each_ticket_and_resumes(tmp_path, tiny_bert_dir):
    out = tmp_path / "run"
    args = ["mode=tickets", *ARGS, f"encoder.name={tiny_bert_dir}", f"out_dir={out}"]
    proc = run_cli(args, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "tickets.json").read_text())
    kinds = {(r["kind"], r["level"]): r for r in summary["table"]}
    assert set(kinds) == {("dense", 0.0)} | {
        (k, lv) for k in ("winning", "random", "losing") for lv in (0.25, 0.5)
    }
    assert all(r["n"] == 2 and r["seeds"] == [1, 2] for r in kinds.values())  # every ticket, both seeds
    best = summary["super_ticket"]
    assert best["kind"] == "winning" and best["mean"] == max(
        kinds[("winning", lv)]["mean"] for lv in (0.25, 0.5)
    )
    assert json.loads((out / "super_ticket.json").read_text()) == json.loads(
        (out / "masks" / f"winning_{round(100 * best['level'])}.json").read_text()
    )
    # each rewind job trained under its own mask (its config names the file)
    jobs = sorted((out / "rewind").glob("*_stl-pos-s*"))
    assert len(jobs) == 14 and all((j / "metrics.json").is_file() for j in jobs)
    assert (out / "phase.png").is_file() and "Super ticket" in (out / "tickets.md").read_text()

    # resume: nothing is trained again, the summary is the same
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("metrics.json")}
    again = run_cli([*args, "resume=true"], tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in out.rglob("metrics.json")} == stamps
    assert json.loads((out / "tickets.json").read_text())["table"] == summary["table"]


def test_a_rewound_ticket_starts_from_the_pretrained_weights(tmp_path, tiny_bert_dir):
    heads = torch.tensor([[1.0, 0, 1, 0], [0, 1, 1, 1]])
    write_mask_file(tmp_path / "m.json", Mask(heads, torch.tensor([1.0, 0])))
    cfg = compose_config(
        ["taskset=pos", f"encoder.name={tiny_bert_dir}", "heads=mask", f"heads.file={tmp_path / 'm.json'}"]
    )
    encoder, _ = build_encoder(cfg.encoder)
    tasks = build_tasks(cfg)
    tasks["pos"].fit_vocab(tasks["pos"].read(cfg.tasks.pos.dev))
    model = build_model(cfg, tasks, encoder)
    pretrained = AutoModel.from_pretrained(tiny_bert_dir)
    d_h = 8
    for layer, kept in ((0, [0, 2]), (1, [1, 2, 3])):
        rows = torch.cat([torch.arange(h * d_h, (h + 1) * d_h) for h in kept])
        for name in ("query", "key", "value"):
            got = getattr(model.encoder.model.encoder.layer[layer].attention.self, name).weight
            want = getattr(pretrained.encoder.layer[layer].attention.self, name).weight[rows]
            assert torch.equal(got, want), (layer, name)  # the kept heads: pretrained, and nothing else
        dense = model.encoder.model.encoder.layer[layer].attention.output.dense.weight
        assert torch.equal(dense, pretrained.encoder.layer[layer].attention.output.dense.weight[:, rows])
    assert torch.equal(model.encoder.model.encoder.layer[0].intermediate.dense.weight,
                       pretrained.encoder.layer[0].intermediate.dense.weight)  # fmt: skip
    assert not any(
        "layer.1.intermediate" in n for n, _ in model.encoder.model.named_parameters()
    )  # FFN removed


def _fake_tickets(root: Path, task: str, mask: Mask) -> None:
    run = root / f"tickets-{task}"
    run.mkdir(parents=True)
    (run / "tickets.json").write_text(json.dumps({"task": task}))
    write_mask_file(run / "super_ticket.json", mask)


def test_ticket_sharing_runs_each_tasks_batches_under_its_own_mask_only(tmp_path, tiny_bert_dir):
    from mtlheads.checkpoint import load_model
    from mtlheads.modes import train

    closed = Mask(torch.zeros(2, 4), torch.zeros(2))  # POS: nothing of the encoder but the embeddings
    _fake_tickets(tmp_path / "tickets", "pos", closed)
    _fake_tickets(tmp_path / "tickets", "dep", Mask(torch.ones(2, 4), torch.ones(2)))
    out = tmp_path / "run"
    cfg = compose_config(
        ["mode=mtl", "taskset=[pos,dep]", f"tickets={tmp_path / 'tickets'}", f"encoder.name={tiny_bert_dir}"]
        + ["trainer=smoke", "logger=none", f"out_dir={out}"]
    )
    train.run(cfg)
    usage = json.loads((out / "metrics.json").read_text())["parameter_usage"]
    model, tokenizer, _ = load_model(out)
    total = sum(p.numel() for p in model.encoder.model.parameters())
    per_head, per_ffn = structure_sizes(model.encoder.model.config)
    assert usage["dep"] == usage["union"] == 1.0
    assert usage["pos"] == (total - 8 * per_head - 2 * per_ffn) / total  # 2 layers x 4 heads, 2 FFNs gone

    words = [["The", "cat", "sat", "down", "."], ["The", "dog", "ran", "off", "."]]
    inputs = tokenize_words(tokenizer, words)
    with torch.no_grad():
        model.heads.select_task("pos")
        pos_out = model.encoder(inputs)[0]
        model.heads.select_task("dep")
        dep_out = model.encoder(inputs)[0]
    # under POS's all-closed ticket a word's vector depends on its own token only: "The" and "." match
    torch.testing.assert_close(pos_out[0, 0], pos_out[1, 0])
    torch.testing.assert_close(pos_out[0, 4], pos_out[1, 4])
    assert not torch.allclose(dep_out[0, 0], dep_out[1, 0])  # DEP's ticket keeps attention: context matters
