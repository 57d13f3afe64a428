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
# them (Figure 1a: `docs/runs/fig1a_t30/`, the fixed-λ run: `docs/runs/fig1a_lambda/`). A section whose
# runs are not saved says so; it fills in once they are (`mtlheads-report save ...`, docs/runs/README.md).

# %%
import sys

from _common import out_dir, repo_root

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
    sys.exit("no gated run saved under docs/runs/: save the Figure 1a runs (docs/gates.md)")

# %% [markdown]
# ## Head probes (Figure 4), super tickets, GradTS

# %%
for key in ("probes", "tickets", "gradts"):
    show(key)
    print()
