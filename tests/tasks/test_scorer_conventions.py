"""Our metrics against the official scorers' conventions, on hand-checked fixtures and on written files.

* NER: seqeval (installed) exact-span F1 equals :class:`NerMetric`.
* DEP: the CoNLL 2018 UD evaluation (``conll18_ud_eval.py``) scores every word and only the universal
  part of DEPREL; :class:`DepMetric` skips punctuation and compares whole relations.
  :func:`conll2018_attachment` gives the official numbers.
* CON: EVALB with ``COLLINS.prm`` (``evalb.c``) against :class:`EvalbMetric`.
* SRL: the CoNLL-2005 ``srl-eval.pl`` against :class:`SrlMetric`.

The official tools are not run here (EVALB and srl-eval.pl are C and Perl);
:mod:`mtlheads.tasks.scorer_conventions` re-states their counting rules from their documented behaviour
(``evalb_collins``, ``srl_eval``, ``conll18_from_files``), and every rule it encodes is pinned by a
hand-checked fixture here. The fixtures named ``DISAGREE_*`` are where our metrics differ from the official
convention (not changed here).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from nltk import Tree
from seqeval.metrics import f1_score, precision_score, recall_score
from seqeval.scheme import IOB2

from mtlheads.data import excerpt_dir, iob2_to_spans, read_conll2012, read_conllu, read_iob2
from mtlheads.data.conll2012_writer import write_srl_props
from mtlheads.data.prediction_formats import conll2018_attachment
from mtlheads.data.sentence import Sentence
from mtlheads.data.trees import is_preterminal, to_string
from mtlheads.data.writers import write_conllu, write_iob2, write_ptb
from mtlheads.tasks.dep import DepMetric
from mtlheads.tasks.evalb import EvalbMetric
from mtlheads.tasks.ner import NerMetric
from mtlheads.tasks.scorer_conventions import (
    Frames,
    conll18_from_files,
    evalb_collins,
    read_props,
    srl_eval,
)
from mtlheads.tasks.srl_metric import SrlMetric, clean_srl

EWT = excerpt_dir()

# ---------------------------------------------------------------------------------------- NER: seqeval

# (gold tags, predicted tags); spans: gold 6, predicted 7, correct 2 (LOC in s1, the PER chain in s5)
NER_FIXTURE = [
    ("B-PER I-PER O B-LOC", "B-PER O O B-LOC"),  # PER boundary error; LOC correct
    ("B-ORG B-ORG O", "B-ORG I-ORG O"),  # two adjacent ORGs predicted as one
    ("O O B-PER", "O O B-ORG"),  # sentence-final entity, wrong type
    ("O O O", "B-LOC O B-PER"),  # two false positives
    ("B-PER I-PER I-PER", "B-PER I-PER I-PER"),  # correct
]


def _ner_scores(gold_tags: list[list[str]], pred_tags: list[list[str]]) -> tuple[dict, dict, dict]:
    ours = NerMetric()
    ours.update(
        [iob2_to_spans(p) for p in pred_tags],
        [Sentence(words=["w"] * len(g), entities=iob2_to_spans(g)) for g in gold_tags],
    )
    default = {
        "p": precision_score(gold_tags, pred_tags),
        "r": recall_score(gold_tags, pred_tags),
        "f1": f1_score(gold_tags, pred_tags),
    }
    strict = {
        "p": precision_score(gold_tags, pred_tags, mode="strict", scheme=IOB2),
        "r": recall_score(gold_tags, pred_tags, mode="strict", scheme=IOB2),
        "f1": f1_score(gold_tags, pred_tags, mode="strict", scheme=IOB2),
    }
    return ours.compute(), default, strict


def test_ner_metric_is_seqeval_exact_span_f1_on_a_hand_checked_fixture() -> None:
    gold = [g.split() for g, _ in NER_FIXTURE]
    pred = [p.split() for _, p in NER_FIXTURE]
    ours, default, strict = _ner_scores(gold, pred)
    expected = {"p": 2 / 7, "r": 2 / 6, "f1": 4 / 13}  # 2 correct, 7 predicted, 6 gold
    for scores in (ours, default, strict):
        assert scores == pytest.approx(expected)


def test_ner_metric_equals_seqeval_on_written_iob2_files(tmp_path: Path) -> None:
    gold = read_iob2(EWT / "ner" / "dev.iob2")
    rot = {"PER": "ORG", "ORG": "LOC", "LOC": "PER"}
    preds = [[(a, b, rot[t] if a % 2 else t) for a, b, t in s.entities] for s in gold]  # half the types wrong
    path = write_iob2(tmp_path / "pred.iob2", zip(gold, preds, strict=True))

    def tag_columns(file: Path) -> list[list[str]]:
        blocks = file.read_text(encoding="utf-8").split("\n\n")
        return [[ln.split("\t")[2] for ln in b.splitlines() if ln[:1].isdigit()] for b in blocks if b.strip()]

    ours, default, strict = _ner_scores(tag_columns(EWT / "ner" / "dev.iob2"), tag_columns(path))
    assert 0.2 < ours["f1"] < 0.9
    assert ours == pytest.approx(default) and ours == pytest.approx(strict)


# ------------------------------------------------------------------------------- DEP: CoNLL 2018 UD eval

DEP_WORDS = ["Mary", "'s", "dog", "barked", "loudly", "today", "."]
DEP_GOLD = ([3, 1, 4, 0, 4, 4, 4], ["nmod:poss", "case", "nsubj", "root", "advmod", "obl:tmod", "punct"])
# Mary: subtype dropped; dog: wrong label; loudly: wrong head; today: other subtype; ".": wrong head
DEP_PRED = ([3, 1, 4, 0, 3, 4, 3], ["nmod", "case", "obj", "root", "advmod", "obl:npmod", "punct"])


def test_dep_conventions_on_a_hand_checked_fixture() -> None:
    """DepMetric: 6 non-punctuation words, heads right for 5, heads and whole relation right for 2
    ('s, barked). CoNLL 2018: all 7 words, heads right for 5, heads and universal relation right for 4
    (Mary nmod = nmod:poss, today obl = obl)."""
    gold = Sentence(words=DEP_WORDS, heads=DEP_GOLD[0], rels=DEP_GOLD[1])
    ours = DepMetric()
    ours.update([DEP_PRED], [gold])
    assert ours.compute() == pytest.approx({"uas": 5 / 6, "las": 2 / 6})
    assert conll2018_attachment([DEP_PRED], [gold]) == pytest.approx({"uas": 5 / 7, "las": 4 / 7})


def test_dep_conventions_on_written_conllu_files(tmp_path: Path) -> None:
    """Predictions that differ from gold only in punctuation heads and relation subtypes: perfect for
    one convention on each side, and the file-level CoNLL 2018 count equals conll2018_attachment."""
    from mtlheads.data.ptb import is_punct

    gold = read_conllu(EWT / "ud" / "dev.conllu")
    preds = []
    for s in gold:
        n = len(s.words)  # punctuation re-attached to word 2 (never to itself)
        heads = [
            2 if is_punct(w) and i != 1 and n > 1 else h
            for i, (w, h) in enumerate(zip(s.words, s.heads, strict=True))
        ]
        preds.append((heads, [r.split(":")[0] for r in s.rels]))
    path = write_conllu(tmp_path / "pred.conllu", ((s, {"dep": d}) for s, d in zip(gold, preds, strict=True)))
    official = conll2018_attachment(preds, gold)
    assert conll18_from_files(EWT / "ud" / "dev.conllu", path) == pytest.approx(official)
    ours = DepMetric()
    ours.update([(s.heads, s.rels) for s in read_conllu(path)], gold)
    assert ours.compute()["uas"] == 1.0 and ours.compute()["las"] < 1.0  # punctuation skipped, subtypes count
    assert official["uas"] < 1.0 and official["las"] == official["uas"]  # punctuation counts, subtypes don't


def _conllu(rows: list[tuple]) -> str:
    """A CoNLL-U sentence from (id, form, upos, head, deprel) rows; range and empty-node lines get "_"."""
    lines = ["# sent_id = fixture-1", "# text = You cannot pay $5 (really)."]
    for i, form, upos, head, rel in rows:
        if "-" in i:
            lines.append(f"{i}\t{form}" + "\t_" * 8)
        elif "." in i:  # an empty node: no basic head, only an enhanced one in DEPS
            lines.append(f"{i}\t{form}\t{form}\t{upos}\t_\t_\t_\t_\t4:conj\t_")
        else:
            lines.append(f"{i}\t{form}\t{form.lower()}\t{upos}\t_\t_\t{head}\t{rel}\t_\t_")
    return "\n".join(lines) + "\n\n"


# A multiword token (2-3 "cannot" = can + not), an empty node (9.1), bracket punctuation and "$" (Unicode Sc,
# not punctuation), relation subtypes. (id, form, upos, gold head, gold rel, predicted head, predicted rel)
MWT_FIXTURE = [
    ("1", "You", "PRON", 4, "nsubj", 4, "nsubj:pass"),  # subtype added: universal part right
    ("2-3", "cannot", "_", None, None, None, None),
    ("2", "can", "AUX", 4, "aux", 4, "aux"),
    ("3", "not", "PART", 4, "advmod", 2, "advmod"),  # wrong head
    ("4", "pay", "VERB", 0, "root", 0, "root"),
    ("5", "$", "SYM", 4, "obj", 4, "iobj"),  # wrong relation
    ("6", "5", "NUM", 5, "nummod", 5, "nummod"),
    ("7", "(", "PUNCT", 8, "punct", 4, "punct"),  # punctuation, wrong head
    ("8", "really", "ADV", 4, "advmod:emph", 4, "advmod"),  # subtype dropped
    ("9", ")", "PUNCT", 8, "punct", 8, "punct"),
    ("9.1", "pay", "VERB", None, None, None, None),
    ("10", ".", "PUNCT", 4, "punct", 4, "punct"),
]


def test_dep_known_answers_with_a_multiword_token_and_an_empty_node(tmp_path: Path) -> None:
    """Counted by hand. CoNLL 2018 (conll18_ud_eval.py): the 10 syntactic words (the range line and the
    empty node are not words), heads right for 8 (not 3, "(" 7), heads and universal relations right for 7
    (also "$" 5: iobj != obj). DepMetric: the 7 words that are not punctuation ("$" and "5" count), heads
    right for 6, heads and whole relations right for 3 (can, pay, 5)."""
    gold_file, pred_file = tmp_path / "gold.conllu", tmp_path / "pred.conllu"
    gold_file.write_text(_conllu([(r[0], r[1], r[2], r[3], r[4]) for r in MWT_FIXTURE]), encoding="utf-8")
    pred_file.write_text(_conllu([(r[0], r[1], r[2], r[5], r[6]) for r in MWT_FIXTURE]), encoding="utf-8")
    (gold,), (pred,) = read_conllu(gold_file), read_conllu(pred_file)
    assert gold.words == ["You", "can", "not", "pay", "$", "5", "(", "really", ")", "."]
    official = {"uas": 8 / 10, "las": 7 / 10}
    assert conll18_from_files(gold_file, pred_file) == pytest.approx(official)
    assert conll2018_attachment([(pred.heads, pred.rels)], [gold]) == pytest.approx(official)
    ours = DepMetric()
    ours.update([(pred.heads, pred.rels)], [gold])
    assert ours.compute() == pytest.approx({"uas": 6 / 7, "las": 3 / 7})


# ------------------------------------------------------------------------------- CON: EVALB, COLLINS.prm

# (gold, predicted, EVALB (matched, gold, predicted)); ours is the same on these
EVALB_AGREE = {
    "pp attachment": (
        "(TOP (S (NP (DT The) (NN cat)) (VP (VBD sat) (PP (IN on) (NP (DT the) (NN mat)))) (. .)))",
        "(TOP (S (NP (DT The) (NN cat)) (VP (VBD sat) (PP (IN on)) (NP (DT the) (NN mat))) (. .)))",
        (4, 5, 5),  # S NP VP NP match; PP (3,6) vs (3,4)
    ),
    "punctuation attachment is ignored": (
        "(TOP (S (NP (PRP I)) (VP (VBD left)) (. .)))",
        "(TOP (S (NP (PRP I)) (VP (VBD left) (. .))))",
        (3, 3, 3),
    ),
    "function tags stripped, PRT = ADVP": (
        "(TOP (S-TPC (NP-SBJ (PRP He)) (VP (VBD gave) (PRT (RP up)))))",
        "(TOP (S (NP (PRP He)) (VP (VBD gave) (ADVP (RP up)))))",
        (4, 4, 4),
    ),
    "unary chain counts twice": (
        "(TOP (S (VP (VB Go)) (. !)))",
        "(TOP (S (VB Go) (. !)))",
        (1, 2, 1),
    ),
    "bracket over punctuation only is dropped": (
        "(TOP (S (NP (NNP Bob)) (VP (VBD ran)) (PRN (, ,) (: --)) (. .)))",
        "(TOP (S (NP (NNP Bob)) (VP (VBD ran)) (, ,) (: --) (. .)))",
        (3, 3, 3),
    ),
    "repeated brackets are a multiset": (
        "(TOP (NP (NP (NN dog)) (PP (IN of) (NP (NN mine)))))",
        "(TOP (NP (NP (NP (NN dog))) (PP (IN of) (NP (NN mine)))))",
        (4, 4, 5),
    ),
}

# (gold, predicted, EVALB counts, our counts): conventions outside PTB-style TOP trees with PTB tags
DISAGREE_EVALB = {
    "empty root label: EVALB counts it": (
        "( (S (NP (PRP I)) (VP (VBP go))))",
        "( (S (VP (NP (PRP I)) (VBP go))))",
        (3, 4, 4),  # "" S NP match, VP (1,2) vs (0,2)
        (2, 3, 3),  # we delete the empty label (as ELIT/supar)
    ),
    "S1 root: COLLINS.prm does not delete it": (
        "(S1 (S (NP (PRP I)) (VP (VBP go))))",
        "(S1 (S (VP (NP (PRP I)) (VBP go))))",
        (3, 4, 4),
        (2, 3, 3),
    ),
    "tag '?': COLLINS.prm keeps the word": (
        "(TOP (SQ (VP (VB Go)) (? ?)))",
        "(TOP (SQ (VP (VB Go) (? ?))))",
        (1, 2, 2),  # SQ (0,2) matches, VP (0,1) vs (0,2)
        (2, 2, 2),  # we delete '?' and '!' too: VP (0,1) both
    ),
    "punctuation tagged differently: EVALB skips the sentence": (
        "(TOP (S (NP (PRP I)) (VP (VBD left)) (. .)))",
        "(TOP (S (NP (PRP I)) (VP (VBD left) (NN .))))",
        (0, 0, 0),  # length mismatch: an error sentence
        (3, 3, 3),  # we copy the gold tags into the prediction first (as the reference does)
    ),
}


def _ours(gold: str, pred: str) -> tuple[int, int, int]:
    pos = Tree.fromstring(gold).pos()
    metric = EvalbMetric()
    metric.update([pred], [Sentence(words=[w for w, _ in pos], pos=[t for _, t in pos], tree=gold)])
    return metric.matched, metric.n_gold, metric.n_pred


@pytest.mark.parametrize("name", list(EVALB_AGREE))
def test_evalb_metric_follows_collins_prm(name: str) -> None:
    gold, pred, counts = EVALB_AGREE[name]
    assert evalb_collins(gold, pred) == counts
    assert _ours(gold, pred) == counts


@pytest.mark.parametrize("name", list(DISAGREE_EVALB))
def test_evalb_disagreements_outside_ptb_style_trees(name: str) -> None:
    gold, pred, official, ours = DISAGREE_EVALB[name]
    assert evalb_collins(gold, pred) == official
    assert _ours(gold, pred) == ours != official


def _perturb_tree(tree: str, k: int) -> str:
    """Every PP spliced into its parent, every other NP relabelled NX (structure and labels change)."""
    count = [k]

    def walk(node: Tree) -> list:
        if is_preterminal(node):
            return [node]
        kids = [c for child in node for c in walk(child)]
        label = node.label()
        if label.startswith("NP"):
            count[0] += 1
            label = "NX" if count[0] % 2 else label
        return kids if label.startswith("PP") else [Tree(label, kids)]

    return to_string(walk(Tree.fromstring(tree))[0])


def test_evalb_metric_equals_collins_counts_on_written_tree_files(tmp_path: Path) -> None:
    sentences = read_conll2012(EWT / "conll2012" / "dev.gold_conll")
    gold_file = write_ptb(tmp_path / "gold.ptb", ((s, s.tree) for s in sentences))
    pred_file = write_ptb(
        tmp_path / "pred.ptb", ((s, _perturb_tree(s.tree, k)) for k, s in enumerate(sentences))
    )
    golds = gold_file.read_text(encoding="utf-8").splitlines()
    preds = pred_file.read_text(encoding="utf-8").splitlines()
    official = [
        sum(x) for x in zip(*(evalb_collins(g, p) for g, p in zip(golds, preds, strict=True)), strict=True)
    ]
    metric = EvalbMetric()
    metric.update(preds, sentences)
    assert [metric.matched, metric.n_gold, metric.n_pred] == official
    assert 0 < official[0] < official[1]


# ------------------------------------------------------------------------------ SRL: CoNLL-2005 srl-eval


def _ours_srl(gold: list[Frames], pred: list[Frames]) -> tuple[int, int, int]:
    metric = SrlMetric()
    metric.update(pred, [Sentence(words=["w"] * 9, srl=g) for g in gold])
    return metric.tp, metric.n_pred - metric.tp, metric.n_gold - metric.tp


GOLD_A = [(1, [(0, 0, "ARG0"), (1, 1, "V"), (2, 3, "ARG1"), (4, 4, "R-ARG1")])]
GOLD_C = [(2, [(0, 0, "ARG1"), (2, 2, "V"), (3, 4, "C-ARG1")])]  # "The results, he said, ..."

# (gold, predicted, srl-eval (correct, excess, missed)); ours is the same on these
SRL_AGREE = {
    "wrong role is one excess and one miss": (
        GOLD_A,
        [(1, [(0, 0, "ARG0"), (2, 3, "ARG2"), (4, 4, "R-ARG1")])],
        (2, 1, 1),
    ),
    "R- roles are ordinary roles": (
        GOLD_A,
        [(1, [(0, 0, "ARG0"), (2, 3, "ARG1"), (4, 4, "ARG1")])],
        (2, 1, 1),
    ),
    "missed prop: all its arguments missed": (GOLD_A, [], (0, 0, 3)),
    "C-V is excluded like V": (
        [(2, [(2, 2, "V"), (4, 4, "C-V"), (0, 1, "ARG0")])],
        [(2, [(0, 1, "ARG0")])],
        (1, 0, 0),
    ),
    "boundary error": (GOLD_A, [(1, [(0, 1, "ARG0"), (2, 3, "ARG1"), (4, 4, "R-ARG1")])], (2, 1, 1)),
}

# (gold, predicted, srl-eval counts, our counts)
DISAGREE_SRL = {
    "C- argument: one discontinuous argument for srl-eval, two spans for us (all right)": (
        GOLD_C,
        [(2, [(0, 0, "ARG1"), (3, 4, "C-ARG1")])],
        (1, 0, 0),
        (2, 0, 0),
    ),
    "C- argument: first piece only is wrong for srl-eval, half right for us": (
        GOLD_C,
        [(2, [(0, 0, "ARG1")])],
        (0, 1, 1),
        (1, 0, 1),
    ),
    "V in the prediction: excluded by srl-eval, an excess for us": (
        GOLD_A,
        [(1, [(0, 0, "ARG0"), (1, 1, "V"), (2, 3, "ARG1"), (4, 4, "R-ARG1")])],
        (3, 0, 0),
        (3, 1, 0),
    ),
    "predicate not in gold: skipped by srl-eval, its arguments are excess for us": (
        GOLD_A,
        [(1, [(0, 0, "ARG0"), (2, 3, "ARG1"), (4, 4, "R-ARG1")]), (6, [(7, 8, "ARG1")])],
        (3, 0, 0),
        (3, 1, 0),
    ),
    "C- without its head phrase: srl-eval reads it as the plain role": (
        [(2, [(2, 2, "V"), (3, 4, "C-ARG1")])],
        [(2, [(3, 4, "ARG1")])],
        (1, 0, 0),
        (0, 1, 1),
    ),
}


@pytest.mark.parametrize("name", list(SRL_AGREE))
def test_srl_metric_follows_srl_eval(name: str) -> None:
    gold, pred, counts = SRL_AGREE[name]
    assert srl_eval([gold], [pred]) == counts
    assert _ours_srl([gold], [pred]) == counts


@pytest.mark.parametrize("name", list(DISAGREE_SRL))
def test_srl_disagreements_with_srl_eval(name: str) -> None:
    gold, pred, official, ours = DISAGREE_SRL[name]
    assert srl_eval([gold], [pred]) == official
    assert _ours_srl([gold], [pred]) == ours != official


def test_srl_metric_versus_srl_eval_on_written_props_files(tmp_path: Path) -> None:
    """Decode-style predictions (no V, gold predicates) with roles changed: on sentences with no C- role
    both count the same; with C- roles they differ as the fixtures above say."""
    sentences = read_conll2012(EWT / "conll2012" / "dev.gold_conll")
    swap = {"ARG0": "ARG1", "ARG1": "ARG0", "ARG2": "ARGM-TMP"}
    preds = [
        [(p, [(a, b, swap.get(r, r)) for a, b, r in args][::2]) for p, args in clean_srl(s.srl)]
        for s in sentences
    ]
    gold_props = read_props(write_srl_props(tmp_path / "gold.props", ((s, s.srl) for s in sentences)))
    pred_props = read_props(write_srl_props(tmp_path / "pred.props", zip(sentences, preds, strict=True)))
    assert gold_props == [sorted(s.srl) for s in sentences]  # the props file holds the gold frames

    def has_c(frames: Frames) -> bool:
        return any(r.startswith("C-") and r != "C-V" for _, args in frames for *_, r in args)

    plain = [k for k, s in enumerate(sentences) if not has_c(s.srl) and not has_c(preds[k])]
    with_c = [k for k in range(len(sentences)) if k not in plain]
    assert plain and with_c

    def both(ks: list[int]) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        metric = SrlMetric()
        metric.update([preds[k] for k in ks], [sentences[k] for k in ks])
        ours = metric.tp, metric.n_pred - metric.tp, metric.n_gold - metric.tp
        return srl_eval([gold_props[k] for k in ks], [pred_props[k] for k in ks]), ours

    official, ours = both(plain)
    assert official == ours and official[0] > 0 and official[1] > 0
    official, ours = both(with_c)
    assert official != ours
    assert sum(official[::2]) < sum(ours[::2])  # srl-eval counts fewer gold arguments (C- pieces joined)
