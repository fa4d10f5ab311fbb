"""The README's Layout section is the package tree: every module is named there, so a new module
without a place in the tree (or a renamed one) fails here."""

from __future__ import annotations

import re

from conftest import REPO


def _layout() -> str:
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Layout") :]
    match = re.search(r"```\n(.*?)```", section, flags=re.DOTALL)
    assert match, "README's Layout section lost its tree"
    return match.group(1)


def test_layout_names_every_module() -> None:
    words = set(re.findall(r"[A-Za-z_][\w]*", _layout()))
    modules = [
        path
        for folder in ("ddpnas", "baselines", "benchmarks")
        for path in (REPO / folder).rglob("*.py")
        if path.stem not in ("__init__", "_version")
    ]
    missing = sorted(str(p.relative_to(REPO)) for p in modules if p.stem not in words)
    assert not missing, f"modules missing from the README's Layout: {missing}"
    packages = {p.parent.name for p in (REPO / "ddpnas").rglob("__init__.py")}
    assert not sorted(packages - words), "subpackages missing from the README's Layout"
