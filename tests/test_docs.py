"""The README is a front door (short, the two commands first) and every documentation link lands."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# Pages another branch is adding (issue 24's results page, the mutation-testing page): linked already.
PENDING = {REPO / "docs/results.md", REPO / "docs/mutation.md"}
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_readme_is_short_and_opens_with_the_two_commands():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    first_block = re.search(r"```bash\n(.*?)```", text, re.S).group(1).strip().splitlines()
    assert first_block == ['pip install torch==2.13.0 -e ".[test]" && snakemake --cores 2', "python -m pytest"]
    assert text.index("```bash") < 1500  # near the top
    assert "\npython -m pytest\n" in (REPO / ".ci/run").read_text()  # CI runs the README's test command


def _anchors(page: Path) -> set[str]:
    headings = re.findall(r"^#+ (.+)$", page.read_text(), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_every_link_to_a_page_of_this_repository_lands():
    broken = []
    for page in PAGES:
        for target in LINK.findall(page.read_text()):
            if re.match(r"[a-z]+:", target):
                continue  # a URL
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if file in PENDING:
                continue
            if not file.exists() or (anchor and file.suffix == ".md" and anchor not in _anchors(file)):
                broken.append(f"{page.relative_to(REPO)}: {target}")
    assert broken == []


def test_every_docs_page_is_linked_from_the_index():
    index = (REPO / "docs/README.md").read_text()
    assert {p.name for p in PAGES[1:] if p.name != "README.md"} | {p.name for p in PENDING} <= set(LINK.findall(index))
