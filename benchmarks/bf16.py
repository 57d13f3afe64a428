"""bf16 on CPU: ``trainer.precision=bf16-mixed`` against fp32, speed, numerics and dev scores.

Lightning's ``bf16-mixed`` on CPU runs the forward pass (training and evaluation steps) under
``torch.autocast("cpu", dtype=torch.bfloat16)``: matmuls, linears and attention in bf16 with float32
weights, losses (cross entropy) in float32, backward and AdamW in float32, no loss scaling. This script does
exactly that around the same model code, three ways, all in one process:

* ``speed``: one MiniLM ``MultiTaskModel`` with the five EWT decoders; per round, every task runs one
  training step (forward, loss, backward, clip, AdamW) in fp32 and one in bf16-mixed on the same batch, in
  an order reversed every other round. Tokens/s and the per-round bf16/fp32 speed ratios.
* ``numerics``: fixed batches, dropout off, the same weights: each task's loss, its gradients (encoder and
  decoder), CON's log Z and gold-tree score, and the gradients of an L0 and an importance gate, bf16-mixed
  against fp32 (relative errors).
* ``train``: POS on a ``--train-sentences`` subset of EWT train, one epoch (``--epochs``), fp32 and bf16
  models trained side by side from the same initial weights and the same batch order, each evaluated on the
  full EWT dev in its own precision; seeds ``--seeds`` give the seed noise to judge the difference by.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time

import numpy as np
from ewt_setup import load_tasks, minilm, split_of
from harness import (
    fmt_spread,
    loadavg,
    peak_rss_mib,
    report_header,
    require_ewt,
    round_orders,
    setup_torch,
    spread,
    write_report,
)
from harness import ratios as ratios_of

TASKS = ("pos", "ner", "dep", "con", "srl")
PRECISIONS = ("fp32", "bf16")
TARGET_SPEEDUP = 1.3


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--parts", nargs="+", choices=("speed", "numerics", "train"), default=["speed", "numerics", "train"]
    )
    p.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    p.add_argument("--sentences", type=int, default=384, help="speed/numerics: train sentences sampled")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--train-sentences", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", default="benchmarks/results/bf16.json")
    return p.parse_args(argv)


def autocast(precision: str):
    import torch

    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def optimizer(model):
    import torch

    from mtlheads.model import _param_groups

    return torch.optim.AdamW(
        _param_groups(model.encoder, model.optim.encoder_lr, 0.0)
        + _param_groups(model.decoders, model.optim.decoder_lr, 0.0),
        eps=model.optim.eps,
    )


def train_step(model, opt, batch: dict, precision: str) -> float:
    import torch

    start = time.perf_counter()
    with autocast(precision):
        loss = model.task_loss(batch)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def batches_of(tasks, sentences, tokenizer, names, n: int, seed: int, max_tokens=6400, max_sentences=64):
    """The same ``n`` random train sentences for every task, as length-bucketed batches (collated)."""
    from mtlheads.training.batching import token_budget_batches
    from mtlheads.training.data import Collate

    ref = split_of(tasks[names[0]], tokenizer, sentences[names[0]]["train"])
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(ref.lengths), size=min(n, len(ref.lengths)), replace=False))
    idx = token_budget_batches(
        [ref.lengths[i] for i in pick], max_tokens=max_tokens, max_sentences=max_sentences
    )
    idx = [[int(pick[j]) for j in b] for b in idx]
    rng.shuffle(idx)
    collate = Collate(tokenizer=tokenizer, tasks=tasks)
    return {t: [collate([(t, sentences[t]["train"][i]) for i in b]) for b in idx] for t in names}


def speed(args, tasks, sentences, tokenizer, encoder) -> dict:
    from mtlheads.model import MultiTaskModel, OptimConfig

    model = MultiTaskModel(encoder=encoder, tasks=tasks, optim=OptimConfig()).train()
    opt = optimizer(model)
    batches = batches_of(tasks, sentences, tokenizer, args.tasks, args.sentences, args.seed)
    for t in args.tasks:
        for p in PRECISIONS:
            train_step(model, opt, batches[t][0], p)
    times = {(t, p): [] for t in args.tasks for p in PRECISIONS}
    tokens = {t: [] for t in args.tasks}
    for r, order in enumerate(round_orders(PRECISIONS, args.rounds)):
        for t in args.tasks:
            batch = batches[t][(r + 1) % len(batches[t])]
            for p in order:
                times[(t, p)].append(train_step(model, opt, batch, p))
            tokens[t].append(int(batch["inputs"]["attention_mask"].sum()))
        print(f"  speed round {r + 1}/{args.rounds}", file=sys.stderr)
    out = {}
    for t in args.tasks:
        per_round = ratios_of(times[(t, "fp32")], times[(t, "bf16")])  # bf16 speed / fp32 speed
        out[t] = {
            p: {"tokens_per_s": spread(n / s for n, s in zip(tokens[t], times[(t, p)], strict=True))}
            for p in PRECISIONS
        }
        out[t].update(speedup_rounds=per_round, speedup=spread(per_round))
    total = {p: sum(sum(times[(t, p)]) for t in args.tasks) for p in PRECISIONS}
    out["all"] = {"speedup": total["fp32"] / total["bf16"], "seconds": total}
    return out


def rel(a, b) -> float:
    """Relative error ``|a - b| / |b|`` (norms for tensors)."""
    import torch

    a, b = torch.as_tensor(a).double(), torch.as_tensor(b).double()
    return float((a - b).norm() / b.norm().clamp(min=1e-30))


def numerics(args, tasks, sentences, tokenizer, encoder) -> dict:
    import torch

    from mtlheads.heads.gate import head_shape, install_head_gate
    from mtlheads.heads.importance import ImportanceGate
    from mtlheads.heads.l0 import L0Gate
    from mtlheads.model import MultiTaskModel, OptimConfig
    from mtlheads.tasks.treecrf import inside

    torch.manual_seed(args.seed)
    model = MultiTaskModel(encoder=encoder, tasks=tasks, optim=OptimConfig())
    with torch.no_grad():  # decoders as after some training: the zero-initialised biaffines would score 0
        for p in model.decoders.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    model.eval()  # dropout and word dropout off: the two precisions see the same computation
    batches = batches_of(tasks, sentences, tokenizer, args.tasks, 128, args.seed + 1)
    out = {}
    for t in args.tasks:
        batch = batches[t][0]
        res = {}
        for p in PRECISIONS:
            model.zero_grad(set_to_none=True)
            with autocast(p):
                o, mask = model(t, batch["inputs"])
                loss = model.tasks[t].loss(o, batch["targets"], mask)
            loss.backward()
            grads = torch.cat([q.grad.flatten() for q in model.parameters() if q.grad is not None])
            res[p] = {"loss": float(loss), "grad": grads, "dtype": str(loss.dtype)}
            if t == "con":
                with autocast(p):
                    res[p]["log_z"] = inside(o["span"], o["lengths"]).detach()
                    res[p]["span_dtype"] = str(o["span"].dtype)
        out[t] = {
            "loss_fp32": res["fp32"]["loss"],
            "loss_bf16": res["bf16"]["loss"],
            "loss_rel_err": rel(res["bf16"]["loss"], res["fp32"]["loss"]),
            "grad_rel_err": rel(res["bf16"]["grad"], res["fp32"]["grad"]),
            "grad_cosine": float(
                torch.nn.functional.cosine_similarity(
                    res["bf16"]["grad"].double(), res["fp32"]["grad"].double(), dim=0
                )
            ),
            "loss_dtype_bf16": res["bf16"]["dtype"],
        }
        if t == "con":
            out[t]["log_z_rel_err"] = rel(res["bf16"]["log_z"], res["fp32"]["log_z"])
            out[t]["span_dtype_bf16"] = res["bf16"]["span_dtype"]
        print(f"  numerics {t}: {out[t]}", file=sys.stderr)
    # Gates: the gradient a learnable gate gets, bf16-mixed against fp32.
    layers, heads = head_shape(encoder.model)
    batch = batches[args.tasks[0]][0]
    for name, gate in (
        ("l0_gate", L0Gate(num_layers=layers, num_heads=heads, lam=0.01, init="xavier").eval()),
        ("importance_gate", ImportanceGate(num_layers=layers, num_heads=heads)),
    ):
        leaf = gate.log_alpha if name == "l0_gate" else gate.values
        grads = {}
        with install_head_gate(encoder.model, gate):
            for p in PRECISIONS:
                model.zero_grad(set_to_none=True)
                leaf.grad = None
                with autocast(p):
                    loss = model.task_loss(batch)
                loss.backward()
                grads[p] = leaf.grad.detach().clone()
        out[name] = {
            "grad_rel_err": rel(grads["bf16"], grads["fp32"]),
            "grad_dtype": str(grads["bf16"].dtype),
            "sign_agreement": float((grads["bf16"].sign() == grads["fp32"].sign()).float().mean()),
        }
        print(f"  numerics {name}: {out[name]}", file=sys.stderr)
    return out


def evaluate(model, task_name: str, batches: list[dict], precision: str) -> tuple[float, float]:
    """Dev metric in ``precision`` (as Lightning validates: autocast around the step) and seconds."""
    import torch

    model.eval()
    task = model.tasks[task_name]
    metric = task.new_metric()
    start = time.perf_counter()
    with torch.inference_mode(), autocast(precision):
        for batch in batches:
            o, mask = model(task_name, batch["inputs"])
            metric.update(task.decode(o, mask, final=False), batch["sentences"])
    seconds = time.perf_counter() - start
    model.train()
    return metric.compute()[task.main_metric], seconds


def train(args, data_dir) -> dict:
    """POS on a subset, fp32 and bf16 side by side per seed: dev scores and the training time of each."""
    import torch

    from mtlheads.model import MultiTaskModel, OptimConfig
    from mtlheads.training.data import MultiTaskBatchSampler, eval_loader, train_loader
    from mtlheads.training.sampler import TemperatureSampler

    tasks, sentences = load_tasks(["pos"], data_dir, splits=("train", "dev"))
    runs = {}
    for seed in args.seeds:
        models = {}
        for p in PRECISIONS:  # the same pretrained encoder and, seeded alike, the same decoder weights
            torch.manual_seed(seed)
            encoder, tokenizer = minilm()
            models[p] = MultiTaskModel(encoder=encoder, tasks=tasks, optim=OptimConfig()).train()
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(len(sentences["pos"]["train"]), size=args.train_sentences, replace=False))
        split = split_of(tasks["pos"], tokenizer, [sentences["pos"]["train"][i] for i in pick])
        sampler = MultiTaskBatchSampler(
            lengths={"pos": split.lengths},
            max_tokens=6400,
            max_sentences=64,
            sampler=TemperatureSampler(),
            seed=seed,
        )
        loader = train_loader(splits={"pos": split}, tasks=tasks, tokenizer=tokenizer, batch_sampler=sampler)
        dev = list(
            eval_loader(
                task="pos",
                split=split_of(tasks["pos"], tokenizer, sentences["pos"]["dev"]),
                tasks=tasks,
                tokenizer=tokenizer,
                max_tokens=12800,
                max_sentences=64,
            )
        )
        opts = {p: optimizer(models[p]) for p in PRECISIONS}

        def schedule(
            step: int, total: int = args.epochs * len(sampler)
        ) -> float:  # the model's warm-up + decay
            warm = max(1, int(0.1 * total))
            return step / warm if step < warm else max(0.0, (total - step) / max(1, total - warm))

        scheds = {p: torch.optim.lr_scheduler.LambdaLR(opts[p], schedule) for p in PRECISIONS}
        gens = {p: torch.Generator().manual_seed(seed) for p in PRECISIONS}  # the same dropout draws
        times = {p: [] for p in PRECISIONS}
        step = 0
        for epoch in range(args.epochs):
            sampler.set_epoch(epoch)
            for batch in loader:
                for p in PRECISIONS if step % 2 == 0 else PRECISIONS[::-1]:
                    torch.random.set_rng_state(gens[p].get_state())
                    times[p].append(train_step(models[p], opts[p], batch, p))
                    gens[p].set_state(torch.random.get_rng_state())
                    scheds[p].step()
                step += 1
        runs[seed] = {}
        for p in PRECISIONS:
            acc, secs = evaluate(models[p], "pos", dev, p)
            runs[seed][p] = {
                "dev_acc": acc,
                "train_seconds": sum(times[p]),
                "eval_seconds": secs,
                "steps": len(times[p]),
            }
        runs[seed]["speedup_rounds"] = ratios_of(times["fp32"], times["bf16"])
        print(f"  train seed {seed}: {runs[seed]['fp32']} vs {runs[seed]['bf16']}", file=sys.stderr)
        del models, opts
    return runs


def main() -> None:
    args = parse_args()
    data_dir = require_ewt("conll2012/train.gold_conll")
    torch = setup_torch(args.threads, args.seed)
    report = report_header(args, data_dir)
    if "speed" in args.parts or "numerics" in args.parts:
        torch.manual_seed(args.seed)
        encoder, tokenizer = minilm()
        tasks, sentences = load_tasks(args.tasks, data_dir)
        if "numerics" in args.parts:
            report["numerics"] = numerics(args, tasks, sentences, tokenizer, encoder)
        if "speed" in args.parts:
            report["speed"] = speed(args, tasks, sentences, tokenizer, encoder)
        del encoder
    if "train" in args.parts:
        report["train"] = train(args, data_dir)
    report["load_after"] = loadavg()
    report["peak_rss_mib"] = peak_rss_mib()["vmhwm_mib"]
    table = render(report, args)
    print(table)
    print(f"wrote {write_report(args.out, report, table)}")


def render(report: dict, args) -> str:
    lines = [f"bf16-mixed (torch.autocast cpu bfloat16) against fp32, MiniLM, {args.threads} thread(s)"]
    if "speed" in report:
        s = report["speed"]
        lines += ["", f"Training step speed, {args.rounds} rounds interleaved (same batches, same model)"]
        lines.append(f"{'task':<6}{'fp32 tokens/s':>16}{'bf16 tokens/s':>16}{'bf16/fp32 [min-max]':>26}")
        for t in args.tasks:
            f32, b16 = s[t]["fp32"]["tokens_per_s"]["median"], s[t]["bf16"]["tokens_per_s"]["median"]
            lines.append(f"{t:<6}{f32:>16.0f}{b16:>16.0f}{fmt_spread(s[t]['speedup'], 2, 'x'):>26}")
        lines.append(
            f"all tasks (total time): {s['all']['speedup']:.2f}x (default only if >= {TARGET_SPEEDUP}x)"
        )
    if "numerics" in report:
        n = report["numerics"]
        lines += ["", "Numerics (dropout off, same weights and batch): bf16-mixed vs fp32 relative error"]
        lines.append(f"{'task':<6}{'loss':>10}{'grad':>10}{'grad cos':>10}")
        for t in args.tasks:
            x = n[t]
            lines.append(
                f"{t:<6}{x['loss_rel_err']:>10.1e}{x['grad_rel_err']:>10.1e}{x['grad_cosine']:>10.4f}"
            )
        if "con" in n:
            c = n["con"]
            lines.append(
                f"CON log Z: {c['log_z_rel_err']:.1e} (span scores {c['span_dtype_bf16']}, log Z in float32)"
            )
        for g in ("l0_gate", "importance_gate"):
            x = n[g]
            lines.append(
                f"{g} gradient: rel. err {x['grad_rel_err']:.1e}, same sign {100 * x['sign_agreement']:.0f}%"
            )
    if "train" in report:
        tr = report["train"]
        lines += [
            "",
            f"POS, {args.train_sentences} train sentences, {args.epochs} epoch(s), full EWT dev (accuracy)",
        ]
        lines.append(f"{'seed':<6}{'fp32':>10}{'bf16':>10}{'bf16/fp32 speed':>20}")
        for seed, r in tr.items():
            speedup = r["fp32"]["train_seconds"] / r["bf16"]["train_seconds"]
            f32, b16 = 100 * r["fp32"]["dev_acc"], 100 * r["bf16"]["dev_acc"]
            lines.append(f"{seed:<6}{f32:>10.2f}{b16:>10.2f}{speedup:>19.2f}x")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
