"""Built-in metrics against the official scorers' conventions on a real MiniLM model's written predictions.

A MiniLM model is trained here on the shipped EWT excerpt (all five tasks; one short epoch of small batches
so that every task predicts something) and ``mtlheads mode=predict`` writes its predictions for the
excerpt's test files. Each written file is then scored as the official tool scores it
(:mod:`mtlheads.tasks.scorer_conventions`, ``seqeval``) and compared with the built-in scores that the same
call put in ``metrics.json``:

* POS: ``conll18_ud_eval.py``'s XPOS accuracy (every word) equals the built-in accuracy.
* NER: seqeval (default and strict IOB2) on the written IOB2 file equals the built-in exact-span P/R/F1.
* DEP: **expected to differ**: ``conll18_ud_eval.py`` scores every word, punctuation included, and compares
  only the universal part of DEPREL (``nmod:poss`` = ``nmod``); the built-in metric skips punctuation
  (:func:`~mtlheads.data.is_punct`) and compares whole relations. The mapping is checked exactly: the
  official count restricted to non-punctuation words with whole relations gives the built-in UAS/LAS.
* CON: EVALB with COLLINS.prm on the written ``*.ptb`` files equals the built-in P/R/F1 (PTB-style ``TOP``
  trees carrying the gold POS tags, which is also what the built-in metric scores).
* SRL: ``srl-eval.pl`` on the written props files **may differ**: it joins a ``C-X`` piece to its ``X``
  argument and skips predicted predicates that have no gold prop, while the built-in metric counts every
  span and every predicted predicate. The counts are checked equal on the sentences where neither applies.

Every predicted structure read back from the written files with our own readers equals what a second pass
of the same prediction stream gives (the round trip, on a real model's predictions). The numbers of both
sides are written to ``agreement.json`` in the predict run's dir and printed (``pytest -s``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import compose_config, run_cli
from seqeval.metrics import f1_score, precision_score, recall_score
from seqeval.scheme import IOB2

from mtlheads.checkpoint import load_model
from mtlheads.data import excerpt_dir, is_punct, read_conll2012, read_conllu, read_iob2
from mtlheads.data.conllu_reader import read_lines
from mtlheads.data.prediction_formats import conll2018_attachment
from mtlheads.data.trees import to_string, to_tree
from mtlheads.predict.inputs import read_inputs
from mtlheads.predict.stream import predict_stream
from mtlheads.tasks.con import ConTask
from mtlheads.tasks.scorer_conventions import (
    conll18_from_files,
    evalb_collins_files,
    prf,
    read_props,
    srl_eval,
)
from mtlheads.tasks.srl_metric import SrlMetric, clean_srl

pytestmark = pytest.mark.slow
EWT = excerpt_dir()
TRAIN = [  # about 2.5 minutes of one CPU thread: one epoch of 4-sentence batches with higher learning rates
    "mode=mtl",
    "taskset=ewt5",
    "trainer.max_epochs=1",
    "batch.max_sentences=4",
    "optim.encoder_lr=1e-4",
    "optim.decoder_lr=3e-3",
    *[f"tasks.{t}.test=null" for t in ("pos", "ner", "dep", "con", "srl")],  # mode=predict tests them
    "trainer.enable_progress_bar=false",
    "logger=none",
]
TEST = {"ud": EWT / "ud" / "test.conllu", "ner": EWT / "ner" / "test.iob2"}
TEST["conll"] = EWT / "conll2012" / "test.gold_conll"


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> tuple[Path, Path, dict]:
    """(run dir, predict dir, its metrics.json): trained and predicted through the ``mtlheads`` command."""
    run, out = tmp_path_factory.mktemp("minilm_run"), tmp_path_factory.mktemp("minilm_predict")
    trained = run_cli([*TRAIN, f"out_dir={run}"], cwd=run, timeout=1800, OMP_NUM_THREADS="1")
    assert trained.returncode == 0, trained.stderr[-3000:]
    files = [f"eval_files.{t}={TEST[k]}" for t, k in (("pos", "ud"), ("dep", "ud"), ("ner", "ner"))]
    files += [f"eval_files.{t}={TEST['conll']}" for t in ("con", "srl")]
    args = ["mode=predict", f"ckpt={run}", f"out_dir={out}", "trainer.enable_progress_bar=false", *files]
    predicted = run_cli(args, cwd=out, timeout=900, OMP_NUM_THREADS="1")
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    return run, out, json.loads((out / "metrics.json").read_text())


def _tags(path: Path, column: int) -> list[list[str]]:
    """One column of every word line, per sentence (as the scorers read a tab-separated file)."""
    out, block = [], []
    for line in [*read_lines(path), ""]:
        cols = line.split("\t")
        if cols[0].isdigit():  # word lines (not comments, nor CoNLL-U's multiword "3-4" lines)
            block.append(cols[column])
        elif not line.strip() and block:
            out.append(block)
            block = []
    return out


def test_builtin_metrics_equal_the_official_conventions_on_the_written_files(real) -> None:
    _, out, metrics = real
    folder, ours, report = out / "predictions", metrics["test"], {}
    # POS: conll18_ud_eval's XPOS accuracy over every word
    gold_x, pred_x = _tags(TEST["ud"], 4), _tags(folder / "test.pos+dep.conllu", 4)
    words = sum(len(s) for s in gold_x)
    xpos = sum(g == p for gs, ps in zip(gold_x, pred_x, strict=True) for g, p in zip(gs, ps, strict=True))
    report["pos"] = {"builtin": {"acc": ours["pos"]["acc"]}, "official": {"acc": xpos / words}}
    assert xpos / words == ours["pos"]["acc"]
    # NER: seqeval exact spans
    gold_t, pred_t = _tags(TEST["ner"], 2), _tags(folder / "test.ner.iob2", 2)
    for mode in ({}, {"mode": "strict", "scheme": IOB2}):
        official = {
            "p": float(precision_score(gold_t, pred_t, **mode)),
            "r": float(recall_score(gold_t, pred_t, **mode)),
            "f1": float(f1_score(gold_t, pred_t, **mode)),
        }
        assert official == pytest.approx({k: ours["ner"][k] for k in official}, abs=1e-12)
    report["ner"] = {"builtin": {k: ours["ner"][k] for k in official}, "official": official}
    # DEP: CoNLL 2018 (all words, universal relations); the mapping to ours (no punctuation, whole relations)
    official = conll18_from_files(TEST["ud"], folder / "test.pos+dep.conllu")
    gold, back = read_conllu(TEST["ud"]), read_conllu(folder / "test.pos+dep.conllu")
    assert conll2018_attachment([(s.heads, s.rels) for s in back], gold) == pytest.approx(official, abs=1e-12)
    kept = arcs = labelled = 0
    for g, p in zip(gold, back, strict=True):
        for w, gh, gr, ph, pr in zip(g.words, g.heads, g.rels, p.heads, p.rels, strict=True):
            if not is_punct(w):
                kept, arcs, labelled = kept + 1, arcs + (gh == ph), labelled + (gh == ph and gr == pr)
    assert {"uas": arcs / kept, "las": labelled / kept} == {k: ours["dep"][k] for k in ("uas", "las")}
    assert official != {
        k: ours["dep"][k] for k in ("uas", "las")
    }  # punctuation and subtypes count differently
    report["dep"] = {"builtin": {k: ours["dep"][k] for k in ("uas", "las")}, "official": official}
    # CON: EVALB COLLINS.prm on the written tree files
    matched, n_gold, n_pred = evalb_collins_files(folder / "test.con.gold.ptb", folder / "test.con.ptb")
    official = prf(matched, n_pred, n_gold)
    assert official == pytest.approx({k: ours["con"][k] for k in ("p", "r", "f1")}, abs=1e-12)
    assert matched > 0
    report["con"] = {"builtin": {k: ours["con"][k] for k in ("p", "r", "f1")}, "official": official}
    report["con"]["evalb_counts"] = {"matched": matched, "gold": n_gold, "predicted": n_pred}
    # SRL: srl-eval.pl on the props files, equal where its C- and unknown-predicate rules do not apply
    gold_props, pred_props = read_props(folder / "test.srl.gold.props"), read_props(folder / "test.srl.props")
    ok, excess, missed = srl_eval(gold_props, pred_props)
    official = prf(ok, ok + excess, ok + missed)
    report["srl"] = {"builtin": {k: ours["srl"][k] for k in ("p", "r", "f1")}, "official": official}
    report["srl"]["srl_eval_counts"] = {"correct": ok, "excess": excess, "missed": missed}
    sentences = read_conll2012(TEST["conll"])
    back = read_conll2012(folder / "test.con+srl.conll")
    preds = [clean_srl(s.srl) for s in back]

    def has_c(frames) -> bool:
        return any(r.startswith("C-") and r != "C-V" for _, args in frames for *_, r in args)

    plain = [
        k
        for k, (s, p) in enumerate(zip(sentences, preds, strict=True))
        if not has_c(s.srl) and not has_c(p) and {q for q, _ in p} <= {q for q, _ in s.srl}
    ]
    metric = SrlMetric()
    metric.update([preds[k] for k in plain], [sentences[k] for k in plain])
    counts = srl_eval([gold_props[k] for k in plain], [pred_props[k] for k in plain])
    assert counts == (metric.tp, metric.n_pred - metric.tp, metric.n_gold - metric.tp)
    assert plain
    report["srl"]["sentences_with_equal_counts"] = {"compared": len(plain), "all": len(sentences)}
    full = SrlMetric()
    full.update(preds, sentences)
    report["srl"]["builtin_counts"] = {"correct": full.tp, "predicted": full.n_pred, "gold": full.n_gold}
    (out / "agreement.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nagreement ({out / 'agreement.json'}):\n{json.dumps(report, indent=1)}")


def test_real_predictions_come_back_from_the_written_files(real) -> None:
    run, out, _ = real
    model, tokenizer, train_cfg = load_model(run)
    model.final_decode = True
    cfg = compose_config(["mode=predict", f"ckpt={run}"])
    files = {"pos": [str(TEST["ud"])], "dep": [str(TEST["ud"])], "ner": [str(TEST["ner"])]}
    files |= {"con": [str(TEST["conll"])], "srl": [str(TEST["conll"])]}
    inputs = read_inputs(files, model.tasks, tokenizer)
    stream = {
        i.fmt: [p for _, p in predict_stream(model, tokenizer, i, cfg.batch, metrics={}, progress=False)]
        for i in inputs
    }
    folder = out / "predictions"
    ud = read_conllu(folder / "test.pos+dep.conllu")
    assert [s.pos for s in ud] == [p["pos"] for p in stream["conllu"]]
    assert [(s.heads, s.rels) for s in ud] == [tuple(p["dep"]) for p in stream["conllu"]]
    assert [s.entities for s in read_iob2(folder / "test.ner.iob2")] == [p["ner"] for p in stream["iob2"]]
    assert any(p["ner"] for p in stream["iob2"])
    back, gold = read_conll2012(folder / "test.con+srl.conll"), read_conll2012(TEST["conll"])
    trees = [ConTask.to_tree(p["con"], g) for p, g in zip(stream["conll"], gold, strict=True)]
    assert [to_string(to_tree(s.tree)) for s in back] == trees
    assert (folder / "test.con.ptb").read_text(encoding="utf-8").splitlines() == trees
    assert [clean_srl(s.srl) for s in back] == [clean_srl(p["srl"]) for p in stream["conll"]]
    assert any(p["srl"] for p in stream["conll"])
