"""The label vocabulary shared by the structured tasks."""

from __future__ import annotations

import pytest

from mtlheads.tasks.dep import DepTask
from mtlheads.tasks.ner import NULL, NerTask
from mtlheads.tasks.pos import PosTask
from mtlheads.tasks.srl import SrlTask


def test_indices_unknown_labels_and_state_round_trip():
    task = PosTask()
    task.set_labels(["DT", "NN", "VB"])
    assert [task.label_index(t) for t in ("VB", "DT", "JJ")] == [2, 0, 3] == [2, 0, task.unk_index]
    assert task.label_index("JJ", default=-100) == -100
    assert task.vocab_state() == {"tags": ["DT", "NN", "VB"]} and task.tags is task.labels
    other = PosTask()
    other.load_vocab_state(task.vocab_state())
    assert other.labels == task.labels and other.label_index("NN") == 1
    assert PosTask().labels == [] and other.labels is not task.labels  # no state shared between instances


def test_each_task_keeps_its_checkpoint_key():
    dep, ner = DepTask(), NerTask()
    dep.set_labels(["nsubj", "root"])
    ner.set_labels([NULL, "PER"])
    assert dep.vocab_state() == {"rels": ["nsubj", "root"]} and dep.rels == ["nsubj", "root"]
    assert ner.vocab_state() == {"labels": [NULL, "PER"]}


@pytest.mark.parametrize("task", [NerTask(), SrlTask()])
def test_span_tasks_need_the_null_label_first(task):
    with pytest.raises(ValueError, match="label 0 must be"):
        task.set_labels(["PER", NULL])
    with pytest.raises(ValueError, match="label 0 must be"):
        task.load_vocab_state({"labels": []})


def test_building_a_decoder_before_the_vocabulary_is_refused():
    with pytest.raises(RuntimeError, match=r"DepTask.build_decoder called before fit_vocab"):
        DepTask().build_decoder(32)
