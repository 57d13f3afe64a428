"""A non-editable install (``pip install .`` into a fresh venv) runs ``mtlheads`` from another folder."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest
from conftest import cli_env

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_non_editable_install_ships_the_configs_and_runs_from_another_folder(tmp_path, tiny_bert_dir):
    # The project's own files only (git's list), so the build sees what a clean clone holds.
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    src = tmp_path / "src_copy"
    for rel in files.splitlines():
        if (ROOT / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, src / rel)
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(env_dir), "platbase": str(env_dir)}))
    # The dependencies come from this environment (no downloads); mtlheads itself is installed anew.
    (site / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    python = env_dir / "bin" / "python"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            site,
            src,
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    shutil.rmtree(src)  # nothing may still read the source tree
    where = subprocess.run(
        [python, "-c", "import mtlheads.launch.resolvers as r; print(r.CONF_DIR)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(site) and (Path(where) / "config.yaml").is_file()

    out = tmp_path / "run"
    args = ["mode=stl", "taskset=pos", f"encoder.name={tiny_bert_dir}", "trainer=smoke", "logger=none"]
    proc = subprocess.run(
        [python, "-m", "mtlheads.cli", *args, f"out_dir={out}"],
        cwd=tmp_path,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["tasks"] == ["pos"] and 0 <= metrics["test"]["pos"]["acc"] <= 1
