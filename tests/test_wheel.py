"""A non-editable install works: the wheel carries the config schema and the published figures.

The wheel is built from a copy of the sources (nothing is written into the checkout) and installed,
without its dependencies, into a fresh venv that borrows this environment's site-packages through a
``.pth`` file, so the test needs no network and no second copy of torch.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_wheel_installs_and_validates_a_config(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    for package in ("ddpnas", "baselines"):
        shutil.copytree(REPO / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PIP_NO_INDEX"] = "1"  # offline: everything needed is already here
    built = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path / "dist"),
            str(src),
        ],
        tmp_path,
        env,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("ddpnas-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        (meta,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        description = archive.read(meta).decode().split("\n\n", 1)[1]
    # a short long-description: what it is, install, the README link; not the whole README
    assert len(description) < 2000 and "[README](README.md)" in description
    assert "make run" in description and "results:start" not in description

    target = tmp_path / "venv"
    venv.create(target, with_pip=False)
    (new_site,) = target.glob("lib/python*/site-packages")
    # Dependencies come from this environment, appended after the venv's own site-packages.
    (new_site / "borrowed.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    installed = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(target / "bin" / "python"),
            "install",
            "--no-deps",
            str(wheel),
        ],
        tmp_path,
        env,
    )
    assert installed.returncode == 0, installed.stderr

    ddpnas = str(target / "bin" / "ddpnas")
    where = _run(
        [str(target / "bin" / "python"), "-c", "import ddpnas; print(ddpnas.__file__)"],
        tmp_path,
        env,
    )
    assert where.stdout.startswith(str(new_site)), where.stdout + where.stderr
    helped = _run([ddpnas, "--help"], tmp_path, env)
    assert helped.returncode == 0 and "search" in helped.stdout, helped.stderr

    python = str(target / "bin" / "python")
    good = _run(
        [
            python,
            "-c",
            "import sys; from ddpnas.config.load import load_config; "
            "print(sorted(load_config(sys.argv[1])['searches']))",
            str(REPO / "config/ci.yaml"),
        ],
        tmp_path,
        env,
    )
    assert good.returncode == 0 and "nb201-ddpnas-tabular" in good.stdout, good.stderr

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "searches: {x: {space: nb201, strategy: ddpnas, mode: tabular, seeds: [0]}}\nthread: 2\n"
    )
    rejected = _run(
        [
            ddpnas,
            "search",
            "--config",
            str(bad),
            "--experiment",
            "x",
            "--seed",
            "0",
            "--out",
            str(tmp_path / "r.json"),
        ],
        tmp_path,
        env,
    )
    assert rejected.returncode == 2, rejected.stderr
    assert "thread" in rejected.stderr and "Traceback" not in rejected.stderr
    assert not (tmp_path / "r.json").exists()
