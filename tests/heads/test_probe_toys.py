"""A hand-wired BERT whose heads are known: for each probe, one head encodes the gold answer.

Hidden size 64, 2 layers × 4 heads of 16 dimensions. The embedding of subword t of a token of class c is
``(e_t − e_{16+t}) + (e_{32+c} − e_{48+c})``: zero mean and constant norm, so the embedding LayerNorm only
scales it (by 4). Every attention output, intermediate and output projection is zero, so each layer passes
that vector on unchanged (LayerNorm again) and both layers see the same inputs. Heads are wired as:

* ``self``: queries and keys read the position one-hot, so each subword attends to itself; values read the
  position, so the context says where a word is and nothing of its class (a poor value probe, and an
  attention argmax that never links two different words);
* ``value``: attends to itself, values read the class one-hot, so the context is the class (a perfect value
  probe when the class is the label);
* ``arc``: queries read the class ``a``, keys the class ``b``, with a large score iff ``b = target[a]``:
  every subword attends to the subwords of the target class (a perfect DEP or SRL probe when the target
  class is the gold head or predicate).
"""

from __future__ import annotations

import torch
from transformers import BertConfig, BertModel

D, L, H, DH = 64, 2, 4, 16
CLS, SEP = 0, 1  # classes of the special tokens
SCALE = 2.5  # logit of a match: (4 · SCALE)² / √16 = 25, so the softmax is one-hot to ~1e-10


def toy_bert(
    tokenizer, word_class: dict[str, int], *, value=None, arc=None, arc_target: dict[int, int] | None = None
) -> BertModel:
    """A 2 × 4-head BERT; ``value``/``arc`` are the (layer, head) of the wired heads (others are ``self``).

    Args:
        tokenizer: gives the subword ids of each word (every subword of a word gets the word's class).
        word_class: class (2..15) of each word.
        value: (layer, head) of the value head, or None.
        arc: (layer, head) of the arc head, or None.
        arc_target: class -> the class its subwords attend to (for ``arc``).
    """
    cfg = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=D,
        num_hidden_layers=L,
        num_attention_heads=H,
        intermediate_size=8,
        max_position_embeddings=16,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    model = BertModel._from_config(cfg, add_pooling_layer=False, attn_implementation="sdpa").eval()
    eye = torch.eye(16)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.fill_(1.0)
        emb = model.embeddings
        emb.position_embeddings.weight[:, :32] = torch.cat([eye, -eye], dim=1)
        classes = {tokenizer.cls_token_id: CLS, tokenizer.sep_token_id: SEP}
        for word, c in word_class.items():
            for i in tokenizer(word, add_special_tokens=False)["input_ids"]:
                classes[i] = c
        for i, c in classes.items():
            emb.word_embeddings.weight[i, 32 + c] = 1.0
            emb.word_embeddings.weight[i, 48 + c] = -1.0
        for layer_index, layer in enumerate(model.encoder.layer):
            att = layer.attention.self
            for h in range(H):
                rows = slice(h * DH, (h + 1) * DH)
                if (layer_index, h) == arc:
                    att.query.weight[rows, 32:48] = SCALE * eye
                    for a, b in (arc_target or {}).items():
                        att.key.weight[h * DH + a, 32 + b] = SCALE
                else:  # attend to itself
                    att.query.weight[rows, 0:16] = SCALE * eye
                    att.key.weight[rows, 0:16] = SCALE * eye
                reads = 32 if (layer_index, h) == value else 0  # class or position
                att.value.weight[rows, reads : reads + 16] = eye
    return model


# Toy English: POS class of each word; DEP, CON and SRL follow from the classes
DT, JJ, NN, VBZ, RB = 2, 3, 4, 5, 6
POS_CLASS = {"the": DT, "big": JJ, "cat": NN, "dog": NN, "xylophones": NN, "runs": VBZ, "sleeps": VBZ}
POS_CLASS["quickly"] = RB
TAG = {DT: "DT", JJ: "JJ", NN: "NN", VBZ: "VBZ", RB: "RB"}
REL = {DT: "det", JJ: "amod", NN: "nsubj", RB: "advmod", VBZ: "root"}
DEP_TARGET = {DT: NN, JJ: NN, NN: VBZ, RB: VBZ, VBZ: CLS}  # each class attends to its syntactic head
SRL_TARGET = {DT: VBZ, JJ: VBZ, NN: VBZ, RB: VBZ, VBZ: CLS}  # every argument word attends to the predicate
CON_CLASS = {w: {DT: 2, JJ: 2, NN: 2, VBZ: 3, RB: 4}[c] for w, c in POS_CLASS.items()}  # NP, VP, ADVP
TEXTS = [  # words of each class in varied places, so that position alone does not tell the tag
    "the cat runs",
    "quickly the big dog sleeps",
    "cat runs",
    "sleeps big xylophones",
    "runs the xylophones quickly",
    "dog quickly sleeps",
    "the big big cat runs",
    "quickly xylophones sleeps",
    "runs quickly the cat",
]
# CON: phrases in varied places, so that position alone does not tell the label
CON_TREES = [
    "(TOP (S (NP (DT the) (NN cat)) (VP (VBZ runs))))",
    "(TOP (S (ADVP (RB quickly)) (NP (DT the) (JJ big) (NN dog)) (VP (VBZ sleeps))))",
    "(TOP (S (VP (VBZ runs)) (NP (NN cat))))",
    "(TOP (S (NP (NN xylophones)) (VP (VBZ sleeps) (ADVP (RB quickly)))))",
    "(TOP (S (ADVP (RB quickly)) (VP (VBZ runs)) (NP (DT the) (NN dog))))",
    "(TOP (S (NP (DT the) (JJ big) (JJ big) (NN cat)) (ADVP (RB quickly)) (VP (VBZ runs))))",
]
NER_CLASS = {"john": 2, "mary": 2, "paris": 3, "new": 3, "york": 3, "google": 4, "visited": 5, "hired": 5}
NER_TEXTS = [
    ("john visited paris", [(0, 0, "PER"), (2, 2, "LOC")]),
    ("google hired mary", [(0, 0, "ORG"), (2, 2, "PER")]),
    ("mary visited new york", [(0, 0, "PER"), (2, 3, "LOC")]),
    ("paris hired john", [(0, 0, "LOC"), (2, 2, "PER")]),
    ("john visited google", [(0, 0, "PER"), (2, 2, "ORG")]),
]


def toy_sentences():
    """Sentences of :data:`TEXTS` with POS, DEP and SRL layers derived from the word classes: one verb, one
    noun phrase (its ARG0) and at most one adverb (its ARGM-MNR)."""
    from mtlheads.data.sentence import Sentence

    out = []
    for text in TEXTS:
        words = text.split()
        cls = [POS_CLASS[w] for w in words]
        verb, noun = cls.index(VBZ), cls.index(NN)
        heads = [{DT: noun + 1, JJ: noun + 1, NN: verb + 1, RB: verb + 1, VBZ: 0}[c] for c in cls]
        np_start = min(i for i in range(noun + 1) if all(c in (DT, JJ, NN) for c in cls[i : noun + 1]))
        args = [(np_start, noun, "ARG0"), (verb, verb, "V")]
        args += [(i, i, "ARGM-MNR") for i, c in enumerate(cls) if c == RB]
        pos, rels = [TAG[c] for c in cls], [REL[c] for c in cls]
        out.append(Sentence(words=words, pos=pos, heads=heads, rels=rels, srl=[(verb, args)], source=text))
    return out


def toy_ner_sentences():
    from mtlheads.data.sentence import Sentence

    return [Sentence(words=t.split(), entities=e, source=t) for t, e in NER_TEXTS]


def toy_con_sentences():
    from nltk import Tree

    from mtlheads.data.sentence import Sentence

    return [Sentence(words=Tree.fromstring(t).leaves(), tree=t, source=t) for t in CON_TREES]


def test_the_toy_heads_attend_as_wired(minilm_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    model = toy_bert(tokenizer, POS_CLASS, arc=(1, 2), arc_target=DEP_TARGET).eval()
    model.set_attn_implementation("eager")
    ids = tokenizer(["the big dog sleeps"], return_tensors="pt")[
        "input_ids"
    ]  # [CLS] the big dog sleeps [SEP]
    with torch.no_grad():
        att = model(input_ids=ids, output_attentions=True).attentions  # L x (1, H, 6, 6)
    eye = torch.eye(6)
    torch.testing.assert_close(att[0][0, 0], eye, atol=1e-6, rtol=0)  # a self head
    # the arc head: the -> dog, big -> dog, dog -> sleeps, sleeps -> [CLS]
    assert (
        att[1][0, 2].argmax(-1)[1:5].tolist() == [3, 3, 4, 0]
        and att[1][0, 2][1:5].max(-1).values.min() > 0.99
    )
