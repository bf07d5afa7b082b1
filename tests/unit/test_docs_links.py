"""The repository stands alone: no file refers to a document or path outside it, no link is broken.

- Every Markdown link (``[text](target)``, images too) that is not a URL resolves to a file or
  folder of the repository, and its ``#anchor``, when the target is Markdown, to one of its headings.
- No scanned file names a path that climbs out of the repository, a folder of the machine the
  project was written on, or an upper-case Markdown document (``SOMETHING.md``) the repository does
  not hold.
- A path written as ``docs/…``, ``include/…``, ``dags/…`` (any top-level folder of the repository)
  exists: a file moved or renamed leaves no stale mention behind.
- Every ``make <target>`` and ``bw <command>`` the docs name exists, and ``make help`` advertises
  only targets the Makefile has.
- docs/INTERNALS.md maps every Python module of ``include/``, ``dags/`` and ``benchmarks/``.
- DAG files (their docstring is the ``doc_md`` the Airflow UI shows), Markdown, the dbt project and
  the expectation suites write no relative path (``../…``) that leads out of the repository, and
  cite no numbered section of a document (``§2``, ``section 2``): the rules they rely on are written
  in this repository's own docs.
"""

from __future__ import annotations

import re
import subprocess
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SKIP_DIRS = {
    ".git", ".venv", ".tools", ".airflow", ".pgdata", ".secrets", ".pytest_cache", ".ruff_cache",
    "__pycache__", "node_modules", "data", "target", "dbt_packages", "logs", "vendor",
}  # fmt: skip
TEXT_SUFFIXES = {".md", ".py", ".yml", ".yaml", ".sql", ".json", ".j2", ".toml", ".cfg", ".txt", ".csv"}
TEXT_NAMES = {"Makefile", "Dockerfile", ".env.example"}
THIS = Path(__file__).resolve()


def _scanned() -> list[Path]:
    found = []

    def walk(folder: Path) -> None:
        for path in sorted(folder.iterdir()):
            if path.is_dir():
                if path.name not in SKIP_DIRS and not path.is_symlink():
                    walk(path)
            elif (path.suffix in TEXT_SUFFIXES or path.name in TEXT_NAMES) and path != THIS:
                # data files of the tests (export fixtures) are inputs, not prose
                if path.suffix == ".csv" or path.stat().st_size > 2_000_000:
                    continue
                found.append(path)

    walk(ROOT)
    return found


FILES = _scanned()
MARKDOWN = [p for p in FILES if p.suffix == ".md"]
# Files whose words are documentation or shown as documentation (Airflow's doc_md, dbt docs, GX notes).
PROSE = [
    p
    for p in FILES
    if p.suffix == ".md"
    or p.parent == ROOT / "dags"
    or ROOT / "dbt_project" in p.parents
    or p.parent == ROOT / "expectations"
    or ROOT / "include" in p.parents
    or ROOT / "tests" / "fixtures" in p.parents
]
TOP_FOLDERS = sorted(p.name for p in ROOT.iterdir() if p.is_dir() and p.name not in SKIP_DIRS)
MARKDOWN_NAMES = {p.name for p in MARKDOWN}


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def _strip_code(markdown: str) -> str:
    """Markdown without fenced blocks and inline code: a link inside code is an example, not a link."""
    markdown = re.sub(r"^(```|~~~).*?^\1", "", markdown, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", markdown)


LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)", re.M)


def _links(markdown: str) -> list[str]:
    body = _strip_code(markdown)
    return LINK.findall(body) + REFERENCE.findall(body)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = text.replace("`", "").replace("*", "").strip().lower()
    kept = "".join(
        ch for ch in text if ch in " -_" or unicodedata.category(ch)[0] in ("L", "N")
    )  # letters, digits, spaces, hyphens, underscores
    return kept.replace(" ", "-")


def _anchors(markdown: str) -> set[str]:
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    body = re.sub(r"^(```|~~~).*?^\1", "", markdown, flags=re.S | re.M)
    for match in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", body, re.M):
        slug = _slug(match.group(1))
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.add(slug if n == 0 else f"{slug}-{n}")
    anchors |= set(re.findall(r"<a\s+(?:name|id)=\"([^\"]+)\"", markdown))
    return anchors


def _is_url(target: str) -> bool:
    return bool(re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I))  # http:, https:, mailto:, file:


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    """Every relative link of a Markdown file that does not resolve inside the repository."""
    problems = []
    text = _text(path)
    for target in _links(text):
        if _is_url(target):
            if target.lower().startswith("file:"):
                problems.append(f"{target}: a file: URL points outside the repository")
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        if root != resolved and root not in resolved.parents:
            problems.append(f"{target}: outside the repository")
        elif not resolved.exists():
            problems.append(f"{target}: no such file in the repository")
        elif anchor and resolved.suffix == ".md" and anchor.lower() not in _anchors(_text(resolved)):
            problems.append(f"{target}: no heading #{anchor} in {resolved.name}")
    return problems


# `../name` in a file: a path relative to that file, which must exist in the repository (a folder
# beside the repository, read where the project was written, does not exist in a clone)
RELATIVE = re.compile(r"(?<![\w./])((?:\.\./)+[\w][\w.-]*)")
UPPER_MD = re.compile(r"(?<![\w/.-])([A-Z][A-Z0-9_]*\.md)\b")
_FOLDERS = "|".join(map(re.escape, TOP_FOLDERS))
# a path, not a pattern such as expectations/cm_<table>.json
REPO_PATH = re.compile(r"(?<![\w/.-])((?:" + _FOLDERS + r")/[\w./-]*\w)(?![\w<*{])")
GENERATED = ("dbt_project/target", "dbt_project/logs", "dbt_project/dbt_packages")
SECTION = re.compile(r"§\s*\d|\bsection\s+\d", re.I)


def outside_references(path: Path) -> list[str]:
    """Mentions of documents and paths that are not in the repository."""
    problems = []
    text = _text(path)
    # a site template's `../` links pages of the built site, not files of the repository
    for m in RELATIVE.finditer("" if path.suffix == ".j2" else text):
        target = (path.parent / m.group(1)).resolve()
        if not target.exists():
            problems.append(f"{m.group(1)!r}: no such path in the repository")
    for m in UPPER_MD.finditer(text):
        if m.group(1) not in MARKDOWN_NAMES:
            problems.append(f"{m.group(1)}: no such document in the repository")
    for m in REPO_PATH.finditer(text):
        mention = m.group(1).rstrip(".")
        if mention.startswith(GENERATED) or "/." in mention:
            continue
        module = mention.split(".")[0] + ".py"  # include/personal_data.mask_record: a name in a module
        if not (ROOT / mention).exists() and not (ROOT / module).exists():
            problems.append(f"{mention}: no such file or folder in the repository")
    return problems


CLIMB = re.compile(r"(?<![\w./])((?:\.\./)+)")


def climbs_out(path: Path, root: Path = ROOT) -> list[str]:
    """Relative paths (``../…``) in a doc that lead out of the repository from where the doc is."""
    problems = []
    for m in CLIMB.finditer(_text(path)):
        target = (path.parent / m.group(1)).resolve()
        if target != root and root not in target.parents:
            problems.append(f"{m.group(1)}: climbs out of the repository from {path.name}")
    return problems


def section_citations(path: Path) -> list[str]:
    """Numbered sections of a document the repository does not hold (``contract §2``)."""
    return [f"{m.group(0)!r}" for m in SECTION.finditer(_text(path))]


def test_the_scan_sees_the_repository():
    names = {_rel(p) for p in FILES}
    assert {"README.md", "docs/SOURCES.md", "docs/INTERNALS.md", "dags/transform.py"} <= names
    assert any(n.startswith("dbt_project/models/") and n.endswith(".yml") for n in names)
    assert not any(n.startswith((".venv/", "data/")) for n in names)


@pytest.mark.parametrize("path", MARKDOWN, ids=_rel)
def test_markdown_links_resolve_inside_the_repository(path):
    assert broken_links(path) == []


@pytest.mark.parametrize("path", FILES, ids=_rel)
def test_no_reference_outside_the_repository(path):
    assert outside_references(path) == []


@pytest.mark.parametrize("path", PROSE, ids=_rel)
def test_docs_cite_no_section_of_another_document(path):
    assert section_citations(path) == []


@pytest.mark.parametrize("path", PROSE, ids=_rel)
def test_no_doc_path_climbs_out_of_the_repository(path):
    assert climbs_out(path) == []


def test_the_module_map_is_complete():
    """Every module of include/, dags/ and benchmarks/ has its row in docs/INTERNALS.md."""
    internals = _text(ROOT / "docs" / "INTERNALS.md")
    modules = sorted(
        _rel(p)
        for folder in ("include", "dags", "benchmarks")
        for p in FILES
        if p.suffix == ".py" and _rel(p).startswith(folder + "/")
    )
    assert len(modules) > 30
    assert [m for m in modules if f"| `{m}` |" not in internals] == []


def _make_targets() -> set[str]:
    return set(re.findall(r"^([A-Za-z][\w-]*)\s*:(?!=)", _text(ROOT / "Makefile"), re.M))


def test_make_help_advertises_only_targets_that_exist():
    shown = subprocess.run(
        ["make", "--no-print-directory", "-s", "help"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    advertised = set()
    for line in shown.splitlines():
        line = line.strip()
        if line.startswith("make "):
            advertised.add(line.split()[1])
        elif line.startswith("Also:"):
            advertised |= {
                item.split()[-1] if "make" in item else item.split()[0] for item in line[5:].split("|")
            }
    assert {"run", "test", "bench-load", "lint"} <= advertised
    assert advertised - _make_targets() == set()


def test_docs_name_only_make_targets_and_bw_commands_that_exist():
    commands = set(re.findall(r"add_parser\(\s*\"([\w-]+)\"", _text(ROOT / "include" / "cli.py")))
    targets = _make_targets()
    assert {"run", "airflow"} <= commands and {"run", "airflow"} <= targets
    unknown = []
    for path in PROSE:
        text = _text(path)
        unknown += [
            f"{_rel(path)}: make {t}" for t in re.findall(r"`make ([a-z][\w-]*)", text) if t not in targets
        ]
        unknown += [
            f"{_rel(path)}: bw {c}"
            for c in re.findall(r"`(?:\.venv/bin/)?bw ([a-z][\w-]*)", text)
            if c not in commands
        ]
    assert unknown == []


def test_the_checks_catch_what_they_are_for(tmp_path):
    """Each check fails on a planted example, so that a green run means something."""
    assert _links("[a](SOURCES.md#x), `[b](c.md)`, ![i](img/a.png)\n```\n[d](e.md)\n```\n") == [
        "SOURCES.md#x",
        "img/a.png",
    ]
    assert (
        _slug("Airflow as on the team server (`make airflow`)")
        == "airflow-as-on-the-team-server-make-airflow"
    )
    repo = tmp_path / "repo"
    (repo / "docs").mkdir(parents=True)
    (repo / "docs" / "SOURCES.md").write_text("# Sources\n\n## Assessment exports (files)\n")
    planted = repo / "docs" / "planted.md"
    planted.write_text(
        "[ok](SOURCES.md) [gone](NOPE.md) [up](../../outside.md) [anchor](SOURCES.md#no-such)\n"
        "[good anchor](SOURCES.md#assessment-exports-files) [url](https://example.org) [f](file:///etc)\n"
    )
    assert [p.split(":")[0] for p in broken_links(planted, root=repo)] == [
        "NOPE.md",
        "../../outside.md",
        "SOURCES.md#no-such",
        "file",
    ]
    planted.write_text("Rules: ../elsewhere/x, DATA" + "_CONTRACT.md, include/bench_load.py; docs/SOURCES.md")
    found = outside_references(planted)
    assert len(found) == 3 and "include/bench_load.py" in found[2], found
    planted.write_text("See ../../design/rules.md, and ../SOURCES.md.")
    assert [p.split(":")[0] for p in climbs_out(planted, root=repo)] == ["../../"]
    planted.write_text("As the contract says (\u00a7" + "3), and in section 4.")
    assert len(section_citations(planted)) == 2
