"""mode=predict: a saved model's predictions, in each task's own file format (``docs/predict.md``).

``mtlheads mode=predict ckpt=<run dir | best.ckpt | prune folder> [eval_files.<task>=<file>]`` runs every
task of the checkpoint on its file (without ``eval_files``: the task's test split in the checkpoint's
config; for GLUE, whose test split is null, the test file(s) next to its dev file) and writes
``<run dir>/predictions/``:

* ``<stem>.<tasks>.<ext>``: one file per input file, in that file's format, holding the layers of every
  task that read it, their gold columns replaced: ``test.pos+dep.conllu`` (XPOS, HEAD, DEPREL),
  ``test.ner.iob2``, ``test.con+srl.conll`` (CoNLL-2012 POS and parse bits from the tree, SRL columns);
* the scorers' inputs: ``test.con.ptb`` (EVALB) and ``test.srl.props`` (srl-eval.pl), with the gold side
  ``test.con.gold.ptb`` / ``test.srl.gold.props`` written from the input;
* ``glue/<TASK>.tsv``: GLUE leaderboard files (``MNLI-m.tsv`` and ``MNLI-mm.tsv`` for MNLI's two tests).

``text=<file>`` (one sentence per line; ``tokenize=whitespace|nltk``) writes ``<stem>.<tasks>.conllu``
with every token-level task in its columns (POS → XPOS, DEP → HEAD/DEPREL, NER and SRL → MISC, see
:mod:`~mtlheads.data.prediction_formats`) and ``<stem>.con.ptb``. Empty lines are skipped; ``# sent_id``
is the sentence's 1-based line number in the input and the PTB file holds the trees in the same order.

Every input is read and checked before anything is written (a bad line fails as ``file:line``). Batches
then run in file order and stream through the writers, one writer thread per output file fed by a short
queue: predictions are never all in memory, and each file is written atomically. DEP decodes with its
test-time tree decoder (``final_decode``). Scores of files with gold labels go to ``metrics.json`` as in
``mode=eval``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig

from mtlheads.checkpoint import load_model
from mtlheads.errors import ConfigError
from mtlheads.launch.jobs import job_dir
from mtlheads.predict.inputs import input_files, read_inputs, read_raw_text
from mtlheads.predict.outputs import sinks, write_gold
from mtlheads.predict.stream import fan_out, predict_stream
from mtlheads.report.tables import score_table
from mtlheads.utils.io import atomic_write_json

PREDICTIONS = "predictions"


def run(cfg: DictConfig) -> float | None:
    text = cfg.get("text")
    if text and any(p for p in (cfg.get("eval_files") or {}).values()):
        raise ConfigError("give text=<file> or eval_files.<task>=<file>, not both", key="text")
    model, tokenizer, train_cfg = load_model(cfg.ckpt)
    if text:
        inputs = [read_raw_text(str(text), str(cfg.get("tokenize") or "whitespace"), model.tasks, tokenizer)]
    else:
        inputs = read_inputs(input_files(cfg, model.tasks, train_cfg), model.tasks, tokenizer)
    out = job_dir(cfg)
    folder, progress = out / PREDICTIONS, bool(cfg.trainer.get("enable_progress_bar", True))
    plans = [(inp, sinks(inp, model.tasks, folder)) for inp in inputs]  # file names checked too
    # Every input is read and checked: only now is anything written.
    model.final_decode = True  # DEP: MST/Eisner repair of ill-formed argmax trees, as the test scores use
    accelerator = str(cfg.trainer.get("accelerator", "auto"))
    model.to("cuda" if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available() else "cpu")
    scores, records = {}, []
    for inp, files in plans:
        gold = {n for n, s in inp.splits.items() if inp.raw is None and _labelled(s.sentences)}
        metrics = {n: model.tasks[n].new_metric() for n in gold}
        fan_out(
            predict_stream(model, tokenizer, inp, cfg.batch, metrics=metrics, progress=progress),
            [w for _, w in files],
        )
        written = [p for p, _ in files] + write_gold(inp, model.tasks, folder)
        for name, metric in metrics.items():
            key = name if name not in scores else f"{name}:{Path(inp.path).stem}"
            scores[key] = {**metric.compute(), "file": inp.path, "sentences": len(inp.sentences)}
        records.append(
            {
                "tasks": list(inp.splits),
                "file": inp.path,
                "sentences": len(inp.sentences),
                "written": [str(p.relative_to(out)) for p in written],
            }
        )
    result = {"mode": "predict", "checkpoint": str(cfg.ckpt), "test": scores, "predictions": records}
    atomic_write_json(out / "metrics.json", result)
    numeric = {n: {k: v for k, v in r.items() if isinstance(v, float)} for n, r in scores.items()}
    listing = "\n".join(f"  {w}" for r in records for w in r["written"])
    table = f"{score_table({'predict': numeric})}\n\n" if numeric else ""
    print(f"\n{table}predictions in {out}:\n{listing}")
    tasks_scored = {n: v for n, v in numeric.items() if n in model.tasks}
    return model.score(tasks_scored) if tasks_scored else None


def _labelled(examples: list) -> bool:
    """Token-level files always carry gold (their readers demand it); a GLUE test file has no labels."""
    return all(getattr(e, "label", True) is not None for e in examples)
