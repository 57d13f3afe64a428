"""Decoder forward + backward before and after this repository's decoder changes, in one process.

The machine load moves a step's time between two runs of ``step_profile.py`` by more than the change being
measured, so this compares the decoders of DEP, CON and NER to their former selves side by side: the same
decoder weights, the same batches (``step_profile.py``'s sample of EWT train, random encoder outputs), one
forward + loss + backward of each version per round, in an order reversed every other round.

* ``old``: the scorers as they were (``torch.einsum("bxi,oij,byj->boxy")`` in ``Biaffine``) and the losses
  over the full (B, N, N, |R|) relation and (B, N+1, N+1, |L|) label tensors (the losses still take them:
  ``out["rel"]`` / ``out["label"]``);
* ``new``: the chunked biaffine and the losses that score only the gold arcs' relations and the gold spans'
  labels (``PairScores.at``).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from ewt_setup import load_tasks, minilm, sample_batches, split_of
from harness import (
    fmt_spread,
    loadavg,
    report_header,
    require_ewt,
    round_orders,
    setup_torch,
    spread,
    write_report,
)
from harness import ratios as ratios_of

TASKS = ("dep", "con", "ner")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    p.add_argument("--sentences", type=int, default=384)
    p.add_argument("--rounds", type=int, default=5, help="passes over the batches")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", default="benchmarks/results/decoder_ab.json")
    return p.parse_args(argv)


def einsum_scores(pairs):
    """The replaced ``Biaffine.forward`` on a ``PairScores``' factors: (B, O, N, M)."""
    import torch

    return torch.einsum("bxi,oij,byj->boxy", pairs.x, pairs.weight, pairs.y)


def old_output(name: str, out: dict) -> dict:
    """The decoder output as the old decoders returned it: full tensors from the einsum."""
    if name == "dep":
        return {"arc": out["arc"], "rel": einsum_scores(out["rel_pairs"]).permute(0, 2, 3, 1)}
    if name == "con":
        label = einsum_scores(out["label_pairs"]).permute(0, 2, 3, 1)
        return {"span": out["span"], "label": label, "lengths": out["lengths"]}
    return out


def main() -> None:
    args = parse_args()
    data_dir = require_ewt("conll2012/train.gold_conll")
    torch = setup_torch(args.threads, args.seed)
    import mtlheads.tasks.biaffine as biaffine

    report = report_header(args, data_dir)
    _, tokenizer = minilm()
    tasks, sentences = load_tasks(args.tasks, data_dir)
    ref = split_of(tasks[args.tasks[0]], tokenizer, sentences[args.tasks[0]]["train"])
    idx = sample_batches(
        ref.lengths, args.sentences, np.random.default_rng(args.seed), max_tokens=6400, max_sentences=64
    )
    new_forward = biaffine.Biaffine.forward

    def old_forward(self, x, y):
        return einsum_scores(self.pairs(x, y))

    results = {}
    for name in args.tasks:
        task = tasks[name]
        torch.manual_seed(args.seed)
        decoder = task.build_decoder(384).train()
        with torch.no_grad():  # trained-like weights (the biaffines start at zero)
            for p in decoder.parameters():
                p.add_(torch.randn_like(p) * 0.02)
        extra = int(task.cls_is_root) + int(getattr(task, "sep_is_eos", False))
        g = torch.Generator().manual_seed(args.seed)
        batches = []
        for b in idx:
            sents = [sentences[name]["train"][i] for i in b]
            n = torch.tensor([len(s.words) for s in sents])
            mask = torch.arange(int(n.max()) + extra)[None, :] < (n + extra)[:, None]
            hidden = torch.randn(len(sents), mask.shape[1], 384, generator=g)
            batches.append((hidden, mask, task.targets(sents), len(sents)))

        def step(version: str, batch, decoder=decoder, task=task, name=name) -> float:
            hidden, mask, targets, _ = batch
            h = hidden.clone().requires_grad_(True)
            biaffine.Biaffine.forward = old_forward if version == "old" else new_forward
            try:
                start = time.perf_counter()
                out = decoder(h, mask)
                loss = task.loss(old_output(name, out) if version == "old" else out, targets, mask)
                loss.backward()
                return time.perf_counter() - start
            finally:
                biaffine.Biaffine.forward = new_forward
                decoder.zero_grad(set_to_none=True)

        for v in ("old", "new"):
            step(v, batches[0])
        per_round = {"old": [], "new": []}
        for order in round_orders(("old", "new"), args.rounds):
            totals = {"old": 0.0, "new": 0.0}
            for batch in batches:
                for v in order:
                    totals[v] += step(v, batch)
            for v in totals:
                per_round[v].append(totals[v])
        speedup = ratios_of(per_round["old"], per_round["new"])
        sents = sum(b[3] for b in batches)
        results[name] = {
            v: {
                "ms_per_sentence": spread(1e3 * t / sents for t in per_round[v]),
                "seconds_rounds": per_round[v],
            }
            for v in ("old", "new")
        }
        results[name].update(speedup_rounds=speedup, speedup=spread(speedup), batches=[b[3] for b in batches])
        print(f"  {name}: new/old speed {fmt_spread(results[name]['speedup'], 2, 'x')}", file=sys.stderr)
    report.update(tasks=results, load_after=loadavg())
    lines = [
        f"Decoder forward + loss + backward, old vs new code, {args.sentences} EWT train sentences "
        f"({len(idx)} batches), random encoder outputs, {args.rounds} interleaved rounds, "
        f"{args.threads} thread(s)",
        f"{'task':<6}{'old ms/sent.':>20}{'new ms/sent.':>20}{'speedup [min-max]':>24}",
    ]
    for name, r in results.items():
        old, new = r["old"]["ms_per_sentence"], r["new"]["ms_per_sentence"]
        lines.append(
            f"{name:<6}{fmt_spread(old, 2):>20}{fmt_spread(new, 2):>20}{fmt_spread(r['speedup'], 2, 'x'):>24}"
        )
    table = "\n".join(lines)
    print(table)
    print(f"wrote {write_report(args.out, report, table)}")


if __name__ == "__main__":
    main()
