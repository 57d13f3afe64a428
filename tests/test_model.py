"""The LightningModule's optimisation set-up: parameter groups, learning rates, warm-up and decay."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertModel

from mtlheads.encoder.word_encoder import WordEncoder
from mtlheads.model import MultiTaskModel, OptimConfig
from mtlheads.tasks.pos import PosTask
from mtlheads.training.balancer import MovingAverageBalancer


@pytest.fixture
def model(minilm_dir):
    torch.manual_seed(0)
    bert = BertModel(
        BertConfig(
            vocab_size=30522, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
        )
    )
    tok = AutoTokenizer.from_pretrained(minilm_dir)
    encoder = WordEncoder.from_tokenizer(model=bert, tokenizer=tok)
    task = PosTask()
    task.fit_vocab([SimpleNamespace(pos=["NN", "VB"], words=["a", "b"])])
    m = MultiTaskModel(
        encoder=encoder,
        tasks={"pos": task},
        optim=OptimConfig(encoder_lr=1e-4, decoder_lr=1e-2, weight_decay=0.1, warmup=0.1),
        balancer=MovingAverageBalancer(window=5),
    )
    m._trainer = SimpleNamespace(estimated_stepping_batches=100)  # what Lightning computes from the loaders
    return m


def test_groups_learning_rates_and_no_decay_for_biases_and_norms(model):
    opt = model.configure_optimizers()["optimizer"]
    by_id = {id(p): g for g in opt.param_groups for p in g["params"]}
    for name, p in model.encoder.named_parameters():
        g = by_id[id(p)]
        assert g["initial_lr"] == 1e-4
        assert g["weight_decay"] == (0.0 if p.ndim < 2 or "norm" in name.lower() else 0.1)
    for p in model.decoders.parameters():
        assert by_id[id(p)]["initial_lr"] == 1e-2
    n_params = sum(len(g["params"]) for g in opt.param_groups)
    assert n_params == len(list(model.parameters()))


def test_linear_warmup_for_ten_percent_then_linear_decay_to_zero(model):
    conf = model.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    assert conf["lr_scheduler"]["interval"] == "step"
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == 0.0
    assert lrs[5] == pytest.approx(1e-4 * 5 / 10)
    assert lrs[10] == pytest.approx(1e-4)
    assert lrs[55] == pytest.approx(1e-4 * 45 / 90)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0)


def test_checkpoint_carries_vocab_config_and_balancer(model):
    from mtlheads.checkpoint import stamp

    stamp(model, {"seed": 3})
    model.balancer("pos", torch.tensor(2.0))
    ckpt: dict = {}
    model.on_save_checkpoint(ckpt)
    assert ckpt["mtlheads_config"] == {"seed": 3}
    assert ckpt["mtlheads_vocab"]["pos"] == model.tasks["pos"].vocab_state()
    assert ckpt["mtlheads_balancer"] == {"pos": [2.0]}
