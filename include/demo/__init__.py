"""The demo programme: Better Work Pakistan's sources, generated deterministically for a seed.

:func:`generate` writes the assessment export files (docs/SOURCES.md) into
``<landing_dir>/assessments/``, the survey waves (docs/SURVEYS.md) into ``<landing_dir>/surveys/``
and the case-management database (docs/SOURCES.md) at ``ops_url``.
Scale 1 is the programme as reported in 2025 (121 factories, 19 brands, 184 assessments,
1,200 advisory visits, 500 training sessions, over 6,000 trainees); scale ``n`` multiplies it.
Distributions, quirks and their sources: docs/DEMO_DATA.md.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

MANIFEST = ".demo-manifest.json"  # hidden: the extractor does not take it for an export


def _existing_exports(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith((".", "~")))


def _write_exports(folder: Path, plan, only_if_empty: bool) -> dict:
    from include.demo import exports
    from include.demo.ops import VERSION

    folder.mkdir(parents=True, exist_ok=True)
    present = _existing_exports(folder)
    if only_if_empty and present:
        return {"skipped": f"{folder} already holds {len(present)} file(s)"}
    files = exports.exports(plan)
    wanted = {e.name for e in files}
    manifest_path = folder / MANIFEST
    key = {"seed": plan.seed, "scale": plan.scale, "version": VERSION}
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        manifest = {}
    sizes = manifest.get("files", {})
    if (
        manifest.get("key") == key
        and set(sizes) == wanted
        and all((folder / n).is_file() and (folder / n).stat().st_size == s for n, s in sizes.items())
    ):
        return {"skipped": f"{folder} already holds this demo programme's exports", "files": sorted(wanted)}
    # Exports of an earlier demo programme would mix with this one's: remove them (ours only).
    for stale in manifest.get("files", {}):
        if stale not in wanted and (folder / stale).is_file():
            (folder / stale).unlink()
    rows = {e.name: exports.write_file(plan.seed, e, folder) for e in files}
    manifest_path.write_text(
        json.dumps({"key": key, "files": {n: (folder / n).stat().st_size for n in sorted(wanted)}}, indent=1)
    )
    return {"files": sorted(rows), "rows": sum(rows.values())}


def _write_surveys(folder: Path, plan, only_if_empty: bool) -> dict:
    """The survey waves' files (include/demo/surveys.py), with the same manifest rule as the exports."""
    from include.demo import surveys
    from include.demo.ops import VERSION

    folder.mkdir(parents=True, exist_ok=True)
    present = _existing_exports(folder)
    if only_if_empty and present:
        return {"skipped": f"{folder} already holds {len(present)} file(s)"}
    files = surveys.survey_files(plan)
    wanted = {f.name for f in files}
    manifest_path = folder / MANIFEST
    key = {"seed": plan.seed, "scale": plan.scale, "version": VERSION, "surveys": surveys.VERSION}
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        manifest = {}
    sizes = manifest.get("files", {})
    if (
        manifest.get("key") == key
        and set(sizes) == wanted
        and all((folder / n).is_file() and (folder / n).stat().st_size == s for n, s in sizes.items())
    ):
        return {
            "skipped": f"{folder} already holds this demo programme's survey files",
            "files": sorted(wanted),
        }
    for stale in sizes:
        if stale not in wanted and (folder / stale).is_file():
            (folder / stale).unlink()
    rows = {f.name: surveys.write_file(f, folder) for f in files}
    manifest_path.write_text(
        json.dumps({"key": key, "files": {n: (folder / n).stat().st_size for n in sorted(wanted)}}, indent=1)
    )
    return {"files": sorted(rows), "rows": sum(rows.values())}


def generate(
    landing_dir: Path, ops_url: str, scale: int = 1, seed: int = 2025, *, only_if_empty: bool = True
) -> dict:
    """Write demo sources; with only_if_empty, the landing zone's assessments/ is written only if it has
    no files, and the ops DB only if its tables are missing or empty. Returns a summary dict (files
    written, rows per table) for logging.

    Without ``only_if_empty``, a second run with the same seed and scale changes nothing (same file
    names and bytes, same rows); another seed or scale replaces the earlier demo programme.
    """
    from include.demo import ops, plan

    started = time.monotonic()
    programme = plan.build(seed, scale)
    files = _write_exports(Path(landing_dir) / "assessments", programme, only_if_empty)
    survey_files = _write_surveys(Path(landing_dir) / "surveys", programme, only_if_empty)
    database = ops.load(ops_url, programme, only_if_empty)
    return {
        "seed": seed,
        "scale": scale,
        "assessment_exports": files,
        "survey_waves": survey_files,
        "case_management": database,
        "seconds": round(time.monotonic() - started, 1),
    }
