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
# # Attention heads: gate maps, probes, tickets, GradTS
#
# Gated head pruning (Stem Cell Hypothesis, Figure 1a), head probes (Figure 4), Super Tickets' phase
# transition and GradTS' τ matrix, each from the runs saved under `docs/runs/` as the science page draws
# them. A section whose runs are not saved yet says so; it fills in once they are
# (`mtlheads-report save ...`, docs/runs/README.md). Until the gate runs are saved, the Figure 1a counts
# and the mean gate map come from the committed figure data in `docs/figures/`.

# %%
import json

import numpy as np
from _common import out_dir, repo_root

from mtlheads.report.plot import pyplot, save_figure
from mtlheads.report.runs import find_runs
from mtlheads.report.science_sections import SECTIONS

ROOT, OUT = repo_root(), out_dir()
FOLDERS = find_runs(ROOT / "docs" / "runs")
print(f"saved runs: {[f.name for f in FOLDERS] or 'none'}; figures: {OUT}")


def show(key: str) -> bool:
    """Prints a science-page section drawn from the saved runs; False when none holds its outputs."""
    title, section = SECTIONS[key]
    lines, _ = section(FOLDERS, OUT)
    print(f"## {title}\n")
    print("\n".join(lines) if lines else "not run yet (no saved run under docs/runs/)")
    return bool(lines)


# %% [markdown]
# ## Gate maps

# %%
if not show("gates"):
    counts = json.loads((ROOT / "docs" / "figures" / "fig1a_pos_target30.json").read_text(encoding="utf-8"))
    print("committed Figure 1a data (docs/figures/fig1a_pos_target30.json):")
    print(f"  open heads per run {counts['open_per_run']}, open in all three {counts['open_in_all']},")
    print(f"  open in at least one {counts['open_in_any']} (per layer {counts['open_in_any_per_layer']})")
    mean = np.array(
        json.loads((ROOT / "docs" / "figures" / "pos_target30_mean.json").read_text(encoding="utf-8"))[
            "mean_gates"
        ]
    )
    fig, ax = pyplot().subplots(figsize=(mean.shape[1] / 2 + 1, mean.shape[0] / 2))
    img = ax.imshow(mean, cmap="binary", vmin=0, vmax=1)
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    fig.colorbar(img, ax=ax, label="mean eval gate over 3 seeds")
    print("wrote", *save_figure(fig, OUT / "pos_target30_mean"))

# %% [markdown]
# ## Head probes (Figure 4), super tickets, GradTS

# %%
for key in ("probes", "tickets", "gradts"):
    show(key)
    print()
