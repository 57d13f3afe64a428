"""CON's Tree-CRF loss, logZ forward + backward: autograd through the inside DP vs the outside pass.

* ``autograd``: the inside DP (``_charts``) differentiated by autograd, as ``inside`` was before: each
  width's slice writes into the charts make autograd copy the whole chart once per width in the backward;
* ``outside``: ``inside`` today, a ``torch.autograd.Function`` whose backward is the outside pass (span
  marginals handed down the widths in probability space).

Same random span scores on real EWT batches (the gold_conll train sentences' word counts, cut into batches
as mtlheads cuts them: <= 64 sentences / 6400 subwords, length-bucketed), alternated batch by batch in one
process, order reversed every other round. Reported: ms per sentence min/median/max over the rounds, the
per-round speedup, the largest gradient difference, the process's peak RSS.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/treecrf_ab.py          # --sentences 384 --rounds 10
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from ewt_setup import sample_batches, task_file
from harness import (
    fmt_spread,
    loadavg,
    peak_rss_mib,
    ratios,
    report_header,
    require_ewt,
    round_orders,
    setup_torch,
    spread,
    write_report,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sentences", type=int, default=384)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/treecrf_ab.json")
    return p.parse_args(argv)


def log_z_autograd(scores, lengths):
    """The former ``inside``: logZ read off the DP's chart, the gradient left to autograd."""
    import torch

    from mtlheads.tasks.treecrf import _charts

    by_start, _, _ = _charts(scores, lengths, use_max=False)
    return by_start[torch.arange(len(lengths)), 0, lengths]


def main() -> None:
    args = parse_args()
    torch = setup_torch(args.threads, args.seed)
    from mtlheads.data import read_conll2012
    from mtlheads.tasks.treecrf import inside

    data_dir = require_ewt("conll2012/train.gold_conll")
    report = report_header(args, data_dir)
    words = [len(s.words) for s in read_conll2012(str(task_file(data_dir, "con", "train")))]
    rng = np.random.default_rng(args.seed)
    # ~1.4 subwords per word in EWT: the word counts stand in for the subword budget's bucketing
    batches = sample_batches(words, args.sentences, rng, max_tokens=6400, max_sentences=64)
    inputs = []
    for b in batches:
        lengths = torch.tensor([words[i] for i in b])
        n = int(lengths.max())
        inputs.append((torch.randn(len(b), n + 1, n + 1), lengths))
    n_sent = sum(len(b) for b in batches)
    variants = {"autograd": log_z_autograd, "outside": inside}
    times: dict[str, list[float]] = {v: [] for v in variants}
    worst = 0.0
    for order in round_orders(variants, args.rounds):
        for v in order:
            elapsed, grads = 0.0, []
            for scores, lengths in inputs:
                leaf = scores.clone().requires_grad_()
                start = time.perf_counter()
                variants[v](leaf, lengths).sum().backward()
                elapsed += time.perf_counter() - start
                grads.append(leaf.grad)
            times[v].append(1000 * elapsed / n_sent)
            if v == "outside":
                ref = [s.clone().requires_grad_() for s, _ in inputs]
                for leaf, (_, lengths) in zip(ref, inputs, strict=True):
                    log_z_autograd(leaf, lengths).sum().backward()
                diffs = [(g - r.grad).abs().max().item() for g, r in zip(grads, ref, strict=True)]
                worst = max(worst, *diffs)
    speedups = ratios(times["autograd"], times["outside"])
    report.update(
        load_after=loadavg(),
        **peak_rss_mib(),
        batches=len(batches),
        ms_per_sentence={v: {"per_round": t, **spread(t)} for v, t in times.items()},
        speedup={"per_round": speedups, **spread(speedups)},
        max_abs_grad_diff=worst,
    )
    lines = [
        f"Tree-CRF logZ forward + backward, {n_sent} EWT train sentences ({len(batches)} batches), random "
        f"scores, {args.rounds} interleaved rounds, {args.threads} thread(s)",
        f"{'variant':10} {'ms/sentence':>24}",
        *(f"{v:10} {fmt_spread(spread(t), 3):>24}" for v, t in times.items()),
        f"speedup outside / autograd: {fmt_spread(spread(speedups), 2, 'x')}; per round "
        + ", ".join(f"{x:.2f}" for x in speedups),
        f"max |grad outside - grad autograd| = {worst:.1e}; peak RSS {report['peak_rss_mib']:.0f} MiB",
    ]
    table = "\n".join(lines)
    print(table)
    write_report(args.out, report, table)


if __name__ == "__main__":
    main()
