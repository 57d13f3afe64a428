"""The ``docs/runs/<name>/`` convention: the small outputs of each documented run, committed with its command.

A documented run (one run, a multirun, a tickets or GradTS pipeline) is saved with
``mtlheads-report save <run or sweep dir> docs/runs/<name> --command "<the exact command>"``, which copies
what a run writes that is small and holds numbers (:data:`KEEP`), turns ``gates.pt`` into ``gates.json``,
leaves out checkpoints, logger folders and per-step gate files, writes ``command.txt`` and the
``mtlheads-report`` tables (``report.{md,tex,json}``) of the copied runs. ``docs/runs/README.md`` describes
the layout; ``mtlheads-report science docs/runs`` and ``tests/test_docs_numbers.py`` read it.
"""

from __future__ import annotations

import fnmatch
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from mtlheads.utils.io import atomic_write_json, atomic_write_text

COMMAND_FILE = "command.txt"
# Files kept (name patterns, any depth): run records, gate/probe/ticket/GradTS tables, figures and their data.
KEEP = (
    "metrics.json", "config.yaml", "gates.json", "probe.json", "probe_*.csv", "probe_*.json",
    "tickets.json", "tickets.md", "super_ticket.json", "importance.json", "tau.json", "tau.md", "trial.json",
    "fg.json", "gradts.json", "gradts.md", "failure.json", "failures.json", "prune.json", "*.png", "*.pdf",
    "*.md",
)  # fmt: skip
# Not kept: weights, probe tensors (the CSV and JSON hold the same counts), logger folders, per-evaluation
# gates, Hydra internals, ticket masks, importance.
SKIP_DIRS = {
    "checkpoints", "wandb", "csv", "tensorboard", "gates", ".hydra", "encoder", "masks", "importance",
}  # fmt: skip
MAX_BYTES = 2_000_000  # a committed output stays small; anything bigger is listed, not copied


def gates_to_json(src: Path, dest: Path) -> Path:
    """``gates.pt`` ((L, H) eval gates) -> ``gates.json`` with its shape and values."""
    import torch

    gates = torch.load(src, map_location="cpu", weights_only=True).double()
    return atomic_write_json(dest, {"shape": list(gates.shape), "gates": gates.tolist(), "source": src.name})


def save_run(src: Path, dest: Path, command: str) -> dict:
    """Copies ``src``'s small outputs into ``dest`` (same relative layout) and writes ``command.txt``.

    Returns:
        ``{"copied": [...], "skipped": [...]}`` as paths relative to ``dest`` / ``src``.
    """
    src, dest = Path(src), Path(dest)
    if not src.is_dir():
        raise FileNotFoundError(f"{src}: no such run or sweep dir")
    if not command.strip():
        raise ValueError("--command: give the exact command the run was made with (it goes to command.txt)")
    copied, skipped = [], []
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if not path.is_file() or SKIP_DIRS & set(rel.parts[:-1]):
            continue
        target = dest / rel
        if path.name == "gates.pt":
            copied.append(str(gates_to_json(path, target.with_name("gates.json")).relative_to(dest)))
        elif any(fnmatch.fnmatch(path.name, p) for p in KEEP):
            if path.stat().st_size > MAX_BYTES:
                skipped.append(f"{rel} ({path.stat().st_size} bytes)")
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            copied.append(str(rel))
    atomic_write_text(dest / COMMAND_FILE, command.rstrip() + "\n")
    return {"copied": copied, "skipped": skipped}


@dataclass
class Job:
    """One run inside a saved folder: its dir, metrics (None: not a training/eval run) and config."""

    dir: Path
    metrics: dict | None
    config: dict | None

    @property
    def mode(self) -> str:
        mode = (self.metrics or {}).get("mode") or ((self.config or {}).get("mode") or {}).get("name")
        return str(mode or "")

    @property
    def tasks(self) -> list[str]:
        return list((self.metrics or {}).get("tasks") or (self.config or {}).get("tasks") or [])

    @property
    def gates_file(self) -> Path | None:
        return next((p for p in (self.dir / "gates.json", self.dir / "gates.pt") if p.is_file()), None)


@dataclass
class RunFolder:
    """A ``docs/runs/<name>/`` folder: its command and the runs and pipeline outputs found below it."""

    name: str
    path: Path
    command: str
    jobs: list[Job] = field(default_factory=list)

    def files(self, pattern: str) -> list[Path]:
        return sorted(self.path.rglob(pattern))


def _read(path: Path) -> dict | None:
    import yaml

    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8")
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    return data if isinstance(data, dict) else None


def find_runs(root: Path) -> list[RunFolder]:
    """Every folder directly below ``root`` that holds a ``command.txt``, with its jobs (dirs holding a
    ``metrics.json``, a ``gates.json`` or a ``probe.json``), sorted by name."""
    folders = []
    for command in sorted(Path(root).glob(f"*/{COMMAND_FILE}")):
        folder = RunFolder(command.parent.name, command.parent, command.read_text(encoding="utf-8").strip())
        dirs = {p.parent for name in ("metrics.json", "gates.json", "probe.json") for p in folder.files(name)}
        for d in sorted(dirs):
            folder.jobs.append(Job(d, _read(d / "metrics.json"), _read(d / "config.yaml")))
        folders.append(folder)
    return folders
