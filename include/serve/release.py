"""Research releases: the ``research`` schema as a versioned folder for academic partners.

A release holds every research table as Parquet and CSV, ``data_dictionary.csv`` / ``.json``
(every column's type and description, read from the database comments that dbt persists),
``codebook.csv`` (the coded values and their meaning), ``README.md`` (contents, counting rules,
suppression, pseudonyms, how to reproduce ``cp_noncompliance_rate``) and ``MANIFEST.sha256``.

It reads as role ``researcher``: a release can only hold what researchers may see. Tables are
streamed with a server-side cursor and written batch by batch, so memory does not grow with them.
The folder is ``RELEASE_DIR/<YYYY-MM-DD>-<content hash>``: publishing unchanged data again finds
the release with that hash and writes nothing.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import logging
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from include import db
from include.config import Settings, settings

log = logging.getLogger(__name__)

SCHEMA = "research"
BATCH_ROWS = 50_000

CODED_COLUMNS = {
    "province",
    "sector",
    "size_band",
    "female_share_band",
    "quasi_identifiers_withheld",
    "panel",
    "cluster",
    "compliance_point",
    "suppression_reason",
    "gender",
    "role",
    "course_code",
}
"""Columns whose values are codes: the codebook lists each value found in the release."""

# Fixed meanings of codes the platform itself defines. Codes the sources define (course codes)
# take their meaning from the warehouse at release time: see course_titles().
MEANINGS = {
    ("panel", "all"): "every factory with a counted assessment in the cycle",
    ("gender", "female"): "woman (old records' F)",
    ("gender", "male"): "man (old records' M)",
    ("gender", "other"): "other gender",
    ("role", "worker"): "worker",
    ("role", "line_supervisor"): "line supervisor",
    ("role", "manager"): "manager",
    ("role", "hr"): "human resources staff",
    ("role", "union_rep"): "trade union representative",
    ("role", "picc_member"): "member of the Performance Improvement Consultative Committee",
    ("suppression_reason", "primary"): "built from fewer than k factories",
    ("suppression_reason", "complementary"): "would reveal a suppressed cell or a group of fewer than "
    "k factories by difference with a published cell",
    ("size_band", "unknown"): "number of workers not recorded",
    ("female_share_band", "unknown"): "share of women not recorded",
    ("province", "unknown"): "factory not in the programme's registry (seen only in assessment exports)",
    ("sector", "unknown"): "factory not in the programme's registry",
}


def course_titles(url: str) -> dict[tuple[str, str], str]:
    """Each course code's title, as the case-management course catalogue gives it. Read from the
    marts as role ``transformer`` (the pipeline's role that built them): a title is not research
    data, so ``researcher`` cannot read it, and the pipeline login is not a member of ``analyst``."""
    with db.connect(url, role="transformer") as conn:
        rows = conn.execute(
            "select distinct course_code, course_title from marts.fct_training_session "
            "where course_title is not null"
        ).fetchall()
    return {("course_code", code): title for code, title in rows}


def _meaning(column: str, value: str, meanings: dict[tuple[str, str], str] = MEANINGS) -> str:
    if (column, value) in meanings:
        return meanings[(column, value)]
    if column == "panel" and value.startswith("balanced_"):
        return f"only factories with a counted assessment in every cycle 1…{value.split('_')[1]}"
    if column == "size_band":
        return f"{value} workers"
    if column == "female_share_band":
        return f"{value} of the workers are women"
    if column == "quasi_identifiers_withheld":
        return f"the last {value} of province, sector, size_band, female_share_band, enrolment_year withheld"
    if column == "cluster":
        return "Better Work cluster of compliance points"
    if column == "compliance_point":
        return "Better Work compliance point (canonical name)"
    if column == "province":
        return "province of Pakistan"
    if column == "sector":
        return "industrial sector"
    return ""


@dataclass
class Column:
    name: str
    type: str
    description: str


@dataclass
class Table:
    name: str
    description: str
    columns: list[Column]
    rows: int = 0
    codes: dict[str, set[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Release:
    path: Path
    version: str
    created: bool  # False when an identical release existed already
    tables: dict[str, int]  # rows per table


# --------------------------------------------------------------------------- reading the schema


def describe(conn) -> list[Table]:
    """Research tables the connected role may read, with their columns' types and comments."""
    tables = conn.execute(
        """
        select c.relname, coalesce(obj_description(c.oid, 'pg_class'), '')
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = %s and c.relkind in ('r', 'v', 'm', 'p')
          and has_table_privilege(c.oid, 'select')
        order by c.relname
        """,
        (SCHEMA,),
    ).fetchall()
    out = []
    for name, description in tables:
        columns = conn.execute(
            """
            select a.attname, format_type(a.atttypid, a.atttypmod),
                   coalesce(col_description(a.attrelid, a.attnum), '')
            from pg_attribute a
            where a.attrelid = format('%%I.%%I', %s::text, %s::text)::regclass
              and a.attnum > 0 and not a.attisdropped
            order by a.attnum
            """,
            (SCHEMA, name),
        ).fetchall()
        out.append(Table(name, description.strip(), [Column(c, t, d.strip()) for c, t, d in columns]))
    return out


def _arrow_type(pg_type: str):
    import pyarrow as pa

    base = pg_type.split("(")[0]
    return {
        "integer": pa.int32(),
        "smallint": pa.int16(),
        "bigint": pa.int64(),
        "double precision": pa.float64(),
        "real": pa.float32(),
        "numeric": pa.float64(),
        "boolean": pa.bool_(),
        "date": pa.date32(),
        "timestamp with time zone": pa.timestamp("us", tz="UTC"),
        "timestamp without time zone": pa.timestamp("us"),
    }.get(base, pa.string())


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""A text cell starting with one of these is a formula (or a DDE payload) to a spreadsheet."""


def csv_text(text: str) -> str:
    """A text value made inert for spreadsheets: a leading ``'`` where it starts like a formula.

    Only text is escaped: numbers (``-3``, ``-0.5``) come from numeric columns and stay numbers, a
    negative number being no formula (the Parquet files hold every value unchanged).
    """
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _csv_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    return csv_text(str(value))


def export_table(conn, table: Table, folder: Path) -> None:
    """Stream one table into ``<name>.csv`` and ``<name>.parquet``, in a stable row order."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from psycopg import sql

    schema = pa.schema(
        [pa.field(c.name, _arrow_type(c.type)) for c in table.columns],
        metadata={"description": table.description},
    )
    coded = [i for i, c in enumerate(table.columns) if c.name in CODED_COLUMNS]
    table.codes = {table.columns[i].name: set() for i in coded}
    order = sql.SQL(", ").join(sql.Literal(i + 1) for i in range(len(table.columns)))
    query = sql.SQL("select * from {}.{} order by {}").format(
        sql.Identifier(SCHEMA), sql.Identifier(table.name), order
    )
    # Ordering by every column makes files byte-identical when the data are: the content hash
    # (and so the version) then depends on the data only.
    with (
        conn.transaction(),
        conn.cursor(name=f"release_{table.name}") as cur,
        open(folder / f"{table.name}.csv", "w", newline="", encoding="utf-8") as f,
        pq.ParquetWriter(folder / f"{table.name}.parquet", schema) as parquet,
    ):
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow([c.name for c in table.columns])
        cur.execute(query)
        while batch := cur.fetchmany(BATCH_ROWS):
            writer.writerows([_csv_value(v) for v in row] for row in batch)
            columns = list(zip(*batch, strict=True))
            parquet.write_table(
                pa.Table.from_arrays(
                    [
                        pa.array(values, type=field.type)
                        for values, field in zip(columns, schema, strict=True)
                    ],
                    schema=schema,
                )
            )
            for i in coded:
                table.codes[table.columns[i].name].update(str(r[i]) for r in batch if r[i] is not None)
            table.rows += len(batch)
        if table.rows == 0:
            parquet.write_table(schema.empty_table())


# --------------------------------------------------------------------------- the release files


def write_dictionary(tables: list[Table], folder: Path) -> None:
    with open(folder / "data_dictionary.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["table", "column", "position", "type", "description"])
        for t in tables:
            for i, c in enumerate(t.columns, start=1):
                writer.writerow([csv_text(v) for v in (t.name, c.name, str(i), c.type, c.description)])
    doc = {
        t.name: {
            "description": t.description,
            "rows": t.rows,
            "files": [f"{t.name}.parquet", f"{t.name}.csv"],
            "columns": [{"name": c.name, "type": c.type, "description": c.description} for c in t.columns],
        }
        for t in tables
    }
    (folder / "data_dictionary.json").write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


def write_codebook(tables: list[Table], folder: Path, source_meanings: dict | None = None) -> None:
    """codebook.csv: every code value found in the release with its meaning (``MEANINGS``, then
    ``source_meanings``: the sources' own codes such as course titles), and the survey scales."""
    meanings = {**MEANINGS, **(source_meanings or {})}
    values: dict[tuple[str, str], set[str]] = {}
    for t in tables:
        for column, found in t.codes.items():
            for v in found:
                values.setdefault((column, v), set()).add(t.name)
    with open(folder / "codebook.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["column", "value", "meaning", "tables"])
        for (column, value), in_tables in sorted(values.items()):
            row = [column, value, _meaning(column, value, meanings), " ".join(sorted(in_tables))]
            writer.writerow([csv_text(v) for v in row])
        # survey outcomes: each one's scale and meaning, in the tables that carry them
        for column, (scale, meaning) in SURVEY_SCALES.items():
            holders = [
                t.name
                for t in tables
                if any(c.name == column for c in t.columns)
                and (
                    t.name == SURVEY_TABLE or (t.name == "factory_cycle_panel" and column not in SURVEY_ONLY)
                )
            ]
            if holders:
                writer.writerow([csv_text(v) for v in (column, scale, meaning, " ".join(sorted(holders)))])


def content_hash(folder: Path) -> str:
    """sha256 over the data, dictionary and codebook files (names and bytes), in name order."""
    h = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if path.suffix == ".csv" or path.name == "data_dictionary.json":
            h.update(path.name.encode() + b"\0")
            with open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
    return h.hexdigest()


def disclosure_policy(k: int) -> dict:
    """The disclosure-control policy a release was made under (``release.json``, README)."""
    return {
        "policy": "betterwork-pk disclosure control v2 (docs/ACCESS.md)",
        "k": k,
        "quasi_identifiers": "declared per table in the dbt models' meta.disclosure",
        "coarsening": [
            "dates to years",
            "workers to size bands, share of women to quarter bands",
            "months since enrolment to 6-month bands",
        ],
        "microdata": "every published quasi-identifier combination shared by >= k factories (else withheld)",
        "aggregates": "cells of 1..k-1 units suppressed (primary), plus complementary suppression",
        "person_rows": "none: training participation published as suppressed aggregates only",
        "rounding": "none (OpenSAFELY's suppress <= 7 and round to 5 considered, not applied)",
        "csv": "text cells starting with = + - @ tab or CR prefixed with an apostrophe",
    }


def write_manifest(folder: Path) -> None:
    lines = []
    for path in sorted(p for p in folder.iterdir() if p.name != "MANIFEST.sha256"):
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        lines.append(f"{digest.hexdigest()}  {path.name}\n")
    (folder / "MANIFEST.sha256").write_text("".join(lines))


REPRODUCE = """\
import pandas as pd

findings = pd.read_parquet("factory_cp_findings.parquet")
panel = pd.read_parquet("factory_cycle_panel.parquet")
cycles = panel.groupby("factory_key")["cycle"].agg(set)


def members(c):
    \"\"\"Factories with a counted assessment in every cycle 1..c.\"\"\"
    return {f for f, seen in cycles.items() if set(range(1, c + 1)) <= seen}


parts = [findings.assign(panel="all")]
for c in range(2, int(panel["cycle"].max()) + 1):
    balanced = findings[findings["factory_key"].isin(members(c)) & (findings["cycle"] <= c)]
    parts.append(balanced.assign(panel=f"balanced_{c}"))
rates = (
    pd.concat(parts)
    .groupby(["panel", "cycle", "cluster", "compliance_point"], dropna=False)
    .agg(factories_assessed=("factory_key", "size"), factories_noncompliant=("is_noncompliant", "sum"))
    .reset_index()
)
rates["noncompliance_rate"] = rates["factories_noncompliant"] / rates["factories_assessed"]
"""
"""The README's recipe: cp_noncompliance_rate from the released panel (a test runs it on a release)."""

# >>> survey waves (issue 19; docs/SURVEYS.md)
SURVEY_TABLE = "factory_wave_outcomes"
SURVEY_ONLY = {
    "wave",
    "assessment_cycle",
    "respondents",
    "female_respondents",
    "is_suppressed",
    "suppressed_measures",
}
"""Columns of factory_wave_outcomes whose name other tables use with another meaning."""
_CONCERN = (
    "share of respondents answering {} with 2 (moderate) or 3 (big concern) on the 0-3 scale "
    "(0 none, 1 small), among those who answered it"
)
SURVEY_SCALES = {
    "wave": ("1, 2, …", "survey wave of the programme's impact evaluation (about one a year)"),
    "assessment_cycle": (
        "0, 1, 2, …",
        "cycle of the factory's latest counted assessment starting on or before the wave's first "
        "submission; 0: before its first counted assessment; null: withheld (fewer than k factories)",
    ),
    "respondents": ("count", "consenting worker respondents (non-consenting submissions count nowhere)"),
    "female_respondents": ("count", "of those, women; null when respondents < 10"),
    "share_verbal_abuse_concern": ("0-1", _CONCERN.format("the concern about verbal abuse")),
    "share_sexual_harassment_concern": ("0-1", _CONCERN.format("the concern about sexual harassment")),
    "share_physical_abuse_concern": ("0-1", _CONCERN.format("the concern about physical abuse")),
    "share_low_wages_concern": ("0-1", _CONCERN.format("the concern about low wages")),
    "share_late_payment_concern": ("0-1", _CONCERN.format("the concern about late payment")),
    "share_excessive_overtime_concern": ("0-1", _CONCERN.format("the concern about excessive overtime")),
    "mean_life_satisfaction": ("0-10", "mean life satisfaction (0 worst … 10 best) among those who answered"),
    "mean_hours_last_week": ("hours", "mean hours worked in the last week among those who answered"),
    "share_over_60_hours": (
        "0-1",
        "share who worked more than 60 hours in the last week, among those who answered",
    ),
    "share_with_payslip": ("0-1", "share who received a pay slip, among those who answered yes or no"),
    "share_knows_picc": (
        "0-1",
        "share who know the factory's PICC (answered yes), among those who answered yes, no or don't know",
    ),
    "monthly_turnover_pct": ("0-100", "manager: monthly worker turnover, percent (the factory's own figure)"),
    "absenteeism_pct": ("0-100", "manager: absenteeism, percent (the factory's own figure)"),
    "line_efficiency_pct": ("0-100", "manager: average line efficiency, percent (the factory's own figure)"),
    "is_suppressed": (
        "true / false",
        "true when a figure of the row was built from fewer than 10 respondents",
    ),
    "suppressed_measures": ("names", "the row's suppressed figures, comma-separated (null when none)"),
    "survey_wave": (
        "1, 2, …",
        "the factory's survey wave whose first submission falls in the panel row's window",
    ),
    "survey_respondents": ("count", "consenting worker respondents of survey_wave"),
}
"""Codebook entries of the survey outcomes (table factory_wave_outcomes, and the panel's survey
columns): the scale of each outcome and what it means, whatever values a release holds."""

SURVEY_README = """## Survey waves (worker and manager outcomes)

The programme's impact evaluation surveys workers (10-30 per factory) and one manager of each
factory in waves, on tablets. `factory_wave_outcomes` has one row per factory × wave, never a
respondent: shares and means over the consenting workers who answered each question (a refusal is
left out of the denominator; a submission without consent counts nowhere), the manager's turnover,
absenteeism and line efficiency, and `assessment_cycle`, the factory's latest counted assessment
starting on or before the wave's first submission. **Every share or mean built from fewer than 10
respondents is suppressed** (null; `is_suppressed` true and the figure named in
`suppressed_measures`), and so is `female_respondents` when there are fewer than 10 respondents.
Only waves with enough factories are published; `assessment_cycle` is withheld where too few
factories of the wave share it. `factory_cycle_panel` repeats the outcomes of the factory's wave
whose first submission falls in the row's "since previous" window (`survey_wave`), as published
here. The codebook gives each outcome's scale.

"""
# <<< survey waves

# >>> social dialogue, remediation and gender (issue 17: the tables of docs/MARTS.md's section)
DIALOGUE_README = """## Social dialogue, remediation and gender

Better Work's factory model is assess, improvement plan, advise, reassess; its priority themes
include social dialogue and gender equality. Three tables carry that evidence:

- `factory_social_dialogue`: one row per factory × calendar year in which the factory was engaged
  (enrolled by 31 December, not exited before 1 January). `picc_meetings` counts the meetings of its
  PICC (the factory's performance improvement consultative committee of workers and managers) held
  in the year; `quarters_with_meeting` the quarters with at least one; `has_regular_picc` is true
  when the PICC met in every quarter for which the factory was engaged the whole quarter (false when
  there was no such quarter). `women_share_of_attendees` = women present ÷ attendees (workers +
  managers) over the year's meetings; `women_under_represented` says whether it is below the share
  of women among the factory's workers (`dim_factory.female_share_band` gives that share's band).
  Rows are published only for factories whose enrolment year `dim_factory` publishes, and for years
  with enough such factories.
- `factory_remediation`: one row per factory × cycle with improvement plan items or a counted
  assessment. Items are raised after the cycle's assessment for the points to fix:
  `items_completed`, `completion_rate` (null without items), `items_closed_on_time` (closed by the
  due date), `items_overdue` (not completed, due before the release's data were built),
  `median_days_to_close` of the completed items. The recheck looks at the factory's counted
  assessment of cycle + 1 only: `items_rechecked` are items whose compliance point was assessed
  there, `items_compliant_at_recheck` those whose point had no non-compliant finding, and
  `recheck_compliance_rate` their ratio (null when nothing was rechecked, e.g. no next cycle).
- `programme_dialogue_kpis`: per period (`all` and each year, as `programme_kpis`, which it joins on
  `period`): PICC meetings held and factories with one, improvement items raised (by date raised) and
  completed (by date closed), and `women_supervisors_trained`, distinct women recorded as line
  supervisors who attended a supervisory skills (SST) session starting in the period. Suppressed as
  `programme_kpis` is.

Shares and rates are stored unrounded.

"""
# <<< social dialogue, remediation and gender


def render_readme(version: str, tables: list[Table], k: int) -> str:
    listing = "\n".join(f"| `{t.name}` | {t.rows} | {t.description.replace(chr(10), ' ')} |" for t in tables)
    return f"""# Better Work Pakistan: research release {version}

Pseudonymised research data of the Better Work Pakistan programme (ILO/IFC), from the schema
`research` of the programme's warehouse, for academic partners under their data use agreement.

## Files

| table | rows | what one row is |
|---|---|---|
{listing}

Every table comes as `<table>.parquet` (typed) and `<table>.csv` (UTF-8, comma-separated, header
row, empty = null, booleans `true` / `false`; a text cell that a spreadsheet would take for a
formula, starting with `=`, `+`, `-`, `@`, tab or carriage return, is prefixed with `'`: the Parquet
files hold the values unchanged). `release.json` records the version, the disclosure-control
policy and k. `data_dictionary.csv` / `.json` give every column's
type and description; `codebook.csv` the meaning of every coded value found in the release;
`MANIFEST.sha256` the checksum of every file (`sha256sum -c MANIFEST.sha256`). The version
`{version}` is the date of the release and the start of the hash of its content: the same data
always give the same hash.

```python
import pandas as pd
panel = pd.read_parquet("factory_cycle_panel.parquet")
dictionary = pd.read_csv("data_dictionary.csv")
```

## Counting rules (how non-compliance is counted)

- Only NCQ (non-compliance) questions with a finding of 0 (compliant) or 1 (non-compliant) count;
  retired duplicate factory records ("(Obsolete)") never count.
- One assessment per factory per cycle counts: the one with the latest start date.
- A factory is *assessed* on a compliance point in an assessment when any NCQ question of the point
  has finding 0 or 1, and *non-compliant* on it when any has finding 1. `factory_cp_findings` holds
  exactly these factory × cycle × point rows.
- `cp_noncompliance_rate` = non-compliant factories ÷ assessed factories, per panel, cycle and point.
  Panel `all` uses every factory; `balanced_<c>` only factories with a counted assessment in every
  cycle 1…c (rows of `factory_cycle_panel` for each of those cycles), for cycles 1…c.
- `cp_noncompliance_rate` in `factory_cycle_panel` = non-compliant points ÷ assessed points of the
  factory's assessment. "Since previous" counts events after the previous counted assessment of the
  factory (for cycle 1: all earlier events) up to and including this assessment's start date;
  training counts are distinct people of the factory who attended a session starting then.
- `programme_kpis`: deleted records never count; a participation counts when attended; a year row
  counts what falls in that year.

{DIALOGUE_README}{SURVEY_README}## Reproducing cp_noncompliance_rate from the panel

Run in this folder; `rates` then equals `cp_noncompliance_rate` on every cell that is not
suppressed (and on `factories_assessed` wherever it has the cell). Cycles reached by fewer than k
factories are left out of the factory-level tables: the cells it cannot rebuild (those cycles, and
balanced panels reaching into them) are all suppressed.

```python
{REPRODUCE}```

## Disclosure control

- **Pseudonyms.** `factory_key` is an
  HMAC-SHA256 (hex) of the programme's factory id under a secret key held by the programme, not in any
  repository. They are stable between releases made with the same key, so releases can be linked;
  if the key is ever changed, every key changes and old and new releases no longer link.
- **No direct identifiers.** No names, addresses, cities, Open Supply Hub ids, programme factory,
  assessment, session or participant ids, national id numbers (CNIC) or phone numbers. Dates are
  coarsened to years; workforce size and share of women to bands.
- **k = {k}.** In `dim_factory`, where a combination of province, sector, size band, female share band
  and enrolment year would be shared by fewer than {k} factories, the least useful of them are
  withheld (null), enrolment year first (`quasi_identifiers_withheld` says how many). In
  `factory_cycle_panel`, months since enrolment come in 6-month bands; start year and band are
  withheld with the enrolment year, and further until every published combination of cycle, start
  year and band is shared by at least {k} factories. Cycles reached by fewer than {k} factories are
  left out of the factory-level tables (their rates are suppressed anyway).
- **No person rows.** Training participation is published as aggregates per session year, course,
  gender and role (`training_participation`), suppressed like the other aggregates (fewer than {k}
  people, or 1…{k - 1} factories), never as one row per person.
- **Suppressed cells.** In the aggregate tables, a cell built from fewer than {k} factories is
  suppressed: its values are null and `is_suppressed` is true (*primary*). So is a cell that would
  let a suppressed cell or a group of fewer than {k} factories be recovered by difference
  (*complementary*): in `cp_noncompliance_rate` the panels of one cycle and point are nested
  (`all` ⊇ `balanced_2` ⊇ `balanced_3` …), so two published cells always differ by 0 or at least
  {k} factories; in `programme_kpis` the years of an additive figure add up to `all`, so more years
  (or `all`) are suppressed until the suppressed years cover at least {k} factories together.
  A figure built from no factory (a zero) is published. `suppression_reason` / `suppressed_cells`
  say which rule applied.
- **Policy.** `release.json` records the policy and k. Counts are not rounded.
- The factory-level tables are pseudonymous microdata, not anonymous: they let suppressed
  aggregates be recomputed, and a factory's findings could be recognised by someone who knows them.
  Keep them within the terms of the data use agreement; publish aggregates only with the rules above.
"""


def publish(url: str, cfg: Settings | None = None, today: dt.date | None = None) -> Release:
    """Write a research release of the warehouse at ``url`` (or find the identical one)."""
    cfg = cfg or settings()
    root = cfg.release_dir
    root.mkdir(parents=True, exist_ok=True)
    work = root / f".incoming-{uuid.uuid4().hex[:8]}"
    work.mkdir()
    try:
        with db.connect(url, role="researcher") as conn:
            tables = describe(conn)
            if not tables:
                raise RuntimeError("the research schema has no table the researcher role can read")
            for table in tables:
                export_table(conn, table, work)
        write_dictionary(tables, work)
        has_courses = any(t.codes.get("course_code") for t in tables)
        write_codebook(tables, work, course_titles(url) if has_courses else {})
        digest = content_hash(work)[:12]
        existing = sorted(root.glob(f"*-{digest}"))
        counts = {t.name: t.rows for t in tables}
        if existing:
            log.info("release %s already holds this content: nothing written", existing[-1].name)
            return Release(existing[-1], existing[-1].name, False, counts)
        version = f"{(today or dt.date.today()).isoformat()}-{digest}"
        (work / "README.md").write_text(render_readme(version, tables, cfg.suppression_k))
        manifest = {"version": version, "disclosure": disclosure_policy(cfg.suppression_k), "tables": counts}
        (work / "release.json").write_text(json.dumps(manifest, indent=2) + "\n")
        write_manifest(work)
        final = root / version
        work.rename(final)
        log.info("research release %s written: %s", final, counts)
        return Release(final, version, True, counts)
    finally:
        shutil.rmtree(work, ignore_errors=True)
