"""POS task: vocabulary, targets, loss, decoding with padding, metric, and overfitting a tiny batch."""

from __future__ import annotations

import json

import pytest
import torch
from decoder_fit import overfit

from mtlheads.data.sentence import Sentence
from mtlheads.tasks.pos import PosMetric, PosTask


def _sent(words: list[str], pos: list[str]) -> Sentence:
    return Sentence(words=words, pos=pos)


TRAIN = [
    _sent(["The", "dog", "barks", "."], ["DT", "NN", "VBZ", "."]),
    _sent(["Cats", "sleep"], ["NNS", "VBP"]),
    _sent(["A", "bird", "sings", "loudly", "!"], ["DT", "NN", "VBZ", "RB", "."]),
]


def _mask(lengths: list[int]) -> torch.Tensor:
    n = max(lengths)
    return torch.arange(n)[None, :] < torch.tensor(lengths)[:, None]


def _task() -> PosTask:
    task = PosTask()
    task.fit_vocab(TRAIN)
    return task


def test_vocab_is_sorted_and_json_roundtrips() -> None:
    task = _task()
    assert task.tags == [".", "DT", "NN", "NNS", "RB", "VBP", "VBZ"]
    assert (task.name, task.cls_is_root, task.main_metric) == ("pos", False, "acc")
    other = PosTask(name="pos2")
    other.load_vocab_state(json.loads(json.dumps(task.vocab_state())))
    assert other.tags == task.tags and other.name == "pos2"


def test_build_decoder_is_a_single_linear_layer() -> None:
    decoder = _task().build_decoder(16)
    linears = [m for m in decoder.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 1 and linears[0].out_features == 7
    assert not any(isinstance(m, torch.nn.Dropout) for m in decoder.modules())
    with pytest.raises(RuntimeError):
        PosTask().build_decoder(16)


def test_targets_pad_with_ignore_and_map_unknown_to_reserved_index() -> None:
    task = _task()
    t = task.targets([_sent(["x", "y"], ["DT", "XX"]), _sent(["z"], ["."])])["tags"]
    assert t.tolist() == [[1, task.unk_index], [0, -100]]
    assert task.unk_index == len(task.tags)


def test_loss_is_mean_token_ce_and_skips_padding_and_unknown() -> None:
    task = _task()
    torch.manual_seed(0)
    logits = torch.randn(2, 3, len(task.tags))
    batch = [_sent(["a", "b", "c"], ["DT", "NN", "XX"]), _sent(["d"], ["."])]
    loss = task.loss(logits, task.targets(batch), _mask([3, 1]))
    expected = torch.nn.functional.cross_entropy(
        torch.stack([logits[0, 0], logits[0, 1], logits[1, 0]]), torch.tensor([1, 2, 0])
    )
    assert torch.isfinite(loss) and loss.item() == pytest.approx(expected.item())


def test_decode_has_each_sentence_length_and_ignores_padding() -> None:
    task = _task()
    logits = torch.full((3, 4, len(task.tags)), -1.0)
    logits[..., 2] = 5.0  # everything, padding included, argmaxes to NN
    preds = task.decode(logits, _mask([4, 1, 2]), final=True)
    assert preds == [["NN"] * 4, ["NN"], ["NN"] * 2]


def test_metric_counts_every_token_including_punctuation() -> None:
    metric = PosMetric()
    gold = [_sent(["Hi", "!"], ["UH", "."]), _sent(["Go", "now", "."], ["VB", "RB", "."])]
    metric.update([["UH", ","], ["VB", "RB", "."]], gold)
    assert metric.compute() == {"acc": pytest.approx(4 / 5)}
    with pytest.raises(ValueError):
        metric.update([["UH"]], gold[:1])


def test_overfits_a_tiny_batch() -> None:
    torch.manual_seed(0)
    task = _task()
    decoder = task.build_decoder(16)
    lengths = [len(s.words) for s in TRAIN]
    hidden = torch.randn(len(TRAIN), max(lengths), 16)
    mask = _mask(lengths)
    first, last = overfit(task, decoder, hidden, mask, TRAIN, lr=0.05, steps=100)
    assert last < first / 10
    metric = task.new_metric()
    with torch.no_grad():
        metric.update(task.decode(decoder(hidden, mask), mask, final=True), TRAIN)
    assert metric.compute()["acc"] == 1.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_runs_on_the_hidden_device() -> None:
    task = _task()
    decoder = task.build_decoder(8).cuda()
    mask = _mask([len(s.words) for s in TRAIN]).cuda()
    out = decoder(torch.randn(3, mask.shape[1], 8, device="cuda"), mask)
    loss = task.loss(out, task.targets(TRAIN), mask)
    assert loss.device.type == "cuda" and torch.isfinite(loss)
    assert [len(p) for p in task.decode(out, mask, final=True)] == [len(s.words) for s in TRAIN]
