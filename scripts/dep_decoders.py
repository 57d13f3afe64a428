"""DEP test-time decoders side by side: one checkpoint's dev and test UAS/LAS with MST and with Eisner.

    python scripts/dep_decoders.py <run dir or best.ckpt> --out docs/runs/<name>/dep_decoders.json

Both decoders repair only the sentences whose argmax heads are not a well-formed tree (Eisner also those
that are not projective); the rest is the same prediction. Writes the scores and the files as JSON.
"""

from __future__ import annotations

import argparse
import json

import pytorch_lightning as pl

from mtlheads.build import read_split
from mtlheads.checkpoint import load_model
from mtlheads.fit import evaluate
from mtlheads.training.data import eval_loaders
from mtlheads.utils.io import atomic_write_json


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("ckpt")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    model, tokenizer, cfg = load_model(args.ckpt)
    task = model.tasks["dep"]
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    model.final_decode = True
    results = {"checkpoint": args.ckpt, "splits": {}}
    for split in ("dev", "test"):
        path = cfg.tasks.dep[split]
        data = read_split(task, path, tokenizer)
        loaders = eval_loaders({"dep": data}, tasks=model.tasks, tokenizer=tokenizer, batch=cfg.batch)
        scores = {}
        for decoder in ("mst", "eisner"):
            task.decoder = decoder
            scores[decoder] = evaluate(trainer, model, loaders, split="test")["dep"]
        results["splits"][split] = {"file": str(path), "sentences": len(data.sentences), **scores}
        print(split, json.dumps(scores))
    atomic_write_json(args.out, results)


if __name__ == "__main__":
    main()
