# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # STL vs MTL on the English Web Treebank (Stem Cell Hypothesis, Table 1)
#
# The paper: MTL-5 with a shared encoder scores below STL on POS, NER, DEP, CON and SRL. Here: our saved
# runs. This notebook only reads committed outputs: the runs saved under `docs/runs/` (the science page's
# section, with its figure: STL, MTL-3, MTL-5 at equal epochs and MTL-5 at STL's encoder updates), and the
# first runs' `mtlheads-report` tables under `docs/results/` to show what the re-runs changed.
# Run it with `python notebooks/stl_vs_mtl.py` or open it with jupytext.

# %%
import json
import sys
from pathlib import Path

from _common import out_dir, repo_root

from mtlheads.report.plot import pyplot, save_figure
from mtlheads.report.runs import find_runs
from mtlheads.report.science_sections import section_stl_vs_mtl
from mtlheads.tasks.con import ConTask
from mtlheads.tasks.dep import DepTask
from mtlheads.tasks.ner import NerTask
from mtlheads.tasks.pos import PosTask
from mtlheads.tasks.srl import SrlTask

ROOT, OUT = repo_root(), out_dir()
print(f"runs: {ROOT / 'docs' / 'runs'}; figures: {OUT}")

# %% [markdown]
# ## The saved runs (docs/runs/)

# %%
lines, used = section_stl_vs_mtl(find_runs(ROOT / "docs" / "runs"), OUT)
print("\n".join(lines) if lines else "No STL/MTL run saved under docs/runs/ yet.")

# %% [markdown]
# ## What changed with the re-runs
#
# The first runs (committed reports under `docs/results/`: Foundation STL POS/NER/DEP and MTL-3 of 2026-11-22,
# before the per-epoch reshuffle fix and with Eisner for DEP; STL CON/SRL with the fix; MTL-5 of 2026-11-26,
# float32) against the re-runs with today's code (`docs/runs/`: bf16-mixed, MST for DEP, mean over the saved
# seeds). Test score of each task's main metric, 2 epochs each.

# %%
CLASSES = {"pos": PosTask, "ner": NerTask, "dep": DepTask, "con": ConTask, "srl": SrlTask}
METRIC = {task: cls.main_metric for task, cls in CLASSES.items()}


def test_scores(report: Path) -> dict[str, dict[str, float]]:
    """{model: {task: mean test score}} of an ``mtlheads-report`` JSON (STL, MTL-3, MTL-5 rows)."""
    out: dict[str, dict[str, float]] = {}
    if not report.is_file():
        return out
    for row in json.loads(report.read_text(encoding="utf-8"))["configurations"]:
        if row["mode"] not in ("stl", "mtl") or (row["mode"] == "mtl" and len(row["tasks"]) < 3):
            continue
        model = "STL" if row["mode"] == "stl" else f"MTL-{len(row['tasks'])}"
        for task in row["tasks"]:
            stat = row["metrics"].get(f"test/{task}/{METRIC.get(task)}")
            if stat:
                out.setdefault(model, {})[task] = stat["mean"]
    return out


def merged(paths: list[Path]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for path in paths:
        for model, scores in test_scores(path).items():
            out.setdefault(model, {}).update(scores)
    return out


before = merged(
    [ROOT / "docs" / "results" / n / "report.json" for n in ("foundation", "ewt_stl_consrl_v2", "ewt_mtl5")]
)
after = merged([ROOT / "docs" / "runs" / n / "report.json" for n in ("ewt_stl", "ewt_mtl3", "ewt_mtl5")])
rows = [
    (m, t)
    for m in ("STL", "MTL-3", "MTL-5")
    for t in CLASSES
    if t in before.get(m, {}) and t in after.get(m, {})
]
print("model | task (metric) | first run | re-run | change")
for model, task in rows:
    old, new = 100 * before[model][task], 100 * after[model][task]
    print(f"{model} | {task} ({METRIC[task]}) | {old:.2f} | {new:.2f} | {new - old:+.2f}")
print("\nMTL-5 - STL, test (first runs -> re-runs):")
for task in CLASSES:
    if all(task in d.get(m, {}) for d in (before, after) for m in ("STL", "MTL-5")):
        gap = [100 * (d["MTL-5"][task] - d["STL"][task]) for d in (before, after)]
        print(f"  {task}: {gap[0]:+.2f} -> {gap[1]:+.2f}")

# %%
if not rows:
    sys.exit("no first-run report under docs/results/ or no re-run under docs/runs/")
fig, ax = pyplot().subplots(figsize=(6, 3))
labels = [f"{m}\n{t}" for m, t in rows]
xs = range(len(rows))
ax.bar([x - 0.2 for x in xs], [100 * before[m][t] for m, t in rows], 0.4, label="first run")
ax.bar([x + 0.2 for x in xs], [100 * after[m][t] for m, t in rows], 0.4, label="re-run")
ax.set_xticks(list(xs), labels, fontsize=6)
ax.set_ylabel("test score (%)")
ax.legend(frameon=False, fontsize=7)
print("wrote", *save_figure(fig, OUT / "first_runs_vs_reruns"))
