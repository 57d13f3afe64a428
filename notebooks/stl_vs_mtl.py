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
# section, with its figure), and until those exist the `mtlheads-report` tables under `docs/results/`.
# Run it with `python notebooks/stl_vs_mtl.py` or open it with jupytext.

# %%
import json
import sys

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
# ## The committed reports (docs/results/), until the re-runs are saved
#
# The Foundation runs (STL POS/NER/DEP, MTL-3) predate the per-epoch reshuffle fix, MTL-5 and the second
# STL CON/SRL runs have it (docs/results.md); all trained 2 epochs, one seed. Test score of each task's
# main metric.

# %%
CLASSES = {"pos": PosTask, "ner": NerTask, "dep": DepTask, "con": ConTask, "srl": SrlTask}
METRIC = {task: cls.main_metric for task, cls in CLASSES.items()}
series: dict[str, dict[str, float]] = {}
for name in ("foundation", "ewt_stl_consrl_v2", "ewt_mtl5"):
    path = ROOT / "docs" / "results" / name / "report.json"
    if not path.is_file():
        continue
    for row in json.loads(path.read_text(encoding="utf-8"))["configurations"]:
        model = "STL" if row["mode"] == "stl" else f"MTL-{len(row['tasks'])}"
        for task in row["tasks"]:
            stat = row["metrics"].get(f"test/{task}/{METRIC.get(task)}")
            if stat:
                series.setdefault(model, {})[task] = stat["mean"]
tasks = list(dict.fromkeys(t for s in series.values() for t in s))
print("test score, % | " + " | ".join(series))
for task in tasks:
    cells = [f"{100 * s[task]:.2f}" if task in s else "" for s in series.values()]
    print(f"{task} ({METRIC[task]}) | " + " | ".join(cells))

# %%
if series:
    fig, ax = pyplot().subplots(figsize=(5, 3))
    width = 0.8 / len(series)
    for i, (model, scores) in enumerate(series.items()):
        xs = [k + i * width for k, t in enumerate(tasks) if t in scores]
        ax.bar(xs, [100 * scores[t] for t in tasks if t in scores], width, label=model)
    ax.set_xticks([k + 0.4 - width / 2 for k in range(len(tasks))], tasks)
    ax.set_ylabel("test score (%)")
    ax.legend(frameon=False, fontsize=7)
    print("wrote", *save_figure(fig, OUT / "stl_vs_mtl_committed"))
else:
    sys.exit("no committed report found under docs/results/")
