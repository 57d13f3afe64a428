"""Multi-task training throughput: mtlheads' batching against the loops users really run.

Four ways to feed the SAME model (mtlheads' ``MultiTaskModel``: MiniLM ``WordEncoder`` + the task decoders),
with the same AdamW, the same gradient clipping, the same sentences and the same batch size in sentences:

* ``fixed``: shuffled sentences, batches of ``--batch-sentences`` of one task, tasks round-robin, every batch
  padded to ``--pad-length`` (128) subwords (a tokenizer called with ``padding="max_length"``);
* ``dynamic``: the same random batches padded to their longest sentence (``DataCollatorWithPadding``);
* ``grouped``: ``dynamic`` plus ``transformers``' ``group_by_length``: per task a random permutation cut into
  mega-batches of ``--megabatch`` (50) batches, each sorted by length (longest first), the longest
  sentence's batch first (``get_length_grouped_indices``);
* ``mtlheads``: ``MultiTaskBatchSampler`` + ``train_loader``: length-sorted batches under a token budget
  (``--batch-sentences`` sentences and ``--batch-sentences x --pad-length`` subwords), shuffled, in a
  temperature-sampled task order, dynamic padding.

All four run in ONE process on one model, interleaved step by step: a round is one pass over the data of
every variant, one batch of each variant in turn, the order reversed every other round. Every step is timed
from fetching its batch (tokenization and targets in the collate) to the optimizer step. The metric is real
(non-pad) subwords per second; the per-round ratios mtlheads/baseline show how far the noise moved them.
Peak RSS needs a process per variant: with ``--rss`` each variant also runs one pass in a child process.
Only sentences of at most ``--pad-length`` subwords are used, so ``fixed`` never truncates.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from itertools import zip_longest

import numpy as np
from ewt_setup import load_tasks, minilm, split_of
from harness import (
    flags,
    fmt_spread,
    loadavg,
    peak_rss_mib,
    report_header,
    require_ewt,
    round_orders,
    run_child,
    write_report,
)
from harness import ratios as ratios_of
from harness import spread as spread_of

VARIANTS = ("fixed", "dynamic", "grouped", "mtlheads")
BASELINES = VARIANTS[:3]
TASKSETS = {"ewt3": ("pos", "ner", "dep"), "ewt5": ("pos", "ner", "dep", "con", "srl")}
TARGET_VS_FIXED, TARGET_VS_DYNAMIC = 3.0, 1.3


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--taskset", choices=tuple(TASKSETS), default="ewt3")
    p.add_argument("--sentences", type=int, default=150, help="training sentences per task")
    p.add_argument("--batch-sentences", type=int, default=32)
    p.add_argument("--pad-length", type=int, default=128, help="the fixed length of 'fixed'")
    p.add_argument("--megabatch", type=int, default=50, help="batches per length-sorted mega-batch")
    p.add_argument("--rounds", type=int, default=3, help="passes over the data of every variant")
    p.add_argument("--warmup-rounds", type=int, default=1, help="untimed passes first (every batch shape)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--rss", action=argparse.BooleanOptionalAction, default=True, help="peak RSS per child")
    p.add_argument("--rss-steps", type=int, default=3, help="a child's steps: its largest padded batches")
    p.add_argument("--out", default=None, help="default benchmarks/results/throughput_<taskset>.json")
    p.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)  # a child measuring peak RSS
    return p.parse_args(argv)


# ---- the four batch orders: lists of (task, [sentence index]) for one epoch --------------------------
def round_robin(per_task: list[list[tuple[str, list[int]]]]) -> list[tuple[str, list[int]]]:
    """One batch of each task in turn until every task's batches are used."""
    return [b for group in zip_longest(*per_task) for b in group if b is not None]


def random_batches(splits: dict, bs: int, rng: np.random.Generator) -> list[tuple[str, list[int]]]:
    """``fixed`` and ``dynamic``: shuffled sentences in batches of ``bs``, tasks round-robin."""
    per_task = []
    for name, split in splits.items():
        order = rng.permutation(len(split.lengths)).tolist()
        per_task.append([(name, order[i : i + bs]) for i in range(0, len(order), bs)])
    return round_robin(per_task)


def length_grouped(lengths: list[int], bs: int, megabatch: int, rng: np.random.Generator) -> list[int]:
    """The sentence order of ``transformers``' ``get_length_grouped_indices`` (``group_by_length``)."""
    perm = rng.permutation(len(lengths)).tolist()
    size = megabatch * bs
    megas = [
        sorted(perm[i : i + size], key=lambda j: lengths[j], reverse=True) for i in range(0, len(perm), size)
    ]
    top = int(np.argmax([lengths[m[0]] for m in megas]))
    megas[0][0], megas[top][0] = megas[top][0], megas[0][0]  # the longest sentence in the first batch
    return [j for m in megas for j in m]


def grouped_batches(splits: dict, bs: int, megabatch: int, rng: np.random.Generator) -> list:
    per_task = []
    for name, split in splits.items():
        order = length_grouped(split.lengths, bs, megabatch, rng)
        per_task.append([(name, order[i : i + bs]) for i in range(0, len(order), bs)])
    return round_robin(per_task)


def mtlheads_batches(splits: dict, args: argparse.Namespace, epoch: int) -> list:
    from mtlheads.training.data import MultiTaskBatchSampler
    from mtlheads.training.sampler import TemperatureSampler

    sampler = MultiTaskBatchSampler(
        lengths={n: s.lengths for n, s in splits.items()},
        max_tokens=args.batch_sentences * args.pad_length,
        max_sentences=args.batch_sentences,
        sampler=TemperatureSampler(),
        seed=args.seed,
    )
    sampler.set_epoch(epoch)
    return [(b[0][0], [i for _, i in b]) for b in sampler]


def epoch_batches(variant: str, splits: dict, args: argparse.Namespace, epoch: int) -> list:
    rng = np.random.default_rng([args.seed, epoch])
    if variant in ("fixed", "dynamic"):
        return random_batches(splits, args.batch_sentences, rng)
    if variant == "grouped":
        return grouped_batches(splits, args.batch_sentences, args.megabatch, rng)
    return mtlheads_batches(splits, args, epoch)


def pad_fixed(inputs: dict, length: int, pad_id: int) -> dict:
    """Pads every ``tokenize_words`` tensor to ``length`` subwords (sentences never exceed it here)."""
    import torch.nn.functional as F

    fill = {"input_ids": pad_id, "attention_mask": 0, "word_index": -1, "token_type_ids": 0}
    return {k: F.pad(t, (0, length - t.shape[1]), value=fill[k]) for k, t in inputs.items()}


# ---- setup and one step -----------------------------------------------------------------------------
class Bench:
    """The model, optimizer, data and collate every variant shares."""

    def __init__(self, args: argparse.Namespace, data_dir):
        import torch

        from mtlheads.model import MultiTaskModel, OptimConfig
        from mtlheads.training.data import Collate

        self.torch, self.args = torch, args
        torch.set_num_threads(args.threads)
        torch.manual_seed(args.seed)
        encoder, self.tokenizer = minilm()
        names = TASKSETS[args.taskset]
        self.tasks, sentences = load_tasks(names, data_dir)
        ref = split_of(
            self.tasks[names[0]], self.tokenizer, sentences[names[0]]["train"][: 3 * args.sentences]
        )
        keep = [i for i, n in enumerate(ref.lengths) if n <= args.pad_length][: args.sentences]
        # The files hold the same sentences in the same order: every task trains on the same ones.
        self.splits = {
            n: split_of(self.tasks[n], self.tokenizer, [sentences[n]["train"][i] for i in keep])
            for n in names
        }
        self.model = MultiTaskModel(encoder=encoder, tasks=self.tasks, optim=OptimConfig()).train()
        optim = self.model.optim
        self.opt = torch.optim.AdamW(
            [
                {"params": self.model.encoder.parameters(), "lr": optim.encoder_lr},
                {"params": self.model.decoders.parameters(), "lr": optim.decoder_lr},
            ],
            eps=optim.eps,
        )
        self.collate = Collate(tokenizer=self.tokenizer, tasks=self.tasks)
        self.pad_id = self.tokenizer.pad_token_id or 0

    def step(self, variant: str, task: str, idx: list[int]) -> dict:
        """One timed step: collate, forward, loss, backward, clip, AdamW."""
        start = time.perf_counter()
        batch = self.collate([(task, self.splits[task].sentences[i]) for i in idx])
        inputs = batch["inputs"]
        if variant == "fixed":
            inputs = pad_fixed(inputs, self.args.pad_length, self.pad_id)
        out, mask = self.model(task, inputs)
        loss = self.tasks[task].loss(out, batch["targets"], mask)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        return {
            "seconds": time.perf_counter() - start,
            "real_tokens": int(batch["inputs"]["attention_mask"].sum()),
            "padded_tokens": int(inputs["input_ids"].numel()),
            "sentences": len(idx),
        }


def add(total: dict, step: dict) -> None:
    for k, v in step.items():
        total[k] = total.get(k, 0) + v
    total["batches"] = total.get("batches", 0) + 1


def child(args: argparse.Namespace, data_dir) -> dict:
    """``args.variant`` alone: its ``--rss-steps`` largest padded batches of the first epoch (the ones that
    set the peak), after a warm-up step. Peak RSS is VmHWM, which starts afresh at exec (``ru_maxrss``
    keeps the parent's peak from before the fork)."""
    bench = Bench(args, data_dir)
    batches = epoch_batches(args.variant, bench.splits, args, 0)
    lengths = {n: s.lengths for n, s in bench.splits.items()}

    def padded(b: tuple[str, list[int]]) -> int:
        task, idx = b
        return len(idx) * (args.pad_length if args.variant == "fixed" else max(lengths[task][i] for i in idx))

    bench.step(args.variant, *batches[0])
    total: dict = {}
    for task, idx in sorted(batches, key=padded, reverse=True)[: args.rss_steps]:
        add(total, bench.step(args.variant, task, idx))
    return {**total, **peak_rss_mib()}


def main() -> None:
    args = parse_args()
    data_dir = require_ewt("conll2012/train.gold_conll")
    if args.variant:
        print(json.dumps({"variant": args.variant, **child(args, data_dir)}))
        return
    out = args.out or f"benchmarks/results/throughput_{args.taskset}.json"
    report = report_header(args, data_dir)
    children = rss_children(args) if args.rss else {}  # before this process grows: nothing to inherit
    report["load_before_rounds"] = loadavg()
    bench = Bench(args, data_dir)
    # Warm-up, not timed: oneDNN/MKL prepare kernels per matrix shape, so every batch shape of every variant
    # is run once first (a first pass ran 10-30% slower than the later ones).
    for w in range(args.warmup_rounds):
        for v in VARIANTS:
            for task, idx in epoch_batches(v, bench.splits, args, 10_000 + w):  # not a timed epoch
                bench.step(v, task, idx)
    rounds = {v: [] for v in VARIANTS}
    for r, order in enumerate(round_orders(VARIANTS, args.rounds)):
        batches = {v: epoch_batches(v, bench.splits, args, r) for v in VARIANTS}
        totals = {v: {} for v in VARIANTS}
        for i in range(max(len(b) for b in batches.values())):
            for v in order:
                if i < len(batches[v]):
                    add(totals[v], bench.step(v, *batches[v][i]))
        for v in VARIANTS:
            rounds[v].append({**totals[v], "tokens_per_s": totals[v]["real_tokens"] / totals[v]["seconds"]})
        done = ", ".join(f"{v} {rounds[v][-1]['tokens_per_s']:.0f}" for v in VARIANTS)
        print(f"  round {r + 1}/{args.rounds} (tokens/s): {done}", file=sys.stderr)
    report["load_after"] = loadavg()
    variants = {}
    for v in VARIANTS:
        rr = rounds[v]
        real, padded = sum(x["real_tokens"] for x in rr), sum(x["padded_tokens"] for x in rr)
        variants[v] = {
            "rounds": rr,
            "tokens_per_s": spread_of(x["tokens_per_s"] for x in rr),
            "pad_fraction": 1 - real / padded,
            "padded_per_real": padded / real,
        }
        if v in children:
            variants[v]["child"] = children[v]
    mt = [x["tokens_per_s"] for x in rounds["mtlheads"]]
    for v in BASELINES:
        per_round = ratios_of(mt, [x["tokens_per_s"] for x in rounds[v]])
        variants[v]["mtlheads_ratio_rounds"] = per_round
        variants[v]["mtlheads_ratio"] = spread_of(per_round)
    best = max(("dynamic", "grouped"), key=lambda v: variants[v]["tokens_per_s"]["median"])
    report.update(
        variants=variants,
        best_dynamic=best,
        targets={"vs_fixed": TARGET_VS_FIXED, "vs_best_dynamic": TARGET_VS_DYNAMIC},
        parent_peak_rss_mib=peak_rss_mib()["vmhwm_mib"],
    )
    table = render(report, args)
    print(table)
    print(f"wrote {write_report(out, report, table)}")


def rss_children(args: argparse.Namespace) -> dict:
    """Per variant, a child process running its largest batches: its own peak RSS."""
    names = (
        "taskset",
        "sentences",
        "batch_sentences",
        "pad_length",
        "megabatch",
        "threads",
        "seed",
        "rss_steps",
    )
    out = {}
    for v in VARIANTS:
        out[v] = run_child(__file__, ["--variant", v, *flags(args, names)], threads=args.threads, label=v)
        print(f"  child {v}: peak RSS (VmHWM) {out[v]['vmhwm_mib']:.0f} MiB", file=sys.stderr)
    return out


def render(report: dict, args: argparse.Namespace) -> str:
    v, names = report["variants"], ", ".join(TASKSETS[args.taskset])
    head = f"{'variant':<10}{'tokens/s median [min-max]':>28}{'pad frac':>10}"
    lines = [
        f"Training throughput, {args.taskset} ({names}), {args.sentences} sent./task "
        f"(<= {args.pad_length} subwords), {args.batch_sentences} sent./batch, MiniLM, "
        f"{args.threads} thread(s); {args.rounds} rounds interleaved step by step in one process",
        head + f"{'mtlheads/x per round':>30}{'peak RSS':>10}",
    ]
    for name in VARIANTS:
        s = v[name]
        per_round = " ".join(f"{x:.2f}" for x in s.get("mtlheads_ratio_rounds", [])) or "-"
        rss = f"{s['child']['vmhwm_mib']:.0f} MiB" if "child" in s else "-"
        tps = fmt_spread(s["tokens_per_s"], 0)
        lines.append(f"{name:<10}{tps:>28}{s['pad_fraction']:>10.2f}{per_round:>30}{rss:>10}")
    best = report["best_dynamic"]
    fx, bd = v["fixed"]["mtlheads_ratio"]["median"], v[best]["mtlheads_ratio"]["median"]
    lines += [
        f"mtlheads / fixed: {fmt_spread(v['fixed']['mtlheads_ratio'], 2, 'x')} "
        f"(target >= {TARGET_VS_FIXED}x: {'met' if fx >= TARGET_VS_FIXED else 'NOT met'})",
        f"mtlheads / best of dynamic, grouped ({best}): {fmt_spread(v[best]['mtlheads_ratio'], 2, 'x')} "
        f"(target >= {TARGET_VS_DYNAMIC}x: {'met' if bd >= TARGET_VS_DYNAMIC else 'NOT met'})",
        "padded subwords per real subword: "
        + ", ".join(f"{n} {v[n]['padded_per_real']:.2f}" for n in VARIANTS),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
