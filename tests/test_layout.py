"""docs/layout.md is the package tree: every module is named there, so a new module without a
place in the tree (or a renamed one) fails here. The README and docs/ are checked for what goes
stale silently: links to files or headings that moved, paths of modules that were renamed, and
the README's size."""

from __future__ import annotations

import re

from conftest import REPO


def _layout() -> str:
    text = (REPO / "docs" / "layout.md").read_text()
    match = re.search(r"```\n(.*?)```", text, flags=re.DOTALL)
    assert match, "docs/layout.md lost its tree"
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
    assert not missing, f"modules missing from docs/layout.md: {missing}"
    packages = {p.parent.name for p in (REPO / "ddpnas").rglob("__init__.py")}
    assert not sorted(packages - words), "subpackages missing from docs/layout.md"


DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# A path in backticks or a link that names a file of the repository (placeholders aside).
REPO_PATH = re.compile(
    r"(?<![\w/.-])((?:ddpnas|baselines|benchmarks|tests|workflow|config|docs|requirements|\.ci)"
    r"/[\w./-]*\w)"
)


def _anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path) -> set[str]:
    return {_anchor(h) for h in re.findall(r"^#+ (.+)$", path.read_text(), flags=re.M)}


def test_readme_is_short_and_has_no_overlong_line() -> None:
    text = (REPO / "README.md").read_bytes()
    assert len(text) <= 30_000, f"README.md is {len(text):,} bytes; move detail to docs/"
    for doc in DOCS:
        long = [n for n, line in enumerate(doc.read_text().splitlines(), 1) if len(line) > 1000]
        assert not long, f"{doc.name}: lines over 1,000 characters: {long}"


def test_links_in_readme_and_docs_resolve() -> None:
    """Relative links point at files that exist, and an anchor at a heading of that file."""
    broken = []
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
            if re.match(r"[a-z]+:", target):
                continue  # http(s), mailto
            file, _, anchor = target.partition("#")
            path = (doc.parent / file).resolve() if file else doc
            if not path.exists():
                broken.append(f"{doc.name}: {target}")
            elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
                broken.append(f"{doc.name}: {target} (no such heading)")
    assert not broken, broken


def test_repository_paths_named_in_readme_and_docs_exist() -> None:
    """A renamed module or script leaves its old path in the text: every repository path the
    README and docs/ name must exist (results/ and <placeholders> are not checked)."""
    missing = []
    for doc in DOCS:
        for path in REPO_PATH.findall(doc.read_text()):
            if "<" in path or "*" in path or "{" in path:
                continue
            if not (REPO / path).exists():
                missing.append(f"{doc.name}: {path}")
    assert not missing, missing
