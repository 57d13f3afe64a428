"""Cut the small EWT excerpt shipped in ``src/mtlheads/resources/ewt`` from the full data.

The excerpt holds, per split, the whole documents at the start of the split whose sentences fit in a
budget (train 300, dev 100, test 100), in all three formats (CoNLL-2012, CoNLL-U, IOB2). The full
files hold the same sentences in the same order, so the first K sentence blocks of each are taken
verbatim; the result is re-read with the package readers and checked word for word.

Usage: python scripts/make_excerpt.py [--data-dir shared/data/ewt] [--out src/mtlheads/resources/ewt]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from mtlheads.data import find_data_dir, read_conll2012, read_conllu, read_iob2  # noqa: E402
from mtlheads.data.conllu_reader import read_lines, split_blocks  # noqa: E402

LIMITS = {"train": 300, "dev": 100, "test": 100}
FILES = {"conll2012": "{}.gold_conll", "ud": "{}.conllu", "ner": "{}.iob2"}

LICENSE = """\
The files in this directory (conll2012/, ud/, ner/) are an excerpt of the EWT data built by
shared/data/build_ewt.py from UD_English-EWT, UNER_English-EWT and propbank-release. All three
sources are licensed under the Creative Commons Attribution-ShareAlike 4.0 International License
(CC BY-SA 4.0), and so is this excerpt, which is adapted material:

    https://creativecommons.org/licenses/by-sa/4.0/

See ATTRIBUTION.md for the sources, their authors, the changes made, and how to cite them.
The rest of the mtlheads code base is under its own license; CC BY-SA 4.0 applies to this directory.
"""

ATTRIBUTION = """\
# Attribution: EWT excerpt

`conll2012/`, `ud/` and `ner/` hold the first whole documents of each split of the English Web
Treebank (EWT) as merged by `shared/data/build_ewt.py`, the same sentences in the same order in
all three formats, cut by `scripts/make_excerpt.py`.
Sentences: {counts}.

This excerpt is **adapted material** under the Creative Commons Attribution-ShareAlike 4.0
International License (CC BY-SA 4.0, https://creativecommons.org/licenses/by-sa/4.0/): credit
the sources below and share derivatives under the same license.

## Sources

- [UniversalDependencies/UD_English-EWT](https://github.com/UniversalDependencies/UD_English-EWT),
  release r2.16, commit `15d613d8447b3478787d4c278730a1e48a945efb`: the words, and `ud/`
  (sentence blocks copied unchanged).
- [UniversalNER/UNER_English-EWT](https://github.com/UniversalNER/UNER_English-EWT), commit
  `8ed072de2fd24022cc62458997fe96a8fe191ea4`: `ner/dev` and `ner/test` (released files, put in UD
  document order) and the NE column of `conll2012/dev` and `conll2012/test`.
- UniversalNER/UNER_English-EWT, first commit `0c7ce0debb13a7d304da656f16309397e8ff36ef`:
  `ner/train` and the NE column of `conll2012/train` (see below).
- [propbank/propbank-release](https://github.com/propbank/propbank-release), commit
  `4abade0b53ce4a181e1d98b3518101c1a44d395a`: POS, parse bits, rolesets and SRL columns of
  `conll2012/` (`data/google/ewt/**/*.gold_skel`).

**Train NER is not the released UNER train file.** It comes from UNER's pre-release draft
(first commit, December 2022, marked "DO NOT USE" by its authors), with `B-OTH`/`I-OTH` and a
spurious `B-O` mapped to `O`; `ner/train.iob2` starts with a `# source` comment saying so. On dev
and test the same draft agrees with the released files at entity F1 0.986 / 0.956.

Changes made by the merge: words in `conll2012/` are the UD forms (PropBank ships `[WORD]`
placeholders); NE types are mapped PER -> PERSON, ORG -> ORG, LOC -> LOC in `conll2012/`; sentences
that could not be aligned across the three sources were dropped (see `shared/data/README.md`).

## Credits and citations

- **UD_English-EWT**: annotations (c) 2013-2021 The Board of Trustees of the Leland Stanford Junior
  University, CC BY-SA 4.0. The underlying texts come from various sources collected for the LDC
  English Web Treebank (LDC2012T13); some parts are in the public domain; portions may be
  (c) 2012 Google Inc., (c) 2011 Yahoo! Inc., (c) 2012 Trustees of the University of Pennsylvania
  and/or (c) other original authors. Cite: Natalia Silveira, Timothy Dozat, Marie-Catherine de
  Marneffe, Samuel Bowman, Miriam Connor, John Bauer and Christopher D. Manning (2014).
  *A Gold Standard Dependency Corpus for English.* LREC 2014.
- **UNER_English-EWT** (CC BY-SA 4.0): Stephen Mayhew, Terra Blevins, Shuheng Liu, Marek Šuppa,
  Hila Gonen, Joseph Marvin Imperial, Börje F. Karlsson, Peiqin Lin, Nikola Ljubešić, LJ Miranda,
  Barbara Plank, Arij Riabi and Yuval Pinter (2024). *Universal NER: A Gold-Standard Multilingual
  Named Entity Recognition Benchmark.* NAACL 2024.
- **propbank-release** (CC BY-SA 4.0): the unified PropBank annotation of the English Web Treebank.
  Its parse trees and PTB tags come from the LDC English Web Treebank (LDC2012T13), developed by
  the LDC with funding from Google. Cite: Sameer Pradhan, Julia Bonial, Sarah Doyle, Ishan
  Jindal, Skatje Myers, Kristin Wright-Bettner and Martha Palmer (2022). *PropBank Comes of
  Age: Larger, Smarter, and more Diverse.* *SEM 2022.
"""


def conll_documents(lines: list[str]) -> list[tuple[list[str], int]]:
    """Split a ``*.gold_conll`` file into documents: (lines from ``#begin`` to ``#end``, sentence count)."""
    docs: list[tuple[list[str], int]] = []
    current: list[str] = []
    for line in lines:
        if line.startswith("#begin document"):
            current = [line]
        else:
            current.append(line)
        if line.startswith("#end document"):
            # Each sentence's last row is followed by a blank line.
            n = sum(1 for a, b in zip(current, current[1:], strict=False) if a.strip() and not b.strip())
            docs.append((current, n))
    return docs


def cut_split(data: Path, out: Path, split: str, limit: int) -> int:
    """Write the excerpt of one split to ``out``; return its sentence count."""
    docs = conll_documents(read_lines(data / "conll2012" / FILES["conll2012"].format(split)))
    kept: list[str] = []
    k = 0
    for doc_lines, n in docs:
        if k and k + n > limit:  # always keep the first document, even if it alone is too long
            break
        kept += doc_lines
        k += n
    texts = {"conll2012": "\n".join(kept) + "\n"}
    for fmt in ("ud", "ner"):
        blocks = list(split_blocks(read_lines(data / fmt / FILES[fmt].format(split))))
        # The conll2012 cut ends a document, so the next block here must start one.
        if len(blocks) > k and not any("# newdoc id" in line for _, line in blocks[k]):
            sys.exit(f"{fmt}/{split}: sentence {k + 1} does not start a document; formats out of step")
        texts[fmt] = "".join("\n".join(line for _, line in b) + "\n\n" for b in blocks[:k])
    for fmt, text in texts.items():
        path = out / fmt / FILES[fmt].format(split)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    check(out, split, k)
    return k


def check(out: Path, split: str, k: int) -> None:
    """Re-read the written excerpt and fail loudly unless all formats hold the same k sentences."""
    conll = read_conll2012(out / "conll2012" / FILES["conll2012"].format(split), normalize=False)
    ud = read_conllu(out / "ud" / FILES["ud"].format(split), normalize=False)
    ner = read_iob2(out / "ner" / FILES["ner"].format(split), normalize=False)
    if not len(conll) == len(ud) == len(ner) == k:
        counts = f"conll2012 {len(conll)}, ud {len(ud)}, ner {len(ner)}"
        sys.exit(f"{split}: sentence counts differ: {counts}, want {k}")
    for i, (c, u, n) in enumerate(zip(conll, ud, ner, strict=True)):
        if not c.words == u.words == n.words or u.meta["sent_id"] != n.meta["sent_id"]:
            sys.exit(f"{split}: sentence {i} ({u.meta['sent_id']}) differs between formats")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    shared = find_data_dir()
    ap.add_argument("--data-dir", type=Path, default=shared / "ewt" if shared else None, help="the ewt/ dir")
    ap.add_argument("--out", type=Path, default=REPO / "src" / "mtlheads" / "resources" / "ewt")
    args = ap.parse_args()
    if args.data_dir is None or not args.data_dir.is_dir():
        sys.exit(f"EWT data not found ({args.data_dir}): pass --data-dir or set MTLHEADS_DATA_DIR")
    counts = {split: cut_split(args.data_dir, args.out, split, limit) for split, limit in LIMITS.items()}
    summary = ", ".join(f"{split} {n}" for split, n in counts.items())
    (args.out / "LICENSE").write_text(LICENSE, encoding="utf-8")
    (args.out / "ATTRIBUTION.md").write_text(ATTRIBUTION.format(counts=summary), encoding="utf-8")
    print(f"wrote {args.out}: {summary}")


if __name__ == "__main__":
    main()
