"""Worker and manager survey waves (docs/SURVEYS.md): the two instruments, their columns, file names.

The survey tool exports one file per instrument and wave into ``$LANDING_DIR/surveys/``, named
``<instrument>_wave<n>_<YYYY-MM-DD>[anything].csv|.xlsx`` (e.g. ``worker_wave3_2025-02-14.csv``).
Columns are the tool's ``group/question`` names. Which name a question has in which form version
is the dbt seed ``survey_question_crosswalk`` (form version × source name → canonical question):
this module reads the same file, so the loader keeps every name any version uses and dbt maps
them; a new form version is a new block of seed rows (and, for a new source name, a new raw
column).

Nothing here touches the database or imports Airflow.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from include.config import PROJECT_DIR

SOURCE = "survey_files"
"""``audit.load_batches.source`` of a survey file's batch."""

FOLDER = "surveys"
"""The landing sub-folder: ``$LANDING_DIR/surveys/``."""

INSTRUMENTS = ("worker", "manager")

CORE_COLUMNS = ("_uuid", "_submission_time", "_form_version", "wave", "factory_id", "consent")
"""Both instruments: submission id, time (ISO 8601, UTC), form version, wave, factory, consent."""

PERSONAL = {"worker": ("respondent/name", "respondent/phone"), "manager": ()}
"""Personal columns: kept in ``raw`` (restricted) only; never in the crosswalk, so never staged."""

CROSSWALK = PROJECT_DIR / "dbt_project" / "seeds" / "survey_question_crosswalk.csv"

_NAME = re.compile(r"^(?P<instrument>[a-z]+)_wave(?P<wave>[0-9]+)_(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})", re.I)


@cache
def crosswalk() -> tuple[tuple[str, str, str, str], ...]:
    """The seed's rows: (instrument, form_version, source_name, question)."""
    with CROSSWALK.open(newline="", encoding="utf-8") as f:
        return tuple(
            (r["instrument"], r["form_version"], r["source_name"], r["question"]) for r in csv.DictReader(f)
        )


def form_versions(instrument: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for i, v, _, _ in crosswalk() if i == instrument))


def source_names(instrument: str) -> tuple[str, ...]:
    """Every question name any form version of the instrument uses (seed order)."""
    return tuple(dict.fromkeys(s for i, _, s, _ in crosswalk() if i == instrument))


def raw_columns(instrument: str) -> tuple[str, ...]:
    """The columns of ``raw.survey_<instrument>_rows`` (besides lineage), in table order."""
    return (*CORE_COLUMNS, *PERSONAL[instrument], *source_names(instrument))


def required_columns(instrument: str) -> tuple[str, ...]:
    """What a file's header must have: the core columns and the questions every version names alike.

    A question renamed between versions (``concerns/verbal`` → ``concerns/verbal_abuse``) is looked
    for under each of its names; a file may have either (or both, for a wave answered on two versions).
    """
    versions = form_versions(instrument)
    everywhere = [
        s
        for s in source_names(instrument)
        if all((instrument, v, s) in {(i, fv, n) for i, fv, n, _ in crosswalk()} for v in versions)
    ]
    return (*CORE_COLUMNS, *PERSONAL[instrument], *everywhere)


def raw_table(instrument: str) -> str:
    return f"raw.survey_{instrument}_rows"


def entity(instrument: str) -> str:
    """The GX suite (``expectations/<entity>.json``) and the personal-data entity of an instrument."""
    return f"survey_{instrument}_rows"


@dataclass(frozen=True)
class SurveyFile:
    instrument: str
    wave: int
    exported: str  # YYYY-MM-DD from the name


class BadName(ValueError):
    """A file name that does not say the instrument and wave."""


def parse_name(path: Path | str) -> SurveyFile:
    """``worker_wave3_2025-02-14.csv`` → (worker, 3, 2025-02-14); raises :class:`BadName`."""
    name = Path(path).name
    match = _NAME.match(name)
    if not match or match["instrument"].lower() not in INSTRUMENTS:
        raise BadName(
            "the file name does not say the instrument and wave: expected "
            f"<{'|'.join(INSTRUMENTS)}>_wave<n>_<YYYY-MM-DD>.csv or .xlsx "
            "(e.g. worker_wave3_2025-02-14.csv); rename the file and drop it in the folder again"
        )
    return SurveyFile(match["instrument"].lower(), int(match["wave"]), match["date"])


def column_spec(instrument: str):
    """The :class:`include.extract.columns.ColumnSpec` of an instrument's files."""
    from include.extract.columns import ColumnSpec

    return ColumnSpec(raw_columns(instrument), required_columns(instrument), f"{instrument} survey export")
