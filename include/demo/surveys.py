"""Survey waves of the demo programme (docs/SURVEYS.md), written into ``surveys/``.

Better Work's impact evaluation surveys a cohort of factories in waves: here :data:`COHORT` of
each block's factories (those enrolled by the first wave), three waves (late 2023, late 2024,
mid 2025), 6-22 workers and one manager per factory and wave. Waves 1 and 2 are answered on form
version 2024.1; wave 3 on 2025.1, except a few tablets not yet updated (2024.1), so the wave-3
worker file has both versions' columns. Files: ``worker_wave<n>_<date>.csv`` (CSV, UTF-8 with a
BOM, CRLF) and ``manager_wave<n>_<date>.xlsx``; wave 2's worker file is re-exported a month later
with a few answers corrected and late submissions added (same ``_uuid`` = same submission: the
later file wins). About 4% of workers refuse consent (their row has no answers and counts nowhere)
and about 3% of answers are refused (empty). One respondent of each block's first wave gives an
age of 13 (the loader warns: a child labour signal).

Outcomes respond to the factory's compliance (its ``effect``: how much more than average it fails
compliance points) and to the programme's services, which accumulate with the months the factory
has been enrolled: fewer concerns about abuse, harassment and pay, shorter hours, more pay slips,
more workers who know the PICC, higher life satisfaction; for managers lower turnover and
absenteeism and higher line efficiency. Deterministic for a seed; scale ``n`` has ``n`` blocks.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import os
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from include.demo import ops, people, xlsx
from include.demo.plan import Factory, Plan, horizon
from include.extract.surveys import CORE_COLUMNS, PERSONAL

VERSION = 1  # of this generator: a change rewrites the demo's survey files
COHORT = 30  # factories per block in the evaluation cohort
WAVES = {1: dt.date(2023, 11, 1), 2: dt.date(2024, 10, 1), 3: dt.date(2025, 7, 1)}
FORM = {1: "2024.1", 2: "2024.1", 3: "2025.1"}
OLD_TABLETS = 0.1  # wave-3 submissions still on form 2024.1
REEXPORTED_WAVE = 2
NO_CONSENT = 0.04
REFUSED = 0.03
CONCERNS = (
    "verbal_abuse",
    "sexual_harassment",
    "physical_abuse",
    "low_wages",
    "late_payment",
    "excessive_overtime",
)
CONCERN_BASE = {  # log-odds of a moderate or big concern for an average factory at enrolment
    "verbal_abuse": -0.6,
    "sexual_harassment": -1.4,
    "physical_abuse": -2.0,
    "low_wages": 0.4,
    "late_payment": -0.8,
    "excessive_overtime": 0.0,
}
OLD_NAMES = {
    "concerns/verbal_abuse": "concerns/verbal",
    "concerns/sexual_harassment": "concerns/sexual",
    "wellbeing/life_satisfaction": "wellbeing/satisfaction",
}
WORKER_QUESTIONS = (
    "respondent/gender",
    "respondent/age",
    "respondent/tenure_months",
    "respondent/role",
    "pay/last_month_pkr",
    "pay/payslip",
    "hours/last_week",
    *(f"concerns/{c}" for c in CONCERNS),
    "voice/knows_picc",
    "wellbeing/life_satisfaction",
    "training/attended",
)
MANAGER_QUESTIONS = (
    "hr/workers_total",
    "hr/workers_female",
    "hr/monthly_turnover_pct",
    "hr/absenteeism_pct",
    "prod/line_efficiency_pct",
    "prod/orders_lost_last_year",
)
COURSES = tuple(ops.COURSES)  # the case-management catalogue's codes, in its order


@dataclass(frozen=True)
class SurveyFile:
    name: str
    issued_on: dt.date
    header: tuple[str, ...]
    rows: tuple[tuple, ...]


def _logistic(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def _progress(f: Factory, day: dt.date) -> float:
    """How good things are at the factory on ``day``: better compliance (effect < 1) and more months
    of services (advisory visits, training) give a higher value; about -1 … 1.5."""
    months = max(0, (day - f.enrolled_on).days / 30.4)
    return 1.2 * (1 - f.effect) + min(months, 42) / 30


def _cohort(plan: Plan) -> list[Factory]:
    out = []
    for block in range(plan.scale):
        rnd = random.Random(f"{plan.seed}:survey-cohort:{block}")
        eligible = [
            f
            for f in plan.live_factories(block)
            if f.assessment_dates
            and f.enrolled_on < WAVES[1]
            and (f.exited_on is None or f.exited_on > WAVES[3])
        ]
        out += sorted(rnd.sample(eligible, min(COHORT, len(eligible))), key=lambda f: f.factory_id)
    return out


def _when(rnd: random.Random, day: dt.date) -> str:
    t = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC) + dt.timedelta(
        seconds=rnd.randint(5 * 3600, 12 * 3600)
    )
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _uuid(rnd: random.Random) -> str:
    return str(uuid.UUID(int=rnd.getrandbits(128), version=4))


def _answer(rnd: random.Random, value):
    return "" if rnd.random() < REFUSED else value


def _worker(rnd: random.Random, seed: int, f: Factory, wave: int, day: dt.date, n: int, child: bool) -> dict:
    progress = _progress(f, day)
    female = rnd.random() < max(0.05, f.workers_female / max(1, f.workers_total))
    gender = "female" if female else ("other" if rnd.random() < 0.01 else "male")
    name, _cnic, phone = people.person(
        seed, 5_000_000 + f.factory_id * 1000 + wave * 100 + n, 1 if female else 0, f.city
    )
    row = {"respondent/name": name, "respondent/phone": phone}
    if rnd.random() < NO_CONSENT:
        return {**row, "consent": "no"}  # the form ends at consent: no answers
    age = 13 if child else max(15, min(60, round(rnd.gauss(28, 8))))
    hours = max(40, min(84, round(rnd.gauss(58 - 5 * progress, 6))))
    pay = round(rnd.gauss(32_000 + 2_000 * progress, 4_000), -2)
    answers = {
        "respondent/gender": gender,
        "respondent/age": age,
        "respondent/tenure_months": max(1, min(age * 12 - 150, round(rnd.expovariate(1 / 30)))),
        "respondent/role": rnd.choices(("operator", "helper", "checker", "line_supervisor"), (60, 20, 12, 8))[
            0
        ],
        "pay/last_month_pkr": int(pay),
        "pay/payslip": "yes" if rnd.random() < _logistic(0.3 + 1.6 * progress) else "no",
        "hours/last_week": hours,
        "voice/knows_picc": "yes"
        if rnd.random() < _logistic(-0.8 + 1.5 * progress)
        else rnd.choice(("no", "dont_know")),
        "wellbeing/life_satisfaction": max(0, min(10, round(rnd.gauss(5 + 1.2 * progress, 1.8)))),
        "training/attended": " ".join(c for c in COURSES if rnd.random() < 0.05 + 0.08 * max(0, progress)),
    }
    for c in CONCERNS:
        p = _logistic(CONCERN_BASE[c] - 1.3 * progress)
        answers[f"concerns/{c}"] = rnd.choice((2, 3)) if rnd.random() < p else rnd.choice((0, 0, 1))
    row.update({k: _answer(rnd, v) for k, v in answers.items()})
    if child:
        row["respondent/age"] = age  # the signal the loader must raise: never refused in the demo
    return {**row, "consent": "yes"}


def _manager(rnd: random.Random, f: Factory, day: dt.date) -> dict:
    progress = _progress(f, day)
    total = max(100, round(f.workers_total * rnd.uniform(0.9, 1.1)))
    return {
        "consent": "yes",
        "hr/workers_total": total,
        "hr/workers_female": round(total * f.workers_female / max(1, f.workers_total)),
        "hr/monthly_turnover_pct": round(max(0.5, rnd.gauss(7 - 2.5 * progress, 1.2)), 1),
        "hr/absenteeism_pct": round(max(0.5, rnd.gauss(8 - 2.5 * progress, 1.2)), 1),
        "prod/line_efficiency_pct": round(min(95, max(25, rnd.gauss(52 + 9 * progress, 5))), 1),
        "prod/orders_lost_last_year": "yes" if rnd.random() < _logistic(-0.5 - progress) else "no",
    }


def _header(instrument: str, versions: set[str]) -> tuple[str, ...]:
    questions = WORKER_QUESTIONS if instrument == "worker" else MANAGER_QUESTIONS
    names: list[str] = []
    for q in questions:
        if "2024.1" in versions and q in OLD_NAMES:
            names.append(OLD_NAMES[q])
        if "2025.1" in versions or q not in OLD_NAMES:
            names.append(q)
    return (*CORE_COLUMNS, *PERSONAL[instrument], *names)


def _rows(header: tuple[str, ...], submissions: list[dict]) -> tuple[tuple, ...]:
    out = []
    for s in submissions:
        version = s["_form_version"]
        values = dict(s)
        if version == "2024.1":
            for new, old in OLD_NAMES.items():
                if new in values:
                    values[old] = values.pop(new)
        out.append(tuple(values.get(c, "") for c in header))
    return tuple(out)


def survey_files(plan: Plan) -> list[SurveyFile]:
    """The survey export files of a plan, in the order they were issued."""
    cohort = _cohort(plan)
    files: list[SurveyFile] = []
    for wave, start in WAVES.items():
        if start > horizon():
            continue
        rnd = random.Random(f"{plan.seed}:survey:{wave}")
        workers: list[dict] = []
        managers: list[dict] = []
        last = start
        children = {c.factory_id for c in cohort[::COHORT]} if wave == 1 else set()  # one per block
        for f in cohort:
            day = start + dt.timedelta(days=rnd.randint(0, 40))
            if day > horizon():
                continue
            last = max(last, day)
            version = FORM[wave]
            respondents = rnd.randint(6, 22)
            for n in range(respondents):
                form = "2024.1" if wave == 3 and rnd.random() < OLD_TABLETS else version
                w = _worker(rnd, plan.seed, f, wave, day, n, child=f.factory_id in children and n == 0)
                w.update(
                    {
                        "_uuid": _uuid(rnd),
                        "_submission_time": _when(rnd, day),
                        "_form_version": form,
                        "wave": wave,
                        "factory_id": f.factory_id,
                    }
                )
                workers.append(w)
            m = _manager(rnd, f, day)
            m.update(
                {
                    "_uuid": _uuid(rnd),
                    "_submission_time": _when(rnd, day),
                    "_form_version": version,
                    "wave": wave,
                    "factory_id": f.factory_id,
                }
            )
            managers.append(m)
        issued = min(last + dt.timedelta(days=7), horizon())
        versions = {w["_form_version"] for w in workers} or {FORM[wave]}
        header = _header("worker", versions)
        files.append(
            SurveyFile(f"worker_wave{wave}_{issued.isoformat()}.csv", issued, header, _rows(header, workers))
        )
        mheader = _header("manager", {FORM[wave]})
        files.append(
            SurveyFile(
                f"manager_wave{wave}_{issued.isoformat()}.xlsx", issued, mheader, _rows(mheader, managers)
            )
        )
        if wave == REEXPORTED_WAVE:
            again = min(issued + dt.timedelta(days=30), horizon())
            if again > issued:
                corrected = []
                for w in workers:
                    w = dict(w)
                    hours = w.get("hours/last_week", "")
                    if hours != "" and rnd.random() < 0.05:  # an answer corrected by the team
                        w["hours/last_week"] = max(40, int(hours) - 4)
                    corrected.append(w)
                for f in cohort[:3]:  # late submissions, synchronised after the first export
                    w = _worker(rnd, plan.seed, f, wave, issued, 90, child=False)
                    w.update(
                        {
                            "_uuid": _uuid(rnd),
                            "_submission_time": _when(rnd, issued),
                            "_form_version": FORM[wave],
                            "wave": wave,
                            "factory_id": f.factory_id,
                        }
                    )
                    corrected.append(w)
                files.append(
                    SurveyFile(
                        f"worker_wave{wave}_{again.isoformat()}_reexport.csv",
                        again,
                        header,
                        _rows(header, corrected),
                    )
                )
    return files


def write_file(survey: SurveyFile, folder: Path) -> int:
    """Write one file (to a temporary name, then renamed); returns its data rows."""
    final = folder / survey.name
    tmp = folder / f".{survey.name}.tmp"
    if survey.name.endswith(".xlsx"):
        xlsx.write(tmp, _header_then(survey), survey.issued_on)
    else:
        with tmp.open("w", encoding="utf-8-sig", newline="") as f:
            writer = csv.writer(f, lineterminator="\r\n")
            writer.writerow(survey.header)
            writer.writerows(survey.rows)
    os.replace(tmp, final)
    stamp = dt.datetime(survey.issued_on.year, survey.issued_on.month, survey.issued_on.day, 18).timestamp()
    os.utime(final, (stamp, stamp))
    return len(survey.rows)


def _header_then(survey: SurveyFile) -> Iterator[list]:
    yield list(survey.header)
    for row in survey.rows:
        yield ["" if v is None else v for v in row]
