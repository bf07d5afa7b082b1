"""The demo programme's skeleton: factories and their assessments (small enough to hold in memory).

Everything bulky (export rows, visits, participants) is streamed from this plan by
:mod:`include.demo.exports` and :mod:`include.demo.ops`. Scale ``n`` repeats the scale-1 structure
in ``n`` blocks, each with its own random draws, so every figure of the scale-1 programme is
multiplied exactly by ``n``.

Scale 1 (Better Work Pakistan as reported in 2025): 121 factories (Karachi, Lahore, Faisalabad),
184 assessments over cycles 1-3 in 2022-2025 (110 first, 52 second and 22 third assessments).
"""

from __future__ import annotations

import datetime as dt
import math
import random
from dataclasses import dataclass, field

from include.demo import people
from include.demo.catalogue import TOOL_V1, TOOL_V2

FACTORIES_PER_BLOCK = 121
DELETED_FACTORIES_PER_BLOCK = 3  # soft-deleted duplicate entries, on top of the 121
# How many factories of a block reach 3, 2, 1 or 0 assessment cycles: 22*3 + 30*2 + 58 = 184.
CYCLE_MIX = {3: 22, 2: 30, 1: 58, 0: 11}
CITY_COUNTS = {"Karachi": 56, "Lahore": 41, "Faisalabad": 24}
OBSOLETE_PER_BLOCK = 4  # retired duplicate records in the exports, named '... (Obsolete)'
SUPERSEDED_PER_BLOCK = 3  # an earlier assessment of the same factory and cycle
CORRECTED_SHARE = 0.05  # assessments repeated with corrected findings in the corrections export
URDU_SHARE = 0.10
FIRST_FACTORY_ID = 1001
OBSOLETE_ID_BASE = 900_001
FIRST_QUEST_ID = 40_001
EARLIEST = dt.date(2022, 1, 3)  # quirk records never start before the programme's first assessment year
# The programme started in 2022: no factory is enrolled (and so no service is delivered) before it.
PROGRAMME_START = dt.date(2022, 1, 1)
V2_FROM = dt.date(2024, 1, 1)  # assessments from this date use Garment CAT V2
EXIT_REASONS = ("left the programme", "factory closed", "sourcing brand withdrew", "suspended: fees unpaid")
PROVINCE = {city: province for city, province, _ in people.CITIES}


def horizon() -> dt.date:
    """The last day the demo programme has reached: 2025-12-31, or today if that is earlier."""
    return min(dt.date(2025, 12, 31), dt.date.today())


@dataclass
class Factory:
    factory_id: int
    block: int
    name: str
    urdu: bool
    city: str
    address: str
    sector: str
    enrolled_on: dt.date
    exited_on: dt.date | None
    exit_reason: str | None
    workers_total: int
    workers_female: int
    os_id: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    deleted_at: dt.datetime | None
    effect: float  # how much more (>1) or less than average this factory fails compliance points
    assessment_dates: list[dt.date] = field(default_factory=list)

    @property
    def province(self) -> str:
        return PROVINCE[self.city]

    def active_until(self) -> dt.date:
        return self.exited_on or horizon()


@dataclass(frozen=True)
class Assessment:
    quest_id: int
    factory_id: int
    factory_name: str
    start_date: dt.date
    cycle: int
    kind: str  # 'counted', 'superseded' (earlier, same factory and cycle) or 'obsolete'
    effect: float
    workers_total: int
    workers_female: int
    # the factory's counted assessment of the previous cycle (its improvement plan's items decide
    # how this assessment finds the points they address: include/demo/remediation.py)
    previous: Assessment | None = None

    @property
    def tool(self) -> str:
        return TOOL_V2 if self.start_date >= V2_FROM else TOOL_V1


@dataclass
class Plan:
    seed: int
    scale: int
    factories: list[Factory]
    assessments: list[Assessment]  # in start-date order

    def live_factories(self, block: int | None = None) -> list[Factory]:
        return [f for f in self.factories if f.deleted_at is None and (block is None or f.block == block)]


def _day(rnd: random.Random, start: dt.date, end: dt.date) -> dt.date:
    return start + dt.timedelta(days=rnd.randint(0, max(0, (end - start).days)))


def stamp(rnd: random.Random, day: dt.date, cap: dt.date | None = None) -> dt.datetime:
    """A time of day during office hours on ``day`` (UTC), never after the horizon."""
    day = min(day, cap or horizon())
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC) + dt.timedelta(
        seconds=rnd.randint(4 * 3600, 14 * 3600)
    )


def _first_cycle_window(cycles: int, last: dt.date) -> tuple[dt.date, dt.date]:
    start = dt.date(2022, 1, 10)
    gap = 420 * (cycles - 1)  # each later cycle follows within 11-14 months
    end = {3: dt.date(2023, 2, 28), 2: dt.date(2024, 6, 30)}.get(cycles, last)
    return start, min(end, last - dt.timedelta(days=gap))


def _block_factories(seed: int, block: int, first_id: int) -> list[Factory]:
    rnd = random.Random(f"{seed}:factories:{block}")
    last_assessment = min(dt.date(2025, 11, 30), horizon() - dt.timedelta(days=30))
    cycles = [c for c, n in CYCLE_MIX.items() for _ in range(n)]
    cities = [c for c, n in CITY_COUNTS.items() for _ in range(n)]
    rnd.shuffle(cycles)
    rnd.shuffle(cities)
    out = []
    for i in range(FACTORIES_PER_BLOCK + DELETED_FACTORIES_PER_BLOCK):
        fid = first_id + i
        deleted = i >= FACTORIES_PER_BLOCK
        k = 0 if deleted else cycles[i]
        city = cities[i] if not deleted else cities[rnd.randrange(FACTORIES_PER_BLOCK)]
        dates: list[dt.date] = []
        exited = reason = None
        if k:
            lo, hi = _first_cycle_window(k, last_assessment)
            d = _day(rnd, lo, hi)
            dates.append(d)
            for _ in range(k - 1):
                d = d + dt.timedelta(days=rnd.randint(330, 420))
                dates.append(d)
            # Enrolment precedes the first assessment by 3-10 months, but not the programme's start:
            # the first factories enrolled in early 2022 are assessed within weeks.
            enrolled = dates[0] - dt.timedelta(days=rnd.randint(90, 300))
            if enrolled < PROGRAMME_START:  # the launch cohort, enrolled between 1 January and a week before
                enrolled = _day(rnd, PROGRAMME_START, dates[0] - dt.timedelta(days=7))
            # Factories stuck at an early cycle have often left the programme.
            if k < 3 and dates[-1] < dt.date(2024, 6, 1) and rnd.random() < 0.5:
                exited = min(dates[-1] + dt.timedelta(days=rnd.randint(120, 400)), horizon())
                reason = rnd.choice(EXIT_REASONS)
        elif not deleted and rnd.random() < 0.2:
            enrolled = _day(rnd, PROGRAMME_START, dt.date(2022, 6, 30))
            exited = enrolled + dt.timedelta(days=rnd.randint(60, 200))
            reason = rnd.choice(EXIT_REASONS)
        else:  # newly enrolled, waiting for its first assessment (or a deleted duplicate entry)
            enrolled = _day(rnd, dt.date(2025, 3, 1), min(dt.date(2025, 11, 30), horizon()))
        workers = int(min(9000, max(150, round(math.exp(rnd.gauss(math.log(1100), 0.6)), -1))))
        female_share = min(0.6, max(0.04, rnd.betavariate(3, 8.5)))
        urdu = rnd.random() < URDU_SHARE
        area = rnd.choice(people.INDUSTRIAL_AREAS[city])
        created = stamp(rnd, enrolled - dt.timedelta(days=rnd.randint(5, 60)))
        updated = created
        if rnd.random() < 0.45:  # worker numbers or addresses edited later
            updated = stamp(rnd, _day(rnd, created.date() + dt.timedelta(days=30), horizon()))
        deleted_at = None
        if deleted:
            deleted_at = stamp(rnd, min(created.date() + dt.timedelta(days=rnd.randint(1, 40)), horizon()))
            deleted_at = max(deleted_at, created + dt.timedelta(hours=1))
            updated = deleted_at
        out.append(
            Factory(
                factory_id=fid,
                block=block,
                name=people.factory_name(seed, fid, urdu),
                urdu=urdu,
                city=city,
                address=f"Plot {rnd.randint(1, 400)}-{rnd.choice('ABCDE')}, {area}, {city}",
                sector=rnd.choices(("garment", "textile", "footwear"), (0.8, 0.15, 0.05))[0],
                enrolled_on=enrolled,
                exited_on=exited,
                exit_reason=reason,
                workers_total=workers,
                workers_female=round(workers * female_share),
                os_id=None if rnd.random() < 0.15 else people.os_id(seed, fid, max(2019, enrolled.year - 1)),
                created_at=created,
                updated_at=updated,
                deleted_at=deleted_at,
                effect=min(1.6, max(0.45, rnd.gauss(1.0, 0.25))),
                assessment_dates=dates,
            )
        )
    return out


def build(seed: int, scale: int) -> Plan:
    """The factories and assessments of a demo programme of ``scale`` blocks."""
    if scale < 1:
        raise ValueError("scale must be at least 1")
    factories: list[Factory] = []
    records: list[tuple[dt.date, int, str, int, str, Factory]] = []
    per_block = FACTORIES_PER_BLOCK + DELETED_FACTORIES_PER_BLOCK
    for block in range(scale):
        block_factories = _block_factories(seed, block, FIRST_FACTORY_ID + block * per_block)
        factories.extend(block_factories)
        rnd = random.Random(f"{seed}:quirks:{block}")
        assessed = [f for f in block_factories if f.assessment_dates]
        for f in assessed:
            for cycle, day in enumerate(f.assessment_dates, start=1):
                records.append((day, f.factory_id, "counted", cycle, f.name, f))
        for f in rnd.sample(assessed, SUPERSEDED_PER_BLOCK):
            cycle = rnd.randint(1, len(f.assessment_dates))
            day = max(EARLIEST, f.assessment_dates[cycle - 1] - dt.timedelta(days=rnd.randint(20, 60)))
            records.append((day, f.factory_id, "superseded", cycle, f.name, f))
        for j, f in enumerate(rnd.sample(assessed, OBSOLETE_PER_BLOCK)):
            old_id = OBSOLETE_ID_BASE + block * OBSOLETE_PER_BLOCK + j
            day = max(EARLIEST, f.assessment_dates[0] - dt.timedelta(days=rnd.randint(0, 20)))
            records.append((day, old_id, "obsolete", 1, f"{f.name} (Obsolete)", f))
    records.sort(key=lambda r: (r[0], r[1], r[2]))
    assessments = []
    counted: dict[tuple[int, int], Assessment] = {}  # (factory, cycle): earlier cycles come first
    for i, (day, fid, kind, cycle, name, f) in enumerate(records):
        previous = counted.get((fid, cycle - 1)) if kind != "obsolete" else None
        a = Assessment(
            FIRST_QUEST_ID + i,
            fid,
            name,
            day,
            cycle,
            kind,
            f.effect,
            f.workers_total,
            f.workers_female,
            previous,
        )
        if kind == "counted":
            counted[(fid, cycle)] = a
        assessments.append(a)
    return Plan(seed, scale, factories, assessments)
