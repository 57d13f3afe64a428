"""Constituency-tree preprocessing for the CRF parser (reference §3.4), on ``nltk.Tree``.

Forward (gold tree → training spans), as supar/ELIT do it:

1. :func:`strip_functions`: ``NP-SBJ-1`` → ``NP`` (everything from the first ``-`` or ``=``; labels that
   start with ``-`` such as ``-NONE-`` or ``-LRB-`` are kept).
2. :func:`binarize`: remove the ``TOP`` wrapper, wrap every preterminal that has siblings in an ``X|<>``
   node (``X`` = its parent's label), left-binarise to CNF with no Markovisation (intermediate nodes are
   ``X|<>``), then collapse unary chains with ``+`` (``S+VP``); unary chains down to a preterminal are
   collapsed too, preterminals are kept. Every word then has exactly one width-1 span and the tree is a
   full binary bracketing: ``2n - 1`` spans. When ``TOP`` has several children or a bare preterminal, the
   ``TOP`` node itself is binarised and its root relabelled ``TOP|<>`` (so it is dropped again on the way
   back).
3. :func:`factorize`: labelled spans ``(i, j, label)`` over fenceposts ``0..n`` in pre-order
   (preterminals excluded).

Inverse: :func:`build_tree` (spans + words + POS → binarised tree) and :func:`debinarize` (splice ``|<>``
nodes, expand ``+`` chains, re-wrap in ``TOP``). Words and tags are escaped with
:func:`~mtlheads.data.ptb.escape_leaf` (idempotent), as in :attr:`Sentence.tree`.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from functools import lru_cache

from nltk import Tree
from nltk.tree import chomsky_normal_form, collapse_unary

from mtlheads.data.ptb import escape_leaf

WRAPPERS = frozenset({"TOP", "ROOT", "S1", ""})  # root labels treated as a wrapper to remove
NULL = "|<>"  # suffix of binarisation-only labels; debinarize splices such nodes away
JOIN = "+"  # joins the labels of a collapsed unary chain

Span = tuple[int, int, str]


def is_preterminal(node: object) -> bool:
    """True for ``(TAG word)``: a tree with exactly one child that is a string."""
    return isinstance(node, Tree) and len(node) == 1 and not isinstance(node[0], Tree)


def to_tree(tree: str | Tree) -> Tree:
    """Parse a bracketed string (a :class:`Tree` is returned unchanged)."""
    return tree if isinstance(tree, Tree) else Tree.fromstring(tree)


def to_string(tree: Tree) -> str:
    """One-line bracketed string, e.g. ``(TOP (S (NP (PRP I)) (VP (VBP go))))``."""
    return " ".join(str(tree).split())


def strip_label(label: str) -> str:
    """``NP-SBJ-1`` → ``NP``, ``NP=2`` → ``NP``; labels starting with ``-`` (``-NONE-``) are kept."""
    return label if label.startswith("-") else re.split(r"[-=]", label, maxsplit=1)[0]


def strip_functions(tree: str | Tree) -> Tree:
    """Copy of ``tree`` with :func:`strip_label` applied to every node (preterminals included)."""
    tree = to_tree(tree).copy(deep=True)
    for sub in tree.subtrees():
        sub.set_label(strip_label(sub.label()))
    return tree


def binarize(tree: str | Tree) -> Tree:
    """Left-binarised, unary-collapsed copy of ``tree`` without its wrapper root (see the module doc).

    Args:
        tree: A tree, typically ``(TOP ...)`` with function tags already stripped.

    Returns:
        A tree whose nodes have one preterminal child or two children; labels may contain ``+`` (collapsed
        chain) or end with ``|<>`` (binarisation node).
    """
    tree = to_tree(tree).copy(deep=True)
    rename = None
    if (
        tree.label() in WRAPPERS
        and len(tree) == 1
        and isinstance(tree[0], Tree)
        and not is_preterminal(tree[0])
    ):
        tree = tree[0]  # (TOP (S ...)) -> (S ...)
    elif tree.label() in WRAPPERS:
        rename = tree.label() + NULL  # several children or a bare preterminal under TOP
    for node in tree.subtrees():
        if len(node) > 1:
            for k, child in enumerate(node):
                if is_preterminal(child):
                    node[k] = Tree(node.label() + NULL, [child])
    chomsky_normal_form(tree, factor="left", horzMarkov=0, vertMarkov=0)
    collapse_unary(tree, collapsePOS=False, collapseRoot=True, joinChar=JOIN)
    if rename is not None:
        tree.set_label(rename)
    return tree


def factorize(tree: Tree) -> list[Span]:
    """Labelled spans ``(i, j, label)`` of every non-preterminal node, in pre-order.

    Args:
        tree: Usually the output of :func:`binarize`; any tree works.

    Returns:
        Spans over fenceposts: word ``k`` lies between fenceposts ``k`` and ``k + 1``.
    """
    spans: list[Span] = []

    def walk(node: Tree, i: int) -> int:
        if is_preterminal(node):
            return i + 1
        slot, j = len(spans), i
        spans.append((i, i, ""))
        for child in node:
            j = walk(child, j)
        spans[slot] = (i, j, node.label())
        return j

    if not is_preterminal(tree):
        walk(tree, 0)
    return spans


@lru_cache(maxsize=1 << 16)
def gold_spans(tree: str) -> tuple[Span, ...]:
    """``factorize(binarize(strip_functions(tree)))`` for a bracketed string (cached, labels interned)."""
    return tuple((i, j, sys.intern(label)) for i, j, label in factorize(binarize(strip_functions(tree))))


def preterminals(words: Sequence[str], tags: Sequence[str]) -> list[Tree]:
    """``(TAG word)`` leaves, both escaped for a bracketed tree."""
    if len(words) != len(tags):
        raise ValueError(f"{len(words)} words but {len(tags)} tags")
    return [Tree(escape_leaf(t), [escape_leaf(w)]) for w, t in zip(words, tags, strict=True)]


def build_tree(spans: Sequence[Span], words: Sequence[str], tags: Sequence[str]) -> Tree:
    """Inverse of :func:`factorize`: nest labelled spans over ``(TAG word)`` leaves.

    Spans may come in any order (they are sorted by start, then decreasing end; equal spans nest in input
    order). Words not covered by a smaller span become direct children of the smallest enclosing span.
    When no span covers the whole sentence, the top-level items are wrapped in a ``|<>`` node.

    Args:
        spans: ``(i, j, label)`` with ``0 <= i < j <= n``, properly nested (no crossing).
        words: The ``n`` words.
        tags: The ``n`` POS tags.

    Returns:
        The (binarised) tree.

    Raises:
        ValueError: Out-of-range, empty or crossing spans.
    """
    leaves = preterminals(words, tags)
    n = len(leaves)
    order = sorted(spans, key=lambda s: (s[0], -s[1]))
    if any(not 0 <= i < j <= n for i, j, _ in order):
        raise ValueError(f"span out of range for {n} words: {order}")
    pos = 0

    def build(i: int, j: int, label: str) -> Tree:
        nonlocal pos
        children: list[Tree] = []
        k = i
        while pos < len(order) and order[pos][0] < j:
            a, b, lab = order[pos]
            if b > j:
                raise ValueError(f"span ({a}, {b}) crosses ({i}, {j})")
            pos += 1
            children += leaves[k:a]
            children.append(build(a, b, lab))
            k = b
        return Tree(label, children + leaves[k:j])

    top = build(0, n, NULL)
    whole = bool(order) and order[0][:2] == (0, n) and len(top) == 1
    return top[0] if whole else top


def _undo(node: Tree | str) -> list:
    if not isinstance(node, Tree) or is_preterminal(node):
        return [node]
    children = [c for child in node for c in _undo(child)]
    label = node.label()
    if label.endswith(NULL):
        return children
    *outer, inner = label.split(JOIN)
    out = Tree(inner, children)
    for lab in reversed(outer):
        out = Tree(lab, [out])
    return [out]


def debinarize(tree: Tree, root: str | None = "TOP") -> Tree:
    """Undo :func:`binarize`: splice ``|<>`` nodes, expand ``A+B`` into ``(A (B ...))``.

    Args:
        tree: A binarised tree (from :func:`binarize` or :func:`build_tree`).
        root: Wrap the result in this label; ``None`` returns the single top node.

    Returns:
        A new tree (preterminals are shared with ``tree``).
    """
    nodes = _undo(tree)
    if root is not None:
        return Tree(root, nodes)
    if len(nodes) != 1 or not isinstance(nodes[0], Tree):
        raise ValueError("the tree has several top-level nodes: pass a root label")
    return nodes[0]


def spans_to_tree(
    spans: Sequence[Span], words: Sequence[str], tags: Sequence[str], root: str = "TOP"
) -> Tree:
    """``debinarize(build_tree(spans, words, tags), root)``: the predicted tree with the given POS tags."""
    return debinarize(build_tree(spans, words, tags), root)
