"""Improvement plans and PICC meetings of the demo programme (case-management tables, docs/SOURCES.md).

An **improvement item** is raised after each counted assessment for every compliance point found
non-compliant. Its fate (completed on time, completed late, still open) is a pure function of the
seed, the assessment and the point, so that the export generator can ask it too: a point whose
item was completed before the factory's next assessment is found compliant there more often
(:func:`recheck_factor`), the recheck effect a researcher would look for.

A factory's **PICC** (performance improvement consultative committee) is formed a few months after
enrolment and meets about once a quarter, with gaps. Women's share of the attendees starts well
below their share of the factory's workforce and closes the gap over about two years.
"""

from __future__ import annotations

import datetime as dt
import random
import zlib
from dataclasses import dataclass

from include.demo.people import mix
from include.demo.plan import Assessment, Factory, horizon

PICC_SHARE = 0.85  # factories that form a PICC
PICC_FORMED_AFTER = (45, 240)  # days after enrolment
MEETING_SHARE = 0.8  # quarters in which a formed PICC meets (the rest are gaps)
WOMEN_START = 0.35  # women's share of attendees ÷ their workforce share, when the PICC is formed
WOMEN_YEARS_TO_PARITY = 2.5

COMPLETED_SHARE = 0.78  # items eventually completed (the others stay pending or in progress)
ON_TIME_SHARE = 0.7  # of the completed ones, closed by the due date
RECHECK_COMPLETED = 0.45  # non-compliance probability × this where the point's item was completed
RECHECK_OPEN = 1.15  # … and × this where it was not (or not yet) completed


@dataclass(frozen=True)
class Item:
    raised_on: dt.date
    due_on: dt.date
    status: str  # pending, in_progress, completed
    closed_on: dt.date | None

    def completed_by(self, day: dt.date) -> bool:
        return self.closed_on is not None and self.closed_on <= day


def item(seed: int, a: Assessment, cp: str) -> Item:
    """The improvement item raised after assessment ``a`` for compliance point ``cp``."""
    rnd = random.Random(mix(seed, a.quest_id, zlib.crc32(cp.encode()), 404))
    last = horizon()
    raised = min(a.start_date + dt.timedelta(days=rnd.randint(14, 40)), last)
    due = raised + dt.timedelta(days=rnd.randint(60, 180))
    closed = None
    if rnd.random() < COMPLETED_SHARE:
        if rnd.random() < ON_TIME_SHARE:
            closed = raised + dt.timedelta(days=rnd.randint(15, (due - raised).days))
        else:
            closed = due + dt.timedelta(days=rnd.randint(1, 150))
    if closed is not None and closed <= last:
        return Item(raised, due, "completed", closed)
    # not completed (or not yet, at the programme's horizon): started once its first month is over
    status = "in_progress" if (last - raised).days > 30 and rnd.random() < 0.7 else "pending"
    return Item(raised, due, status, None)


def recheck_factor(seed: int, a: Assessment, cp: str, previous_outcome: str | None) -> float:
    """How the previous cycle's improvement item changes ``cp``'s non-compliance probability in ``a``."""
    if a.previous is None or previous_outcome != "nc":
        return 1.0
    done = item(seed, a.previous, cp).completed_by(a.start_date)
    return RECHECK_COMPLETED if done else RECHECK_OPEN


def picc_meetings(rnd: random.Random, f: Factory) -> list[tuple[dt.date, int, int, int]]:
    """(held on, workers present, managers present, women present) of ``f``'s PICC, in date order."""
    if rnd.random() >= PICC_SHARE:
        return []
    formed = f.enrolled_on + dt.timedelta(days=rnd.randint(*PICC_FORMED_AFTER))
    end = min(f.active_until(), horizon())
    workforce_share = f.workers_female / f.workers_total if f.workers_total else 0.0
    members = rnd.randint(6, 12)
    out = []
    quarter = dt.date(formed.year, 3 * ((formed.month - 1) // 3) + 1, 1)
    while quarter <= end:
        following = dt.date(quarter.year + (quarter.month == 10), (quarter.month + 2) % 12 + 1, 1)
        lo, hi = max(quarter, formed), min(following - dt.timedelta(days=1), end)
        if lo <= hi and rnd.random() < MEETING_SHARE:
            day = lo + dt.timedelta(days=rnd.randint(0, (hi - lo).days))
            years = (day - formed).days / 365.25
            closing = min(1.0, WOMEN_START + (1 - WOMEN_START) * years / WOMEN_YEARS_TO_PARITY)
            workers = max(2, members - rnd.randint(0, 3))
            managers = rnd.randint(2, 4)
            p = min(0.95, workforce_share * closing)
            women = sum(rnd.random() < p for _ in range(workers + managers))
            out.append((day, workers, managers, women))
        quarter = following
    return out
