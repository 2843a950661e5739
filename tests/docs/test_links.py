"""Every relative link in README.md and docs/*.md leads somewhere: the file exists in the
repository, and its `#anchor` is a heading of that file. Links out of the repository (a
`../shared` contract, say) are refused: the repository documents itself."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

import pytest

from tests.docs.markdown import DOCUMENTS, ROOT, anchors, headings, links, section, slug


def _relative(target: str) -> bool:
    return "://" not in target and not target.startswith("mailto:")


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(document: Path) -> None:
    text = document.read_text()
    broken = []
    for line, target in links(text):
        if not _relative(target):
            continue
        path_part, _, anchor = target.partition("#")
        file = (document.parent / unquote(path_part)).resolve() if path_part else document
        if not file.is_relative_to(ROOT):
            broken.append(f"line {line}: {target} leads out of the repository")
            continue
        if not file.exists():
            broken.append(f"line {line}: {target}: no such file")
            continue
        if anchor and (file.suffix != ".md" or anchor not in anchors(file.read_text())):
            broken.append(f"line {line}: {target}: no heading #{anchor} in {file.relative_to(ROOT)}")
    assert not broken, f"{document.relative_to(ROOT)}:\n" + "\n".join(broken)


def test_docs_are_linked_from_the_readme() -> None:
    """Every page in docs/ can be found from the README."""
    readme = (ROOT / "README.md").read_text()
    linked = {target.partition("#")[0] for _, target in links(readme)}
    missing = [p.name for p in DOCUMENTS[1:] if f"docs/{p.name}" not in linked]
    assert not missing, f"docs not linked from README.md: {missing}"


@pytest.mark.parametrize("document", DOCUMENTS[1:], ids=lambda p: p.name)
def test_each_doc_has_a_table_of_contents(document: Path) -> None:
    """A page's sections are listed at its top: every `##` heading has a link to its anchor
    before the first section starts."""
    text = document.read_text()
    top = text.split("\n## ", 1)[0]
    listed = {target for _, target in links(top)}
    sections = [title for level, title in headings(text) if level == 2]
    assert sections, f"{document.name} has no sections"
    missing = [title for title in sections if f"#{slug(title)}" not in listed]
    assert not missing, f"{document.name}: sections missing from its table of contents: {missing}"


def test_the_readme_lists_its_sections() -> None:
    """The README's "Contents" links every other `##` section of the README."""
    readme = (ROOT / "README.md").read_text()
    listed = {target for _, target in links(section(readme, "Contents"))}
    sections = [title for level, title in headings(readme) if level == 2 and title != "Contents"]
    missing = [title for title in sections if f"#{slug(title)}" not in listed]
    assert not missing, f"README.md: sections missing from its Contents: {missing}"
