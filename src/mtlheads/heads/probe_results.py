"""One probe's result: per (layer, head, label) correct counts, what they summarise to, and its files.

``ProbeResult.save(prefix)`` writes three files, each atomically:

* ``<prefix>.pt``: ``{"format", "kind", "labels", "counts" (C,) long, "correct" (L, H, C) long,
  "accuracy" (L, H, C) float64, "meta"}`` (``torch.load(..., weights_only=True)`` reads it);
* ``<prefix>.csv``: one row per (layer, head, label): ``layer,head,label,count,accuracy``;
* ``<prefix>.json``: labels with counts, the best head of each label with its accuracy, the
  frequency-weighted accuracy matrix (L × H) and its best head, the mean best-head accuracy over all labels
  and over the 10 most frequent labels, and ``meta``.

Index convention: tensors and the Python API count layers and heads from 0; the CSV and JSON, which people
read and plot, count them **from 1** (layer 1 = the first transformer layer, as in the paper's figures) and
say so in ``"index_base": 1``. Labels are ordered by decreasing count. A label's best head is the first
maximum in (layer, head) order.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from mtlheads.utils.io import atomic_save, atomic_write_json, atomic_write_text

FORMAT = "mtlheads-probe/1"
TOP = 10  # "the 10 most frequent labels" of the paper's tables


@dataclass
class ProbeResult:
    """Probe accuracy of every head for every label.

    Attributes:
        kind: probe kind (``pos``, ``ner``, ``con``, ``dep``, ``srl``).
        labels: C label names, most frequent first.
        correct: (L, H, C) long, units of each label the head gets right.
        counts: (C,) long, units per label.
        meta: JSON-serialisable facts about the run (model, sentences, ...).
    """

    kind: str
    labels: list[str]
    correct: Tensor
    counts: Tensor
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.correct.dim() != 3 or not self.correct.shape[2] == len(self.labels) == self.counts.numel():
            raise ValueError(
                f"correct {tuple(self.correct.shape)}, counts and {len(self.labels)} labels differ"
            )

    @property
    def shape(self) -> tuple[int, int]:
        """(L, H)."""
        return int(self.correct.shape[0]), int(self.correct.shape[1])

    @property
    def accuracy(self) -> Tensor:
        """(L, H, C) float64 per-label accuracy."""
        return self.correct.double() / self.counts.clamp(min=1).double()

    @property
    def weighted(self) -> Tensor:
        """(L, H) float64 frequency-weighted accuracy: all correct units over all units."""
        return self.correct.sum(-1).double() / max(int(self.counts.sum()), 1)

    def best(self) -> tuple[Tensor, Tensor, Tensor]:
        """Best head of each label: layer (C,), head (C,) (0-based) and accuracy (C,)."""
        flat = self.accuracy.flatten(0, 1)  # (L·H, C)
        acc, idx = flat.max(0)  # first maximum in (layer, head) order
        return idx // self.shape[1], idx % self.shape[1], acc

    def mean_best(self, top: int | None = None) -> float:
        """Mean best-head accuracy over all labels, or over the ``top`` most frequent ones."""
        acc = self.best()[2][:top]
        return float(acc.mean()) if acc.numel() else float("nan")

    def best_rows(self) -> list[dict]:
        """Per label: ``label, count, layer, head, accuracy`` with 1-based layer and head."""
        layer, head, acc = self.best()
        return [
            {"label": lab, "count": int(n), "layer": int(l) + 1, "head": int(h) + 1, "accuracy": float(a)}
            for lab, n, l, h, a in zip(self.labels, self.counts, layer, head, acc, strict=True)
        ]

    def summary(self) -> dict:
        """What ``<prefix>.json`` holds."""
        weighted = self.weighted
        k = int(weighted.argmax())
        return {
            "format": FORMAT,
            "kind": self.kind,
            "index_base": 1,
            "layers": self.shape[0],
            "heads": self.shape[1],
            "units": int(self.counts.sum()),
            "labels": list(self.labels),
            "counts": {lab: int(n) for lab, n in zip(self.labels, self.counts, strict=True)},
            "best_heads": self.best_rows(),
            "mean_best_accuracy": self.mean_best(),
            f"mean_best_accuracy_top{TOP}": self.mean_best(TOP),
            "weighted_accuracy": weighted.tolist(),
            "best_weighted_head": {
                "layer": k // self.shape[1] + 1,
                "head": k % self.shape[1] + 1,
                "accuracy": float(weighted.flatten()[k]),
            },
            "meta": self.meta,
        }

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["layer", "head", "label", "count", "accuracy"])
        acc, (L, H) = self.accuracy, self.shape
        for l in range(L):
            for h in range(H):
                for c, lab in enumerate(self.labels):
                    writer.writerow([l + 1, h + 1, lab, int(self.counts[c]), f"{float(acc[l, h, c]):.6f}"])
        return out.getvalue()

    def save(self, prefix: str | Path) -> list[Path]:
        """Write ``<prefix>.pt``, ``<prefix>.csv`` and ``<prefix>.json`` (each atomically)."""
        prefix = Path(prefix)
        data = {
            "format": FORMAT,
            "kind": self.kind,
            "labels": list(self.labels),
            "counts": self.counts.clone(),
            "correct": self.correct.clone(),
            "accuracy": self.accuracy,
            "meta": self.meta,
        }
        return [
            atomic_save(data, prefix.with_name(prefix.name + ".pt")),
            atomic_write_text(prefix.with_name(prefix.name + ".csv"), self.to_csv()),
            atomic_write_json(prefix.with_name(prefix.name + ".json"), self.summary()),
        ]

    @classmethod
    def _from_text(cls, prefix: Path) -> ProbeResult:
        """The result from ``<prefix>.json`` (kind, labels, meta) and ``<prefix>.csv`` (accuracy × count,
        written to 6 decimals, rounds back to the exact correct counts)."""
        summary = json.loads(prefix.with_suffix(".json").read_text(encoding="utf-8"))
        labels = list(summary["labels"])
        index = {label: i for i, label in enumerate(labels)}
        base = int(summary.get("index_base", 1))
        correct = torch.zeros(summary["layers"], summary["heads"], len(labels), dtype=torch.long)
        counts = torch.zeros(len(labels), dtype=torch.long)
        with prefix.with_suffix(".csv").open(encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f):
                c, count = index[row["label"]], int(row["count"])
                counts[c] = count
                correct[int(row["layer"]) - base, int(row["head"]) - base, c] = round(
                    float(row["accuracy"]) * count
                )
        return cls(kind=summary["kind"], labels=labels, correct=correct, counts=counts, meta=summary["meta"])

    @classmethod
    def load(cls, path: str | Path) -> ProbeResult:
        """Read ``<prefix>``'s result (any of its three files names it), or a folder's one probe ``.pt``."""
        path = Path(path)
        if path.is_dir():
            found = sorted(path.glob("probe*.pt")) or sorted(path.glob("*.pt"))
            if len(found) != 1:
                raise FileNotFoundError(f"{path}: expected one probe .pt file, found {len(found)}")
            path = found[0]
        elif path.suffix in (".csv", ".json"):
            path = path.with_suffix(".pt")
        elif path.suffix != ".pt":
            path = path.with_name(path.name + ".pt")
        if not path.is_file() and path.with_suffix(".csv").is_file():
            return cls._from_text(path.with_suffix(""))  # docs/runs keeps the CSV and JSON only
        data = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"{path}: not a probe result ({FORMAT})")
        return cls(
            kind=data["kind"],
            labels=list(data["labels"]),
            correct=data["correct"],
            counts=data["counts"],
            meta=dict(data.get("meta", {})),
        )
