"""``mtlheads-report science`` and ``save`` on small fabricated run folders (the docs/runs convention)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from conftest import compose_config
from omegaconf import OmegaConf

from mtlheads.heads.probe_results import ProbeResult
from mtlheads.report.collect import main
from mtlheads.report.tickets import summarize

PAPERS = Path(__file__).resolve().parents[2] / "docs" / "science" / "papers.yaml"


def _job(d: Path, overrides: list[str], seed: int, dev: dict, test: dict, **extra) -> Path:
    cfg = OmegaConf.to_container(compose_config([*overrides, f"seed={seed}"]), resolve=True)
    d.mkdir(parents=True)
    (d / "config.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    metrics = {"mode": cfg["mode"]["name"], "tasks": list(cfg["tasks"]), "encoder": "minilm", "seed": seed}
    score = lambda s: sum(next(iter(v.values())) for v in s.values()) / len(s)  # noqa: E731
    metrics |= {"dev": {**dev, "score": score(dev)}, "test": {**test, "score": score(test)}, **extra}
    (d / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    return d


def _folder(root: Path, name: str, command: str) -> Path:
    (root / name).mkdir(parents=True)
    (root / name / "command.txt").write_text(command + "\n")
    return root / name


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    stl = _folder(root, "ewt_2ep", "mtlheads -m experiment=stem_cell/table1 trainer.max_epochs=2 seed=1,2")
    two = "trainer.max_epochs=2"
    for seed, acc in ((1, 0.93), (2, 0.95)):
        _job(stl / f"pos-s{seed}", ["mode=stl", "taskset=pos", two], seed, {"pos": {"acc": acc}},
             {"pos": {"acc": acc + 0.01}})  # fmt: skip
    ner_dev, ner_test = {"p": 0.7, "r": 0.5, "f1": 0.5833}, {"p": 0.8, "r": 0.5, "f1": 0.6154}
    _job(stl / "ner-s1", ["mode=stl", "taskset=ner", two], 1, {"ner": ner_dev}, {"ner": ner_test})
    dev, test = (
        {"pos": {"acc": 0.9512}, "ner": {"f1": 0.6071}},
        {"pos": {"acc": 0.9623}, "ner": {"f1": 0.6345}},
    )
    _job(stl / "mtl-s1", ["taskset=[pos,ner]", two], 1, dev, test)

    gates = _folder(root, "fig1a", "mtlheads -m experiment=stem_cell/fig1a mode.gate.target_heads=0.3")
    g = torch.zeros(2, 4)
    g[0, 0] = g[1, 1] = 0.7  # open in all three runs
    for seed in (1, 2, 3):
        g[1, 2 + seed % 2] = 0.2  # open in two of them
        summary = {"open_heads": int((g > 1e-3).sum()), "total_heads": 8, "open_per_layer": [1, 2]}
        job = _job(gates / f"{seed - 1}_gate-pos-s{seed}", ["experiment=stem_cell/fig1a"], seed,
                   {"pos": {"acc": 0.8} }, {"pos": {"acc": 0.81}}, gates=summary)  # fmt: skip
        (job / "gates.json").write_text(json.dumps({"shape": [2, 4], "gates": g.tolist()}))
        g[1, 2:] = 0

    probes = _folder(root, "fig4_pos", "mtlheads -m experiment=stem_cell/fig4_pos ckpt=static,a,b")
    counts = torch.tensor([10, 6])
    for i, (probed, right) in enumerate(
        [
            ({"model": "static"}, 4),
            ({"model": "a", "tasks": ["pos"]}, 9),
            ({"model": "b", "tasks": ["pos", "ner", "dep"]}, 6),
        ]
    ):
        d = probes / f"{i}_probe"
        d.mkdir()
        correct = torch.zeros(2, 4, 2, dtype=torch.long)
        correct[1, 3] = torch.tensor([right, right - 3])  # the best head: layer 2, head 4
        ProbeResult(kind="pos", labels=["NN", "DT"], correct=correct, counts=counts).save(d / "probe_pos")
        (d / "probe.json").write_text(json.dumps({"probed": probed, "tasks": {"pos": {}}}))

    tickets = _folder(root, "tickets_rte", "mtlheads mode=tickets taskset=rte")
    finished = [("dense", 0.0, 1, 0.6), ("winning", 0.3, 1, 0.65), ("winning", 0.3, 2, 0.67)]
    finished += [("random", 0.3, 1, 0.55), ("losing", 0.3, 1, 0.5), ("winning", 0.5, 1, 0.58)]
    rows = [{"kind": k, "level": lv, "seed": s, "dev": d, "train_seconds": 1.0} for k, lv, s, d in finished]
    (tickets / "tickets.json").write_text(json.dumps({**summarize(rows), "task": "rte"}))

    gradts = _folder(root, "gradts_glue", "mtlheads mode=gradts stage=all taskset=[rte,mrpc,cola]")
    (gradts / "correlate").mkdir()
    tau = [[1.0, 0.4321, 0.1234], [0.4321, 1.0, 0.2222], [0.1234, 0.2222, 1.0]]
    (gradts / "correlate" / "tau.json").write_text(json.dumps({"tasks": ["rte", "mrpc", "cola"], "tau": tau}))
    (gradts / "trial" / "rte").mkdir(parents=True)
    (gradts / "trial" / "rte" / "trial.json").write_text(json.dumps({"selected": ["mrpc"]}))
    return root


def _science(root: Path, out: Path) -> str:
    out.mkdir(parents=True, exist_ok=True)
    (out / "papers.yaml").write_bytes(PAPERS.read_bytes())
    assert main(["science", str(root), "--out", str(out)]) == 0
    return (out / "index.md").read_text(encoding="utf-8")


def test_science_page_draws_every_finding_from_the_saved_runs(runs: Path, tmp_path: Path) -> None:
    page = _science(runs, tmp_path / "science")
    assert page.startswith(f"<!-- generated by: mtlheads-report science {runs}")
    assert "Not run yet" not in page
    sections = page.split("\n## ")[1:]
    assert [s.split(" (")[0].split(":")[0] for s in sections] == [
        "STL vs MTL", "Gated head pruning", "Head probes", "Super tickets", "GradTS"
    ]  # fmt: skip
    stl, gates, probes, tickets, gradts = sections
    # STL: POS mean ± std over seeds 1, 2 (94.00 ± 1.41 dev, 95.00 ± 1.41 test); MTL from its one seed
    assert "| task (metric) | STL [ewt_2ep] | MTL pos+ner [ewt_2ep] |" in stl
    assert "| pos (acc) | 94.00 ± 1.41 / 95.00 ± 1.41 | 95.12 / 96.23 |" in stl
    assert "| ner (f1) | 58.33 / 61.54 | 60.71 / 63.45 |" in stl
    assert "- STL [ewt_2ep]: `trainer.max_epochs=2` (seeds: ner: 1, pos: 2)" in stl
    assert "table1 trainer.max_epochs=2 seed=1,2" in stl
    assert "tickets" not in stl.split("```")[0] and "gate" not in stl.split("*Ours*")[1].split("```")[0]
    # gates: 2 heads open in all three runs, 4 in at least one; the paper's estimates beside them
    assert "open in all three 2, in at least one 4 (1, 3 per layer)" in gates
    assert "| 0_gate-pos-s1 | pos | 3 of 8 | 1, 2 | 80.00 | 81.00 |" in gates
    assert "47, 49 and 50 of 144" in gates and "experiment=stem_cell/fig1a" in gates
    # probes, best head 4/10 and 1/6 for static -> mean 28.33; STL 9/10, 6/6 -> 95.00; MTL-3 6/10, 3/6 -> 55
    assert "| static | 1 | 28.33 | 28.33 |" in probes and "| STL | 1 | 95.00 | 95.00 |" in probes
    assert "| MTL-3 | 1 | 55.00 | 55.00 |" in probes and "probe_pos_delta.png" in probes
    # tickets: winning at 30 % is the super ticket (66.00 mean of 65 and 67)
    assert "Super ticket: winning at 30% sparsity, dev 66.00." in tickets
    assert "| rte | 1.000 | 0.432 | 0.123 |" in gradts and "GradTS-trial for rte: auxiliaries mrpc" in gradts
    figures = {p.name for p in (tmp_path / "science" / "figures").glob("*.png")}
    assert {
        "stl_vs_mtl.png",
        "gates_fig1a_pos.png",
        "probe_pos_delta.png",
        "tickets_tickets_rte_rte.png",
    } <= figures
    assert "gradts_tau_gradts_glue.png" in figures
    # the same runs give the same page: the docs test rebuilds it and compares
    assert _science(runs, tmp_path / "again") == page


def test_science_page_without_runs_says_not_run_yet(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    page = _science(tmp_path / "runs", tmp_path / "science")
    assert page.count("Not run yet") == 5 and "```bash" not in page
    assert "0.9 (BERT-base)" in page  # the papers' side is there all the same


def test_save_keeps_the_small_outputs_and_the_command(tmp_path: Path) -> None:
    src = tmp_path / "sweep" / "0_gate-pos-s1"
    _job(
        src,
        ["experiment=stem_cell/fig1a", "trainer.max_epochs=2"],
        1,
        {"pos": {"acc": 0.8}},
        {"pos": {"acc": 0.8}},
    )
    torch.save(torch.tensor([[0.0, 0.5], [1.0, 0.25]]), src / "gates.pt")
    for junk in ("checkpoints/best.ckpt", "wandb/run/files/config.yaml", "gates/12.pt"):
        (src / junk).parent.mkdir(parents=True, exist_ok=True)
        (src / junk).write_text("x")
    dest = tmp_path / "docs" / "runs" / "fig1a"
    assert (
        main(
            [
                "save",
                str(tmp_path / "sweep"),
                str(dest),
                "--command",
                "mtlheads -m experiment=stem_cell/fig1a",
            ]
        )
        == 0
    )
    kept = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert kept == [
        "0_gate-pos-s1/config.yaml", "0_gate-pos-s1/gates.json", "0_gate-pos-s1/metrics.json",
        "command.txt", "report.json", "report.md", "report.tex",
    ]  # fmt: skip
    assert json.loads((dest / "0_gate-pos-s1" / "gates.json").read_text())["gates"] == [
        [0.0, 0.5],
        [1.0, 0.25],
    ]
    assert (dest / "command.txt").read_text() == "mtlheads -m experiment=stem_cell/fig1a\n"
    assert "`trainer.max_epochs=2`" in (dest / "report.md").read_text()
    with pytest.raises(ValueError, match="--command"):
        main(["save", str(tmp_path / "sweep"), str(dest), "--command", " "])
