"""Assessment export files (docs/SOURCES.md), streamed row by row into ``assessments/``.

One export per half-year holds the assessments that started in it (CSV, UTF-8 with a BOM, CRLF
line ends; the second half of 2022 as XLSX), then a corrections export repeats about 5% of the
recent assessments with changed findings. Each export spells compliance points its own way
(as the tool does, upper case, lower case) and a few rows carry stray spaces. File modification
times are set to the export dates, so "oldest first" is the order in which the exports were issued.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import os
import random
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from include.contract import EXPORT_COLUMNS
from include.demo import catalogue, remediation, xlsx
from include.demo.people import mix
from include.demo.plan import Assessment, Plan, horizon

COLUMNS = EXPORT_COLUMNS
FILE_PREFIX = "bwpk_assessments_"
XLSX_PERIOD = (2022, 2)
BLANK_SHARE = 0.03  # NCQ rows left blank (not assessed) inside an assessed compliance point
NA_POINTS = {"Worker Accommodation": 0.7, "Strikes": 0.5}  # points often not applicable at all
PRODUCTS = ("Knit tops", "Denim trousers", "Sportswear", "Towels and home textiles", "Workwear", "Shoes")
MIN_WAGE = {2022: 25_000, 2023: 32_000, 2024: 37_000, 2025: 37_000}  # PKR a month, Sindh and Punjab


@dataclass(frozen=True)
class ExportFile:
    name: str
    issued_on: dt.date
    assessments: tuple[Assessment, ...]
    style: int  # how this export spells compliance points
    corrections: bool = False


def exports(plan: Plan) -> list[ExportFile]:
    """The export files of a plan, in the order they were issued."""
    by_period: dict[tuple[int, int], list[Assessment]] = {}
    for a in plan.assessments:
        by_period.setdefault((a.start_date.year, 1 if a.start_date.month <= 6 else 2), []).append(a)
    files = []
    for i, (year, half) in enumerate(sorted(by_period)):
        issued = dt.date(year, 7, 20) if half == 1 else dt.date(year + 1, 1, 20)
        issued = min(issued, dt.date(2025, 12, 15), horizon())
        ext = "xlsx" if (year, half) == XLSX_PERIOD else "csv"
        name = f"{FILE_PREFIX}{issued.isoformat()}_{year}H{half}.{ext}"
        files.append(ExportFile(name, issued, tuple(by_period[(year, half)]), style=i % 3))
    recent = [a for a in plan.assessments if a.kind == "counted" and a.start_date >= dt.date(2024, 6, 1)]
    rnd = random.Random(f"{plan.seed}:corrections")
    count = min(len(recent), max(1, round(0.05 * len(plan.assessments))))
    corrected = sorted(rnd.sample(recent, count), key=lambda a: a.quest_id)
    issued = min(dt.date(2025, 12, 22), horizon())
    files.append(
        ExportFile(f"{FILE_PREFIX}{issued.isoformat()}_corrections.csv", issued, tuple(corrected), 0, True)
    )
    return files


@functools.lru_cache(maxsize=4096)
def point_outcomes(seed: int, a: Assessment) -> dict[str, str]:
    """Per compliance point: ``'nc'`` non-compliant, ``'ok'`` compliant, ``'na'`` not applicable.

    From cycle 2, a point found non-compliant at the previous cycle is less often non-compliant
    again when its improvement item was completed before this assessment (remediation.py).
    Callers must not modify the returned dict (it is cached).
    """
    rnd = random.Random(mix(seed, a.quest_id, 101))
    previous = point_outcomes(seed, a.previous) if a.previous is not None else {}
    out = {}
    for cluster, cp in catalogue.read_points_cached():
        if cp in NA_POINTS and mix(seed, a.factory_id, zlib.crc32(cp.encode())) % 1000 < NA_POINTS[cp] * 1000:
            out[cp] = "na"
            continue
        factor = remediation.recheck_factor(seed, a, cp, previous.get(cp))
        p = min(0.97, catalogue.rate(cp, cluster, a.cycle) * a.effect * factor)
        out[cp] = "nc" if rnd.random() < p else "ok"
    return out


def _cp_variant(label: str, style: int) -> str:
    return (label, label.upper(), label.lower())[style]


def _fgw_answer(rnd: random.Random, a: Assessment, key: str, dormitory: bool) -> str | int | None:
    w, f = a.workers_total, a.workers_female
    values = {
        "workers_total": w,
        "workers_female": f,
        "workers_male": w - f,
        "workers_fixed_term": round(w * rnd.uniform(0, 0.3)),
        "lines": max(1, w // 45),
        "union": "Yes" if rnd.random() < 0.15 else "No",
        "picc": "Yes" if a.cycle > 1 or rnd.random() < 0.6 else "No",
        "product": PRODUCTS[mix(a.factory_id, 3) % len(PRODUCTS)],
        "min_wage": MIN_WAGE.get(a.start_date.year, 37_000),
        "dormitory": "Yes" if dormitory else "No",
        "workers_disabled": rnd.randint(0, max(1, w // 300)),
        "homeworkers": rnd.choice((0, 0, 0, rnd.randint(5, 200))),
    }
    return None if rnd.random() < 0.02 else values[key]


def assessment_rows(seed: int, a: Assessment, style: int, corrected: bool = False) -> Iterator[list]:
    """The export rows of one assessment (ints stay ints: XLSX writes them as numbers)."""
    tool = catalogue.tools()[a.tool]
    outcomes = point_outcomes(seed, a)
    rnd = random.Random(mix(seed, a.quest_id, 202))
    head = ["Pakistan", a.factory_id, a.factory_name, a.quest_id, a.start_date.strftime("%d/%m/%Y"), a.cycle]
    by_point = tool.ncq_by_point()
    findings: dict[int, int | None] = {}
    for cp, questions in by_point.items():
        status = outcomes[cp]
        if status == "na":
            findings.update((q.question_id, None) for q in questions)
            continue
        values: list[int | None] = [None if rnd.random() < BLANK_SHARE else 0 for _ in questions]
        if status == "nc":
            hits = 1 if len(questions) == 1 or rnd.random() < 0.6 else 2
            for i in rnd.sample(range(len(questions)), hits):
                values[i] = 1
        elif all(v is None for v in values):
            values[0] = 0  # an assessed point has at least one answered question
        findings.update((q.question_id, v) for q, v in zip(questions, values, strict=True))
    if corrected:
        fix = random.Random(mix(seed, a.quest_id, 303))
        ones = sorted(q for q, v in findings.items() if v == 1)
        zeros = sorted(q for q, v in findings.items() if v == 0)
        for q in fix.sample(ones, min(len(ones), fix.randint(2, 6))):
            findings[q] = 0  # found compliant on review
        for q in fix.sample(zeros, min(len(zeros), fix.randint(0, 2))):
            findings[q] = 1
    dormitory = outcomes.get("Worker Accommodation") != "na"
    for q in tool.questions:
        if q.qtype == "FGW":
            yield [
                *head,
                "FGW",
                q.question_id,
                q.label,
                "",
                q.cluster,
                _fgw_answer(rnd, a, q.fgw_key, dormitory),
                "",
                tool.name,
            ]
            continue
        cp = _cp_variant(q.cp_label, style)
        if rnd.random() < 0.03:  # stray spaces, as hand-edited exports have
            cp = f" {cp} " if rnd.random() < 0.5 else cp.replace(" ", "  ", 1) + " "
        finding = findings[q.question_id]
        tags = (
            "Public Disclosure"
            if finding == 1 and q.compliance_point in catalogue.PUBLIC_DISCLOSURE_POINTS
            else ""
        )
        yield [*head, "NCQ", q.question_id, q.label, cp, q.cluster, finding, tags, tool.name]


def _file_rows(seed: int, export: ExportFile) -> Iterator[list]:
    for a in export.assessments:
        yield from assessment_rows(seed, a, export.style, export.corrections)


def write_file(seed: int, export: ExportFile, folder: Path) -> int:
    """Write one export (to a temporary name, then renamed); returns its data rows."""
    final = folder / export.name
    tmp = folder / f".{export.name}.tmp"
    if export.name.endswith(".xlsx"):
        rows = xlsx.write(tmp, _header_then(_file_rows(seed, export)), export.issued_on) - 1
    else:
        rows = 0
        with tmp.open("w", encoding="utf-8-sig", newline="", buffering=1 << 20) as f:
            writer = csv.writer(f, lineterminator="\r\n")
            writer.writerow(COLUMNS)
            for row in _file_rows(seed, export):
                writer.writerow(["" if v is None else v for v in row])
                rows += 1
    os.replace(tmp, final)
    stamp = dt.datetime(export.issued_on.year, export.issued_on.month, export.issued_on.day, 18).timestamp()
    os.utime(final, (stamp, stamp))
    return rows


def _header_then(rows: Iterator[list]) -> Iterator[list]:
    yield list(COLUMNS)
    yield from rows
