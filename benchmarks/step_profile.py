"""Where a training step and an evaluation batch spend their time, per task, all tasks in one process.

One MiniLM ``MultiTaskModel`` with the five EWT decoders. Every task trains and evaluates on the SAME
sentences (the UD, NER and CoNLL-2012 files hold the same sentences in the same order): a seeded random
sample of train and dev, cut into the framework's batches (``token_budget_batches``). Each round runs one
training step and one evaluation batch of every task, in an order reversed every other round, so machine
load hits the tasks alike. A training step is split into

* ``enc_fwd``: ``WordEncoder`` forward (word dropout, MiniLM, pooling);
* ``dec_fwd``: the decoder module (scorers; SRL's span enumeration and pruning);
* ``loss_fwd``: the task loss (CON: the TreeCRF inside pass; DEP/NER: cross entropies);
* ``dec_bwd``: backward of loss + decoder down to the encoder output (a detached leaf);
* ``enc_bwd``: backward through the encoder;
* ``opt``: AdamW step + zero_grad;

and an evaluation batch (``inference_mode``, as Lightning validates) into ``enc_fwd``, ``dec_fwd``,
``decode`` (what dev evaluation runs: DEP argmax, CON MBR = marginals + CKY, SRL DP, NER greedy) and
``decode_final`` (test-time decoding: DEP with the MST repair; Eisner too under ``decode_eisner``).

With ``--old`` (default) the rounds also run ``dep@old`` and ``con@old``: the same steps with the decoder code
as it was before this repository's decoder rework (``decoder_ab.py``: einsum biaffine, losses over the full
relation/label tensors), so before and after are compared in one run, under one load.

The JSON also projects the share of dev evaluation in one MTL-5 epoch on the full EWT: per-sentence costs
times the full train and dev sizes (each task's train split is drawn about once per epoch: the five tasks
have the same number of batches, so the temperature sampler draws them equally often).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

import numpy as np
from decoder_ab import einsum_scores, old_output
from ewt_setup import load_tasks, minilm, sample_batches, split_of
from harness import (
    fmt_spread,
    loadavg,
    peak_rss_mib,
    report_header,
    require_ewt,
    round_orders,
    setup_torch,
    write_report,
)
from harness import spread as spread_of

TASKS = ("pos", "ner", "dep", "con", "srl")
TRAIN_PARTS = ("enc_fwd", "dec_fwd", "loss_fwd", "dec_bwd", "enc_bwd", "opt")
EVAL_PARTS = ("enc_fwd", "dec_fwd", "decode", "decode_final", "decode_eisner")
TARGET_TRAIN_RATIO, TARGET_EVAL_SHARE = 0.85, 0.15


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    p.add_argument("--sentences", type=int, default=384, help="train sentences sampled (same for all tasks)")
    p.add_argument("--dev-sentences", type=int, default=384)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--max-tokens", type=int, default=6400)
    p.add_argument("--max-sentences", type=int, default=64)
    p.add_argument("--eval-max-tokens", type=int, default=12800)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--label", default="", help="a tag stored in the JSON (e.g. before/after)")
    p.add_argument("--out", default="benchmarks/results/step_profile.json")
    p.add_argument(
        "--old", action=argparse.BooleanOptionalAction, default=True, help="dep@old and con@old too"
    )
    p.add_argument("--render", help="recompute the summary and table of this saved JSON, run nothing")
    return p.parse_args(argv)


class Clock:
    """Accumulates wall time per named part."""

    def __init__(self) -> None:
        self.t = time.perf_counter()
        self.parts: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.parts[name] = self.parts.get(name, 0.0) + now - self.t
        self.t = now


def train_step(model, opt, name: str, batch: dict) -> dict[str, float]:
    """One training step, timed in parts. ``<task>@old``: that task with the decoder code this repository
    had before its decoders were reworked (einsum biaffine, losses over the full label tensors)."""
    if name.endswith("@old"):
        with old_decoders():
            return train_step(model, opt, name[:-4], batch)
    task, decoder = model.tasks[name], model.decoders[name]
    c = Clock()
    hidden, mask = model.encoder(
        batch["inputs"], cls_is_root=task.cls_is_root, sep_is_eos=getattr(task, "sep_is_eos", False)
    )
    c.lap("enc_fwd")
    leaf = hidden.detach().requires_grad_(True)
    out = decoder(leaf, mask)
    if OLD["on"]:
        out = old_output(name, out)
    c.lap("dec_fwd")
    loss = task.loss(out, batch["targets"], mask)
    c.lap("loss_fwd")
    loss.backward()
    c.lap("dec_bwd")
    hidden.backward(leaf.grad)
    c.lap("enc_bwd")
    opt.step()
    opt.zero_grad(set_to_none=True)
    c.lap("opt")
    return c.parts


OLD = {"on": False}


@contextlib.contextmanager
def old_decoders():
    """``Biaffine.forward`` as the einsum it was, and full-tensor decoder outputs (``decoder_ab.py``)."""
    import mtlheads.tasks.biaffine as biaffine

    kept = biaffine.Biaffine.forward
    biaffine.Biaffine.forward = lambda self, x, y: einsum_scores(self.pairs(x, y))
    OLD["on"] = True
    try:
        yield
    finally:
        biaffine.Biaffine.forward, OLD["on"] = kept, False


def eval_batch(model, name: str, batch: dict) -> dict[str, float]:
    import torch

    task, decoder = model.tasks[name], model.decoders[name]
    with torch.inference_mode():
        c = Clock()
        hidden, mask = model.encoder(
            batch["inputs"], cls_is_root=task.cls_is_root, sep_is_eos=getattr(task, "sep_is_eos", False)
        )
        c.lap("enc_fwd")
        out = decoder(hidden, mask)
        c.lap("dec_fwd")
        task.decode(out, mask, final=False)
        c.lap("decode")
        task.decode(out, mask, final=True)
        c.lap("decode_final")
        if name == "dep":
            kept, task.decoder = task.decoder, "eisner"
            task.decode(out, mask, final=True)
            task.decoder = kept
            c.lap("decode_eisner")
    return c.parts


def main() -> None:
    args = parse_args()
    if args.render:
        return rerender(args.render)
    data_dir = require_ewt("conll2012/train.gold_conll")
    torch = setup_torch(args.threads, args.seed)
    from mtlheads.model import MultiTaskModel, OptimConfig
    from mtlheads.training.data import Collate

    report = report_header(args, data_dir)
    encoder, tokenizer = minilm()
    tasks, sentences = load_tasks(args.tasks, data_dir, splits=("train", "dev"))
    model = MultiTaskModel(encoder=encoder, tasks=tasks, optim=OptimConfig()).train()
    optim = model.optim
    opt = torch.optim.AdamW(
        [
            {"params": model.encoder.parameters(), "lr": optim.encoder_lr},
            {"params": model.decoders.parameters(), "lr": optim.decoder_lr},
        ],
        eps=optim.eps,
    )
    collate = Collate(tokenizer=tokenizer, tasks=tasks)
    ref = args.tasks[0]  # every file holds the same sentences: one batching serves all tasks
    full = {s: split_of(tasks[ref], tokenizer, sentences[ref][s]) for s in ("train", "dev")}
    rng = np.random.default_rng(args.seed)
    train_idx = sample_batches(
        full["train"].lengths,
        args.sentences,
        rng,
        max_tokens=args.max_tokens,
        max_sentences=args.max_sentences,
    )
    dev_idx = sample_batches(
        full["dev"].lengths,
        args.dev_sentences,
        rng,
        max_tokens=args.eval_max_tokens,
        max_sentences=args.max_sentences,
    )
    rng.shuffle(train_idx)

    def batch(name: str, split: str, idx: list[int]) -> dict:
        return collate([(name, sentences[name][split][i]) for i in idx])

    train_batches = {n: [batch(n, "train", b) for b in train_idx] for n in args.tasks}
    dev_batches = {n: [batch(n, "dev", b) for b in dev_idx] for n in args.tasks}
    for n in args.tasks:  # warm-up: one step and one evaluation batch of each task, not timed
        train_step(model, opt, n, train_batches[n][0])
        model.eval()
        eval_batch(model, n, dev_batches[n][0])
        model.train()

    olds = [f"{n}@old" for n in ("dep", "con") if args.old and n in args.tasks]
    for n in olds:
        train_batches[n] = train_batches[n[:-4]]
        train_step(model, opt, n, train_batches[n][0])
    train = {n: [] for n in [*args.tasks, *olds]}  # per round: {part: seconds, "sentences": k}
    evals = {n: [] for n in args.tasks}
    for r, order in enumerate(round_orders([*args.tasks, *olds], args.rounds)):
        tb, db = train_idx[r % len(train_idx)], dev_idx[r % len(dev_idx)]
        for n in order:
            model.train()
            train[n].append(
                {**train_step(model, opt, n, train_batches[n][r % len(train_idx)]), "sentences": len(tb)}
            )
            if n in evals:
                model.eval()
                evals[n].append(
                    {**eval_batch(model, n, dev_batches[n][r % len(dev_idx)]), "sentences": len(db)}
                )
        print(f"  round {r + 1}/{args.rounds} done", file=sys.stderr)
    report["load_after"] = loadavg()
    report.update(
        rounds={"train": train, "eval": evals},
        sizes={"train_sentences": len(full["train"].sentences), "dev_sentences": len(full["dev"].sentences)},
        batches={"train": [len(b) for b in train_idx], "dev": [len(b) for b in dev_idx]},
        peak_rss_mib=peak_rss_mib()["vmhwm_mib"],
    )
    summarise(report, args.tasks)
    table = render(report, args)
    print(table)
    print(f"wrote {write_report(args.out, report, table)}")


DECODER = ("dec_fwd", "loss_fwd", "dec_bwd")


def per_sentence(rounds: list[dict], parts) -> list[float]:
    return [sum(x.get(p, 0.0) for p in parts) / x["sentences"] for x in rounds]


def summarise(report: dict, tasks: list[str]) -> None:
    """Fills ``report["tasks"]`` and ``report["projection"]`` from the raw rounds in ``report["rounds"]``.

    Two speed ratios to the first task (POS) per round: ``raw``, its step time over this task's; and
    ``same_encoder``, POS's step time over POS's step with this task's decoder parts in place of POS's.
    The encoder does the same work for every task (the same sentences and subwords), so the second keeps
    the decoders' difference and drops the encoder's noise between two steps.
    """
    train, evals = report["rounds"]["train"], report["rounds"]["eval"]
    base, summary = tasks[0], {}
    for n in train:  # the tasks, then any <task>@old (no evaluation rounds)
        tr_total = per_sentence(train[n], TRAIN_PARTS)
        ev_total = per_sentence(evals.get(n, []), ("enc_fwd", "dec_fwd", "decode"))
        pos_total, pos_dec = per_sentence(train[base], TRAIN_PARTS), per_sentence(train[base], DECODER)
        dec = per_sentence(train[n], DECODER)
        raw = [b / t for b, t in zip(pos_total, tr_total, strict=True)]
        same = [b / (b - bd + d) for b, bd, d in zip(pos_total, pos_dec, dec, strict=True)]
        summary[n] = {
            "train_ms_per_sentence": {
                p: spread_of(1e3 * v for v in per_sentence(train[n], (p,))) for p in TRAIN_PARTS
            },
            "eval_ms_per_sentence": {
                p: spread_of(1e3 * v for v in per_sentence(evals[n], (p,))) for p in EVAL_PARTS
            },
            "decoder_share_of_step": spread_of(d / t for d, t in zip(dec, tr_total, strict=True)),
            "train_sentences_per_s": spread_of(1 / v for v in tr_total),
            "eval_sentences_per_s": spread_of(1 / v for v in ev_total),  # {} for <task>@old
            "train_s_per_sentence_rounds": tr_total,
            "eval_s_per_sentence_rounds": ev_total,
            f"speed_vs_{base}_raw_rounds": raw,
            f"speed_vs_{base}_raw": spread_of(raw),
            f"speed_vs_{base}_same_encoder_rounds": same,
            f"speed_vs_{base}_same_encoder": spread_of(same),
        }
    # Projected dev share of one full-EWT epoch of the profiled tasks (median per-sentence costs).
    sizes = report["sizes"]
    epoch = (
        sum(float(np.median(summary[n]["train_s_per_sentence_rounds"])) for n in tasks)
        * sizes["train_sentences"]
    )
    dev = (
        sum(float(np.median(summary[n]["eval_s_per_sentence_rounds"])) for n in tasks)
        * sizes["dev_sentences"]
    )
    report["tasks"] = summary
    report["projection"] = {
        **sizes,
        "epoch_train_s": epoch,
        "dev_eval_s": dev,
        "dev_share_of_epoch": dev / (epoch + dev),
        "target_share": TARGET_EVAL_SHARE,
    }


def render(report: dict, args: argparse.Namespace) -> str:
    base = args.tasks[0]
    head = f"{'task':<8}" + "".join(f"{p:>9}" for p in TRAIN_PARTS) + f"{'sent/s':>8}"
    lines = [
        f"Training step per task (ms per sentence, median over {args.rounds} interleaved rounds), "
        f"{args.sentences} train / {args.dev_sentences} dev sentences, batches <= {args.max_sentences} "
        f"sent. / {args.max_tokens} subwords, {args.threads} thread(s)"
        + (f" [{args.label}]" if args.label else ""),
        head + f"{'dec share':>10}  speed vs {base}: same encoder / raw, median [min-max]",
    ]
    for n, s in report["tasks"].items():
        med = [s["train_ms_per_sentence"][p]["median"] for p in TRAIN_PARTS]
        rate, share = s["train_sentences_per_s"]["median"], 100 * s["decoder_share_of_step"]["median"]
        lines.append(
            f"{n:<8}"
            + "".join(f"{v:>9.2f}" for v in med)
            + f"{rate:>8.1f}{share:>9.1f}%  "
            + fmt_spread(s[f"speed_vs_{base}_same_encoder"], 2, "x")
            + " / "
            + fmt_spread(s[f"speed_vs_{base}_raw"], 2, "x")
        )
    lines += [
        "",
        "Evaluation batch per task (ms per sentence, median)",
        f"{'task':<8}" + "".join(f"{p:>14}" for p in EVAL_PARTS),
    ]
    for n, s in report["tasks"].items():
        lines.append(
            f"{n:<5}" + "".join(f"{s['eval_ms_per_sentence'][p]['median']:>14.2f}" for p in EVAL_PARTS)
        )
    pr = report["projection"]
    lines += [
        "",
        f"projected full-EWT epoch ({pr['train_sentences']} train sentences x {len(args.tasks)} tasks): "
        f"{pr['epoch_train_s']:.0f} s training + {pr['dev_eval_s']:.0f} s dev evaluation "
        f"({pr['dev_sentences']} x {len(args.tasks)}): dev share {100 * pr['dev_share_of_epoch']:.1f}% "
        f"(target <= {100 * TARGET_EVAL_SHARE:.0f}%)",
        f"peak RSS {report['peak_rss_mib']:.0f} MiB",
    ]
    return "\n".join(lines)


def rerender(path: str) -> None:
    """Recomputes the summary and table of a saved run (``--render PATH``) and writes them back."""
    import json

    report = json.loads(Path(path).read_text())
    if "rounds" not in report:  # written before the raw rounds had their own key
        report["rounds"] = {
            "train": {n: t["train_rounds"] for n, t in report["tasks"].items()},
            "eval": {n: t["eval_rounds"] for n, t in report["tasks"].items()},
        }
        report["sizes"] = {k: report["projection"][k] for k in ("train_sentences", "dev_sentences")}
    args = argparse.Namespace(**report["args"])
    summarise(report, args.tasks)
    table = render(report, args)
    print(table)
    write_report(path, report, table)


if __name__ == "__main__":
    main()
