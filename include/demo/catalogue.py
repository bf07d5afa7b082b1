"""The question catalogue of the two assessment tool versions, built from the dbt seeds.

The canonical clusters and compliance points are read from ``dbt_project/seeds/compliance_points.csv``
and the older names from ``compliance_point_aliases.csv``, so the generator and the warehouse's
catalogue never drift apart. ``Garment CAT`` (used before 2024) still spells the aliased points by
their older names; ``Garment CAT V2`` uses the canonical names and its own question ids.

Non-compliance rates are factory-level rates per compliance point in a factory's first cycle,
shaped after Better Work's global compliance synthesis reports and Better Work Pakistan's annual
reports: Occupational Safety and Health, Working Time and Compensation high, Child Labour and
Forced Labour near zero (see docs/DEMO_DATA.md).
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from include.config import PROJECT_DIR

SEEDS_DIR = PROJECT_DIR / "dbt_project" / "seeds"
TOOL_V1 = "Garment CAT"
TOOL_V2 = "Garment CAT V2"

# Factory-level non-compliance probability per compliance point in cycle 1.
CYCLE1_RATE: dict[str, float] = {
    "Child Labourers": 0.01,
    "Hazardous Work and other Worst Forms": 0.02,
    "Unconditional Worst Forms": 0.005,
    "Documentation and Protection of Young Workers": 0.08,
    "Race and Origin": 0.02,
    "Religion and Political Opinion": 0.02,
    "Gender": 0.22,
    "Other Grounds": 0.06,
    "Coercion": 0.03,
    "Bonded Labour": 0.01,
    "Forced Labour and Overtime": 0.05,
    "Prison Labour": 0.003,
    "Freedom to Associate": 0.15,
    "Union Operations": 0.08,
    "Interference and Discrimination": 0.12,
    "Collective Bargaining": 0.10,
    "Strikes": 0.03,
    "Minimum Wages/Piece Rate Wages": 0.40,
    "Overtime Wages": 0.50,
    "Premium Pay": 0.30,
    "Method of Payment": 0.20,
    "Wage Information, Use and Deduction": 0.45,
    "Paid Leave": 0.50,
    "Social Security and Other Benefits": 0.72,
    "Employment Contracts": 0.55,
    "Contracting Procedures": 0.25,
    "Termination": 0.20,
    "Dialogue, Discipline and Disputes": 0.35,
    "OSH Management Systems": 0.78,
    "Chemicals and Hazardous Substances": 0.66,
    "Worker Protection": 0.70,
    "Working Environment": 0.56,
    "Health Services and First Aid": 0.55,
    "Welfare Facilities": 0.45,
    "Worker Accommodation": 0.30,
    "Emergency Preparedness": 0.82,
    "Regular Hours": 0.45,
    "Overtime": 0.80,
    "Leave": 0.40,
}

# Each later cycle multiplies the cycle-1 rate by this factor (advisory and training take effect).
CYCLE_DECAY: dict[str, float] = {
    "Occupational Safety and Health": 0.78,
    "Working Time": 0.82,
    "Compensation": 0.80,
    "Contracts and Human Resources": 0.80,
    "Freedom of Association and Collective Bargaining": 0.85,
    "Discrimination": 0.85,
    "Child Labour": 0.7,
    "Forced Labour": 0.7,
}

# Points that Better Work reports publicly when a factory is non-compliant (tag 'Public Disclosure').
PUBLIC_DISCLOSURE_POINTS = frozenset(
    {
        "Child Labourers",
        "Unconditional Worst Forms",
        "Coercion",
        "Bonded Labour",
        "Minimum Wages/Piece Rate Wages",
        "Overtime Wages",
        "Social Security and Other Benefits",
        "Emergency Preparedness",
        "Interference and Discrimination",
    }
)

# Information (FGW) questions: (label, key of the answer the generator fills in, cluster). The
# exports file every question under one of the eight clusters, information questions included.
_HR = "Contracts and Human Resources"
_FOA = "Freedom of Association and Collective Bargaining"
FGW_V1 = (
    ("Total number of workers", "workers_total", _HR),
    ("Number of female workers", "workers_female", _HR),
    ("Number of male workers", "workers_male", _HR),
    ("Number of workers on fixed-term contracts", "workers_fixed_term", _HR),
    ("Number of sewing lines", "lines", "Working Time"),
    ("Is there a trade union in the factory?", "union", _FOA),
    ("Is there a Performance Improvement Consultative Committee?", "picc", _FOA),
    ("Main product", "product", "Working Time"),
    ("Applicable monthly minimum wage (PKR)", "min_wage", "Compensation"),
    ("Does the factory provide worker accommodation?", "dormitory", "Occupational Safety and Health"),
)
FGW_V2 = FGW_V1 + (
    ("Number of workers with disabilities", "workers_disabled", "Discrimination"),
    ("Number of home-based or sub-contracted workers", "homeworkers", _HR),
)

_ASPECTS = (
    "written policy in place",
    "records kept and accurate",
    "practice matches records (worker interviews)",
    "management is aware of the legal requirement",
    "applies to all workers, including contract workers",
    "corrective action taken since last visit",
    "documented procedure followed",
    "supervisors trained on the requirement",
)


@dataclass(frozen=True)
class Question:
    question_id: int
    qtype: str  # 'NCQ' or 'FGW'
    label: str
    cp_label: str  # as the tool version spells the compliance point ('' for FGW)
    compliance_point: str  # canonical ('' for FGW)
    cluster: str
    fgw_key: str = ""


@dataclass(frozen=True)
class Tool:
    name: str
    questions: tuple[Question, ...]

    def ncq_by_point(self) -> dict[str, list[Question]]:
        out: dict[str, list[Question]] = {}
        for q in self.questions:
            if q.qtype == "NCQ":
                out.setdefault(q.compliance_point, []).append(q)
        return out


def read_points(seeds_dir: Path = SEEDS_DIR) -> list[tuple[str, str]]:
    """(cluster, compliance point) pairs of the canonical catalogue, in the seed's order."""
    with (seeds_dir / "compliance_points.csv").open(newline="", encoding="utf-8") as f:
        return [(r["cluster"].strip(), r["compliance_point"].strip()) for r in csv.DictReader(f)]


def read_aliases(seeds_dir: Path = SEEDS_DIR) -> dict[str, str]:
    """Canonical compliance point -> the older name ``Garment CAT`` uses for it."""
    with (seeds_dir / "compliance_point_aliases.csv").open(newline="", encoding="utf-8") as f:
        return {r["compliance_point"].strip(): r["alias"].strip() for r in csv.DictReader(f)}


@cache
def read_points_cached() -> tuple[tuple[str, str], ...]:
    """:func:`read_points` of the project's seeds, read once per process."""
    return tuple(read_points())


@cache
def tools(seeds_dir: Path = SEEDS_DIR) -> dict[str, Tool]:
    """Both tool versions' question lists (fixed: they do not depend on the generator's seed)."""
    points = read_points(seeds_dir)
    older = read_aliases(seeds_dir)
    missing = [cp for _, cp in points if cp not in CYCLE1_RATE]
    if missing:
        raise ValueError(f"no demo non-compliance rate for compliance points: {missing}")
    rnd = random.Random(7)  # the catalogue is part of the tool, not of a seed's data
    out = {}
    for name, first_id, fgw, v2 in ((TOOL_V1, 1001, FGW_V1, False), (TOOL_V2, 5001, FGW_V2, True)):
        questions = []
        qid = first_id
        for label, key, fgw_cluster in fgw:
            questions.append(Question(qid, "FGW", label, "", "", fgw_cluster, key))
            qid += 1
        for cluster, cp in points:
            count = rnd.randint(4, 7) + (1 if v2 and cp in CYCLE1_RATE and CYCLE1_RATE[cp] > 0.4 else 0)
            cp_label = cp if v2 else older.get(cp, cp)
            for aspect in rnd.sample(_ASPECTS, count):
                questions.append(Question(qid, "NCQ", f"{cp}: {aspect}?", cp_label, cp, cluster))
                qid += 1
            qid += 3  # room between points, as real tools number them
        out[name] = Tool(name, tuple(questions))
    return out


def rate(cp: str, cluster: str, cycle: int) -> float:
    """Factory-level non-compliance probability of a compliance point in a cycle."""
    return CYCLE1_RATE[cp] * CYCLE_DECAY[cluster] ** (cycle - 1)
