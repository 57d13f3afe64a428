"""EVALB-style labelled bracket scoring (COLLINS.prm conventions; reference §3.4).

What is implemented, following ``evalb.c`` (Sekine & Collins 1997) with COLLINS.prm:

* **Deleted labels** (``DELETE_LABEL``): ``TOP -NONE- , : `` '' .`` from COLLINS.prm, plus ``S1 ? !``
  (EVALB's ``new.prm``) and the empty label, which is the set ELIT/supar's ``SpanMetric`` deletes. A
  *preterminal* with a deleted tag is removed together with its word before positions are counted, so
  later spans shift left; a *non-terminal* with a deleted label only loses its own bracket (its children
  stay). Hence ``TOP`` is never counted, but the constituent right below it (e.g. the sentence's ``S``) is.
* A bracket that covers no word once words are deleted is dropped (EVALB's "zero element" rule).
* Non-terminal labels are cut at the first ``-`` or ``=`` (``modify_label``: ``NP-SBJ`` = ``NP``); labels
  that start with ``-`` are kept whole (EVALB would cut them to an empty label; they never label
  non-terminals in practice).
* ``EQ_LABEL ADVP PRT``: ``PRT`` is scored as ``ADVP``.
* Every bracket counts, so a unary chain ``(S (VP ...))`` gives two brackets over the same span, and
  repeated identical brackets ``(NP (NP ...))`` form a multiset: ``matched = |gold ∩ pred|`` as multisets,
  which is what EVALB's greedy one-to-one matching computes.
* Totals are summed over the corpus (micro average): ``P = matched / pred``, ``R = matched / gold``,
  ``F1 = 2 matched / (pred + gold)``. Tagging accuracy, crossing brackets and the ≤40-word cut are not
  reported; EVALB's quote-mismatch repair is moot because the gold POS tags are copied into the prediction.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from nltk import Tree

from mtlheads.data.sentence import Sentence
from mtlheads.data.trees import is_preterminal, spans_to_tree, strip_label, to_tree

COLLINS_DELETE = frozenset({"TOP", "-NONE-", ",", ":", "``", "''", "."})
DELETE_LABELS = COLLINS_DELETE | {"S1", "?", "!", ""}
EQUAL_LABELS: Mapping[str, str] = {"PRT": "ADVP"}

Prediction = str | Tree | Sequence[tuple[int, int, str]]


def brackets(
    tree: str | Tree,
    *,
    delete_labels: frozenset[str] = DELETE_LABELS,
    equal_labels: Mapping[str, str] = EQUAL_LABELS,
) -> Counter:
    """The multiset of scored brackets ``(start, end, label)`` of one tree, ends exclusive.

    Positions count only the words that survive deletion.
    """
    found: Counter = Counter()

    def walk(node: Tree, i: int) -> int:
        if is_preterminal(node):
            return i if node.label() in delete_labels else i + 1
        j = i
        for child in node:
            if isinstance(child, Tree):
                j = walk(child, j)
        label = strip_label(node.label())
        if j > i and label not in delete_labels:
            found[(i, j, equal_labels.get(label, label))] += 1
        return j

    walk(to_tree(tree), 0)
    return found


def copy_tags(tree: Tree, tags: Sequence[str]) -> Tree:
    """Copy of ``tree`` whose preterminal labels are replaced by ``tags`` (in word order)."""
    tree = tree.copy(deep=True)
    pre = [t for t in tree.subtrees() if is_preterminal(t)]
    if len(pre) != len(tags):
        raise ValueError(f"{len(pre)} words in the tree but {len(tags)} tags")
    for node, tag in zip(pre, tags, strict=True):
        node.set_label(tag)
    return tree


class EvalbMetric:
    """Corpus-level labelled bracket P/R/F1; ``compute() -> {"p", "r", "f1"}`` (fractions), main "f1".

    Args:
        delete_labels: Labels removed before scoring (see the module docstring).
        equal_labels: Label → label it is scored as.
        copy_gold_tags: Replace the predicted POS tags by the gold ones (as the reference does), so that
            punctuation deletion is identical on both sides.
    """

    def __init__(
        self,
        *,
        delete_labels: frozenset[str] = DELETE_LABELS,
        equal_labels: Mapping[str, str] = EQUAL_LABELS,
        copy_gold_tags: bool = True,
    ):
        self.delete_labels, self.equal_labels = frozenset(delete_labels), dict(equal_labels)
        self.copy_gold_tags = copy_gold_tags
        self.matched = self.n_pred = self.n_gold = self.sentences = 0

    def update(self, preds: Sequence[Prediction], gold: Sequence[Sentence]) -> None:
        """Add a batch.

        Args:
            preds: Per sentence a bracketed string or ``Tree`` (any root), or the binarised labelled spans
                ``(i, j, label)`` from ``ConTask.decode`` (built into a tree with the gold words and tags).
            gold: Sentences with ``tree`` (and ``pos`` for span predictions).
        """
        if len(preds) != len(gold):
            raise ValueError(f"{len(preds)} predictions for {len(gold)} sentences")
        for pred, sent in zip(preds, gold, strict=True):
            if sent.tree is None:
                raise ValueError(f"{sent.source}: sentence has no tree")
            gold_tree = to_tree(sent.tree)
            tags = [t for _, t in gold_tree.pos()]
            if isinstance(pred, str | Tree):
                pred_tree = to_tree(pred)
                if len(pred_tree.leaves()) != len(tags):
                    raise ValueError(
                        f"{sent.source}: {len(pred_tree.leaves())} predicted words, {len(tags)} gold"
                    )
                if self.copy_gold_tags:
                    pred_tree = copy_tags(pred_tree, tags)
            else:
                pred_tree = spans_to_tree(pred, gold_tree.leaves(), tags)
            g = brackets(gold_tree, delete_labels=self.delete_labels, equal_labels=self.equal_labels)
            p = brackets(pred_tree, delete_labels=self.delete_labels, equal_labels=self.equal_labels)
            self.matched += sum((g & p).values())
            self.n_gold += sum(g.values())
            self.n_pred += sum(p.values())
            self.sentences += 1

    def compute(self) -> dict[str, float]:
        p = self.matched / self.n_pred if self.n_pred else 0.0
        r = self.matched / self.n_gold if self.n_gold else 0.0
        f1 = 2 * self.matched / (self.n_pred + self.n_gold) if self.n_pred + self.n_gold else 0.0
        return {"p": p, "r": r, "f1": f1}
