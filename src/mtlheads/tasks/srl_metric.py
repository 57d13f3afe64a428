"""SRL gold preprocessing and the end-to-end SRL metric (reference §3.5).

Preprocessing (ELIT's ``filter_v_args`` + de-duplication): the verb spans ``V`` and ``C-V`` are removed,
and a repeated ``(predicate, start, end)`` triple keeps only its first role. A predicate left without any
argument is dropped, as in ELIT's ``group_pa_by_p`` (it is neither a gold argument holder nor a gold
predicate for the predicate-identification score).
"""

from __future__ import annotations

from mtlheads.data.sentence import Sentence

VERB_ROLES = frozenset({"V", "C-V"})

Srl = list[tuple[int, list[tuple[int, int, str]]]]  # (predicate index, [(start, end, role), ...])


def clean_srl(srl: Srl | None) -> Srl:
    """Remove ``V``/``C-V`` arguments and duplicate ``(predicate, start, end)`` triples (first kept).

    Args:
        srl: ``Sentence.srl`` as read: ``(predicate index, [(start, end, role), ...])`` per predicate.

    Returns:
        The same structure, predicates in first-seen order, each with its remaining arguments sorted by
        position; predicates with no remaining argument are dropped. Two columns for one predicate index
        are merged.
    """
    merged: dict[int, dict[tuple[int, int], str]] = {}
    for pred, args in srl or []:
        seen = merged.setdefault(pred, {})
        for start, end, role in args:
            if role not in VERB_ROLES and (start, end) not in seen:
                seen[(start, end)] = role
    return [(p, [(s, e, r) for (s, e), r in sorted(spans.items())]) for p, spans in merged.items() if spans]


def srl_tuples(srl: Srl | None) -> set[tuple[int, int, int, str]]:
    """``(predicate, start, end, role)`` tuples of :func:`clean_srl` ``(srl)``."""
    return {(p, s, e, r) for p, args in clean_srl(srl) for s, e, r in args}


class SrlMetric:
    """End-to-end micro P/R/F1 over ``(predicate, start, end, role)`` plus predicate identification.

    Gold comes from ``Sentence.srl`` through :func:`clean_srl` (``V``/``C-V`` excluded, duplicates
    dropped); ``C-``/``R-`` roles are ordinary, distinct roles and a span must match exactly.
    Predicate identification (ELIT's ``predicate`` F1): a predicate counts as predicted when at least
    one argument is predicted for it, and as gold when it has at least one gold argument left.
    Predictions are taken as given (no V filtering).

    ``compute() -> {"p", "r", "f1", "pred_p", "pred_r", "pred_f1"}`` as fractions.
    """

    def __init__(self) -> None:
        self.tp = self.n_pred = self.n_gold = 0
        self.pred_tp = self.pred_n_pred = self.pred_n_gold = 0

    def update(self, preds: list[Srl], gold: list[Sentence]) -> None:
        """Args:
        preds: Per sentence, ``[(predicate, [(start, end, role), ...]), ...]`` (as :meth:`SrlTask.decode`).
        gold: The sentences, with their ``srl`` layer.
        """
        if len(preds) != len(gold):
            raise ValueError(f"{len(preds)} predictions for {len(gold)} sentences")
        for pred, sent in zip(preds, gold, strict=True):
            if sent.srl is None:
                raise ValueError(f"{sent.source}: sentence has no SRL layer")
            p = {(int(q), int(s), int(e), r) for q, args in pred for s, e, r in args}
            g = srl_tuples(sent.srl)
            self.tp += len(p & g)
            self.n_pred += len(p)
            self.n_gold += len(g)
            pp, gp = {t[0] for t in p}, {t[0] for t in g}
            self.pred_tp += len(pp & gp)
            self.pred_n_pred += len(pp)
            self.pred_n_gold += len(gp)

    def compute(self) -> dict[str, float]:
        p, r, f1 = _prf(self.tp, self.n_pred, self.n_gold)
        pred_p, pred_r, pred_f1 = _prf(self.pred_tp, self.pred_n_pred, self.pred_n_gold)
        return {"p": p, "r": r, "f1": f1, "pred_p": pred_p, "pred_r": pred_r, "pred_f1": pred_f1}


def _prf(tp: int, n_pred: int, n_gold: int) -> tuple[float, float, float]:
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gold if n_gold else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)
