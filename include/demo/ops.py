"""The case-management database (docs/SOURCES.md): tables created and filled with ``COPY``.

Rows are generated as they are copied, block by block, so memory stays bounded by one block of
sessions and the per-factory lists of people (packed integers). Per block (scale 1): 1,200 advisory
visits and 500 training sessions that are not deleted, plus a few soft-deleted ones; about 20 people
per session, of whom about 28% attended an earlier session of their factory.
"""

from __future__ import annotations

import datetime as dt
import random
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources

from psycopg import sql

from include import db
from include.contract import CASE_MANAGEMENT, CASE_MANAGEMENT_TABLES
from include.demo import catalogue, people, remediation
from include.demo.exports import point_outcomes
from include.demo.plan import PROGRAMME_START, Factory, Plan, horizon, stamp

VERSION = 4  # bump when the generator's output changes: a database of another version is rewritten
TABLES = CASE_MANAGEMENT_TABLES
VISITS_PER_BLOCK = 1200
DELETED_VISITS_PER_BLOCK = 24
SESSIONS_PER_BLOCK = 500
DELETED_SESSIONS_PER_BLOCK = 10
MULTI_FACTORY_SHARE = 0.3
REPEAT_SHARE = 0.28  # a participant who already attended a session of their factory
GENDER_WORDS_FROM = dt.date(2023, 1, 1)  # older rows spell gender 'F' / 'M'

# code: (title, days, share of sessions, share of women among new trainees, roles and weights)
COURSES = {
    "SST": ("Supervisory Skills Training", 2, 0.25, 0.30, {"line_supervisor": 8, "worker": 1, "manager": 1}),
    "GEAR": ("Gender Equality and Returns", 3, 0.12, 0.80, {"worker": 6, "line_supervisor": 4}),
    "WPC": (
        "Workplace Cooperation",
        1,
        0.15,
        0.35,
        {"picc_member": 5, "union_rep": 1, "worker": 2, "manager": 2},
    ),
    "OSH": (
        "Occupational Safety and Health",
        2,
        0.22,
        0.22,
        {"worker": 4, "line_supervisor": 3, "manager": 2, "hr": 1},
    ),
    "HRM": ("Human Resource Management", 2, 0.12, 0.30, {"hr": 6, "manager": 4}),
    "HAR": ("Harassment Prevention", 1, 0.14, 0.50, {"worker": 4, "hr": 2, "manager": 2, "picc_member": 2}),
}
ROLES = ("worker", "line_supervisor", "manager", "hr", "union_rep", "picc_member")
CLUSTER_TOPIC_WEIGHTS = {
    "Occupational Safety and Health": 6,
    "Working Time": 4,
    "Compensation": 4,
    "Contracts and Human Resources": 3,
    "Freedom of Association and Collective Bargaining": 1.5,
    "Discrimination": 1.5,
    "Child Labour": 0.5,
    "Forced Labour": 0.5,
}
_CITY_CODE = {"Karachi": "KHI", "Lahore": "LHE", "Faisalabad": "FSD"}


class NotDemoData(RuntimeError):
    """The target database holds case-management rows that the demo generator did not write."""


def _day(rnd: random.Random, start: dt.date, end: dt.date) -> dt.date:
    return start + dt.timedelta(days=rnd.randint(0, max(0, (end - start).days)))


def _edited(rnd: random.Random, created: dt.datetime, share: float, days: tuple[int, int]) -> dt.datetime:
    """``updated_at``: the creation time, or for ``share`` of rows a later edit."""
    if rnd.random() >= share:
        return created
    return max(created, stamp(rnd, created.date() + dt.timedelta(days=rnd.randint(*days))))


def _later(when: dt.datetime, delta: dt.timedelta) -> dt.datetime:
    """``when + delta``, but not past the horizon's last minute (unless ``when`` already is)."""
    end = dt.datetime.combine(horizon(), dt.time(23, 59), tzinfo=dt.UTC)
    return max(when, min(when + delta, end))


def _window(f: Factory) -> tuple[dt.date, dt.date]:
    return max(f.enrolled_on, PROGRAMME_START), f.active_until()


# --------------------------------------------------------------------------- table rows


def _deleted_visit(
    rnd: random.Random, visit_id: int, f: Factory, window: tuple[dt.date, dt.date], topic: str
) -> tuple:
    """A soft-deleted double entry of a visit to ``f``: deleted within 20 days of its creation."""
    created = stamp(rnd, _day(rnd, *window))
    gone = _later(created, dt.timedelta(days=rnd.randint(0, 20), hours=1))
    advisor = f"ADV-{_CITY_CODE[f.city]}-{1 + f.factory_id % 5:02d}"
    return (
        visit_id,
        f.factory_id,
        created.date(),
        "continued",
        "onsite",
        advisor,
        topic,
        created,
        gone,
        gone,
    )


def factory_rows(plan: Plan) -> Iterator[tuple]:
    for f in plan.factories:
        yield (
            f.factory_id,
            f.name,
            f.os_id,
            f.address,
            f.city,
            f.province,
            f.sector,
            f.enrolled_on,
            f.exited_on,
            f.exit_reason,
            f.workers_total,
            f.workers_female,
            f.created_at,
            f.updated_at,
            f.deleted_at,
        )


def brand_rows(plan: Plan) -> Iterator[tuple]:
    rnd = random.Random(f"{plan.seed}:brands")
    for block in range(plan.scale):
        for i, name in enumerate(people.BRANDS):
            created = stamp(rnd, _day(rnd, dt.date(2020, 6, 1), dt.date(2022, 12, 31)))
            label = name if block == 0 else f"{name} {block + 1}"
            yield (block * len(people.BRANDS) + i + 1, label, created, _edited(rnd, created, 0.2, (30, 900)))


def factory_brand_rows(plan: Plan) -> Iterator[tuple]:
    n = len(people.BRANDS)
    weights = [1 / (i + 1) ** 0.7 for i in range(n)]  # a few large buyers, a long tail
    for block in range(plan.scale):
        rnd = random.Random(f"{plan.seed}:factory_brands:{block}")
        for f in plan.live_factories(block):
            chosen: set[int] = set()
            for _ in range(rnd.choices((1, 2, 3, 4), (0.35, 0.35, 0.2, 0.1))[0]):
                chosen.add(rnd.choices(range(n), weights)[0])
            for b in sorted(chosen):
                brand_id = block * n + b + 1
                since = f.enrolled_on - dt.timedelta(days=rnd.randint(0, 900))
                until = None
                if rnd.random() < 0.15:
                    until = min(since + dt.timedelta(days=rnd.randint(200, 1200)), horizon())
                created = stamp(rnd, f.enrolled_on)
                yield (f.factory_id, brand_id, since, until, created, _edited(rnd, created, 0.15, (30, 600)))
                if until and until < horizon() - dt.timedelta(days=60) and rnd.random() < 0.3:
                    # the buyer came back: a second relationship with the same brand, a new 'since'
                    again = until + dt.timedelta(days=rnd.randint(30, 300))
                    if again <= horizon():
                        created = stamp(rnd, again)
                        yield (f.factory_id, brand_id, again, None, created, created)


def _allocate(total: int, weights: list[float]) -> list[int]:
    """Integers proportional to weights that add up to exactly ``total`` (largest remainders)."""
    s = sum(weights)
    raw = [total * w / s for w in weights]
    counts = [int(r) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: (counts[i] - raw[i], i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def visit_rows(plan: Plan) -> Iterator[tuple]:
    clusters = list(CLUSTER_TOPIC_WEIGHTS)
    topic_weights = list(CLUSTER_TOPIC_WEIGHTS.values())
    visit_id = 0
    for block in range(plan.scale):
        rnd = random.Random(f"{plan.seed}:visits:{block}")
        live = plan.live_factories(block)
        windows = [_window(f) for f in live]
        counts = _allocate(VISITS_PER_BLOCK, [max(1, (b - a).days) for a, b in windows])
        deleted = set(
            rnd.sample(range(VISITS_PER_BLOCK + DELETED_VISITS_PER_BLOCK), DELETED_VISITS_PER_BLOCK)
        )
        extra = iter(rnd.choices(range(len(live)), k=DELETED_VISITS_PER_BLOCK))
        slot = 0
        for i, f in enumerate(live):
            n = counts[i]
            advisor = f"ADV-{_CITY_CODE[f.city]}-{1 + f.factory_id % 5:02d}"
            dates = sorted(_day(rnd, *windows[i]) for _ in range(n))
            for k, day in enumerate(dates):
                # deleted extras are double entries of real visits, spread over the block
                while slot in deleted:
                    slot += 1
                    j = next(extra)
                    visit_id += 1
                    yield _deleted_visit(rnd, visit_id, live[j], windows[j], "Occupational Safety and Health")
                slot += 1
                visit_id += 1
                topics = sorted(
                    set(rnd.choices(clusters, topic_weights, k=rnd.randint(1, 3))), key=clusters.index
                )
                virtual = rnd.random() < (0.3 if day.year <= 2022 else 0.1)  # covid-era habits fade
                created = stamp(rnd, day + dt.timedelta(days=rnd.randint(0, 5)))
                yield (
                    visit_id,
                    f.factory_id,
                    day,
                    "initial" if k < 2 else "continued",
                    "virtual" if virtual else "onsite",
                    advisor,
                    ";".join(topics),
                    created,
                    _edited(rnd, created, 0.3, (5, 60)),
                    None,
                )
        for j in extra:  # deleted slots past the last live visit
            visit_id += 1
            yield _deleted_visit(rnd, visit_id, live[j], windows[j], "Working Time")


def course_rows() -> Iterator[tuple]:
    for code, (title, days, *_rest) in COURSES.items():
        yield (code, title, days)


@dataclass
class _Session:
    starts_on: dt.date
    course: str
    factory_id: int | None
    city: str
    attendees_from: list[int]  # factory ids the participants come from
    deleted: bool


def _block_sessions(plan: Plan, block: int) -> list[_Session]:
    rnd = random.Random(f"{plan.seed}:sessions:{block}")
    live = plan.live_factories(block)
    windows = [_window(f) for f in live]
    weights = [max(1, (b - a).days) for a, b in windows]
    codes = list(COURSES)
    course_weights = [c[2] for c in COURSES.values()]
    end = horizon() - dt.timedelta(days=7)
    out = []
    total = SESSIONS_PER_BLOCK + DELETED_SESSIONS_PER_BLOCK
    deleted = set(rnd.sample(range(total), DELETED_SESSIONS_PER_BLOCK))
    for i in range(total):
        course = rnd.choices(codes, course_weights)[0]
        if rnd.random() < MULTI_FACTORY_SHARE:
            city = rnd.choices([c for c, _, _ in people.CITIES], [s for _, _, s in people.CITIES])[0]
            day = _day(rnd, PROGRAMME_START, end)
            active = [
                f.factory_id
                for f, (a, b) in zip(live, windows, strict=True)
                if f.city == city and a <= day <= b
            ]
            if len(active) >= 2:
                chosen = rnd.sample(active, min(len(active), rnd.randint(2, 6)))
                out.append(_Session(day, course, None, city, chosen, i in deleted))
                continue
        j = rnd.choices(range(len(live)), weights)[0]
        f = live[j]
        day = min(_day(rnd, *windows[j]), end)
        out.append(_Session(day, course, f.factory_id, f.city, [f.factory_id], i in deleted))
    out.sort(key=lambda s: (s.starts_on, s.course, s.factory_id or 0, s.attendees_from))
    return out


def _session_stamps(
    rnd: random.Random, s: _Session, days: int
) -> tuple[dt.datetime, dt.datetime, dt.datetime | None]:
    created = stamp(rnd, s.starts_on - dt.timedelta(days=rnd.randint(3, 30)))
    updated = _edited(rnd, created, 0.35, (1, 45))
    if s.deleted:
        gone = max(updated, stamp(rnd, s.starts_on + dt.timedelta(days=days + rnd.randint(0, 10))))
        return created, gone, gone
    return created, updated, None


def training_rows(plan: Plan) -> tuple[Iterator[tuple], Iterator[tuple]]:
    """(sessions, participants) row streams; the participant stream must be consumed after sessions."""

    def sessions() -> Iterator[tuple]:
        session_id = 0
        for block in range(plan.scale):
            rnd = random.Random(f"{plan.seed}:session_rows:{block}")
            for s in _block_sessions(plan, block):
                session_id += 1
                title, days, *_ = COURSES[s.course]
                created, updated, gone = _session_stamps(rnd, s, days)
                yield (
                    session_id,
                    s.course,
                    s.factory_id,
                    s.city,
                    s.starts_on,
                    s.starts_on + dt.timedelta(days=days - 1),
                    f"TR-{1 + session_id % 9:02d}",
                    created,
                    updated,
                    gone,
                )

    def participants() -> Iterator[tuple]:
        session_id = 0
        participant_id = 0
        person_no = 0
        city_of = {f.factory_id: f.city for f in plan.factories}
        role_index = {r: i for i, r in enumerate(ROLES)}
        for block in range(plan.scale):
            rnd = random.Random(f"{plan.seed}:participants:{block}")
            pools: dict[int, array] = {}  # factory -> packed (person_no, gender, role) of its trainees
            for s in _block_sessions(plan, block):
                session_id += 1
                _, days, _, female_share, roles = COURSES[s.course]
                role_names, role_weights = list(roles), list(roles.values())
                ends = s.starts_on + dt.timedelta(days=days - 1)
                seen: set[int] = set()
                for _ in range(rnd.randint(13, 27)):
                    fid = s.attendees_from[rnd.randrange(len(s.attendees_from))]
                    pool = pools.setdefault(fid, array("q"))
                    code = -1
                    if pool and rnd.random() < REPEAT_SHARE:
                        code = pool[rnd.randrange(len(pool))]
                        if code in seen:
                            code = -1
                    if code < 0:
                        person_no += 1
                        gender = 1 if rnd.random() < female_share else (2 if rnd.random() < 0.005 else 0)
                        role = role_index[rnd.choices(role_names, role_weights)[0]]
                        code = person_no * 32 + gender * 8 + role
                        pool.append(code)
                    seen.add(code)
                    no, gender, role = code >> 5, (code >> 3) & 3, code & 7
                    name, cnic, phone = people.person(plan.seed, no, gender, city_of[fid])
                    if s.starts_on < GENDER_WORDS_FROM:
                        gender_text = ("M", "F", "other")[gender]
                    else:
                        gender_text = ("male", "female", "other")[gender]
                    attended = rnd.random() < 0.94
                    pre = post = None
                    if attended and rnd.random() < 0.8:
                        pre = min(95, max(5, round(rnd.gauss(55, 15))))
                        post = min(100, max(0, pre + round(rnd.gauss(14, 8))))
                    participant_id += 1
                    created = stamp(rnd, ends + dt.timedelta(days=rnd.randint(0, 7)))
                    updated = _edited(rnd, created, 0.25, (3, 90))
                    gone = None
                    if rnd.random() < 0.01:  # entered twice by mistake, then removed
                        removed = _later(created, dt.timedelta(hours=rnd.randint(1, 400)))
                        gone = updated = max(updated, removed)
                    yield (
                        participant_id,
                        session_id,
                        f"PK-P{no:07d}",
                        name,
                        cnic,
                        phone,
                        gender_text,
                        ROLES[role],
                        fid,
                        attended,
                        pre,
                        post,
                        created,
                        updated,
                        gone,
                    )

    return sessions(), participants()


def picc_rows(plan: Plan) -> Iterator[tuple]:
    """PICC meetings: formed months after enrolment, about quarterly with gaps (remediation.py)."""
    meeting_id = 0
    for block in range(plan.scale):
        rnd = random.Random(f"{plan.seed}:picc:{block}")
        for f in plan.live_factories(block):
            for day, workers, managers, women in remediation.picc_meetings(rnd, f):
                meeting_id += 1
                created = stamp(rnd, day + dt.timedelta(days=rnd.randint(0, 10)))
                yield (
                    meeting_id,
                    f.factory_id,
                    day,
                    workers,
                    managers,
                    women,
                    created,
                    _edited(rnd, created, 0.1, (5, 60)),
                )


def improvement_rows(plan: Plan) -> Iterator[tuple]:
    """An item per non-compliant point of each counted assessment; its fate from remediation.item."""
    rnd = random.Random(f"{plan.seed}:improvement")
    cluster_of = {cp: cl for cl, cp in catalogue.read_points_cached()}
    item_id = 0
    for a in plan.assessments:
        if a.kind != "counted":
            continue
        for cp, status in point_outcomes(plan.seed, a).items():
            if status != "nc" or cp not in cluster_of:
                continue
            item_id += 1
            it = remediation.item(plan.seed, a, cp)
            created = stamp(rnd, it.raised_on)
            if it.closed_on:
                updated = stamp(rnd, it.closed_on)
            else:
                updated = _edited(rnd, created, 0.4, (10, 200))
            yield (
                item_id,
                a.factory_id,
                a.cycle,
                cp,
                it.status,
                it.raised_on,
                it.due_on,
                it.closed_on,
                created,
                max(created, updated),
            )


# --------------------------------------------------------------------------- loading


def _written_columns(table: str) -> tuple[str, ...]:
    """The columns of the demo's rows of ``table``, in order: the contract's (include/contract.py),
    and the demo source's own ``created_at`` (not in the contract, never extracted) just before
    ``updated_at``, as in ``ops_schema.sql``."""
    columns = list(CASE_MANAGEMENT[table].columns)
    if "updated_at" in columns:
        columns.insert(columns.index("updated_at"), "created_at")
    return tuple(columns)


COLUMNS = {table: _written_columns(table) for table in TABLES}
"""Per case-management table, the columns its demo rows hold (the order of the row tuples)."""


def _schema_parts() -> tuple[str, str]:
    text = resources.files("include.demo").joinpath("ops_schema.sql").read_text(encoding="utf-8")
    before, marker, after = text.partition("-- @after-load")
    return before, marker + after


def _state(conn) -> tuple[dict[str, int], tuple | None]:
    counts = {}
    for table in TABLES:
        exists = conn.execute("select to_regclass(%s)", (f"public.{table}",)).fetchone()[0]
        if exists:
            counts[table] = conn.execute(
                sql.SQL("select count(*) from {}").format(sql.Identifier("public", table))
            ).fetchone()[0]
    marker = None
    if conn.execute("select to_regclass('public.demo_generation')").fetchone()[0]:
        marker = conn.execute(
            "select seed, scale, version from public.demo_generation order by generated_at desc limit 1"
        ).fetchone()
    return counts, marker


def _copy(conn, table: str, rows) -> int:
    cols = COLUMNS[table]
    stmt = sql.SQL("copy {} ({}) from stdin").format(
        sql.Identifier("public", table), sql.SQL(", ").join(map(sql.Identifier, cols))
    )
    n = 0
    with conn.cursor() as cur, cur.copy(stmt) as copy:
        for row in rows:
            copy.write_row(row)
            n += 1
    return n


def load(url: str, plan: Plan, only_if_empty: bool = True) -> dict:
    """Create the tables and fill them; skipped when they already hold this seed's programme.

    ``only_if_empty``: touch nothing if any contract table has rows. Otherwise a database that
    holds another demo programme (seed, scale or generator version) is rewritten; one whose rows
    were not written by the generator raises :class:`NotDemoData` rather than being overwritten.
    """
    db.ensure_database(url)
    with db.connect(url) as conn:
        counts, marker = _state(conn)
        populated = any(counts.values())
        if populated and only_if_empty:
            return {"skipped": "case-management tables are not empty", "rows": counts}
        if populated and marker is None:
            raise NotDemoData(
                f"{db.parts(url).get('dbname')}: holds case-management rows not written by the demo"
            )
        if populated and marker == (plan.seed, plan.scale, VERSION) and len(counts) == len(TABLES):
            return {
                "skipped": f"already holds the demo programme (seed {plan.seed}, scale {plan.scale})",
                "rows": counts,
            }
        for table in (*TABLES, "demo_generation"):
            conn.execute(sql.SQL("drop table if exists {}").format(sql.Identifier("public", table)))
        before, after = _schema_parts()
        conn.execute(before)
        sessions, participants = training_rows(plan)
        rows = {
            "factories": _copy(conn, "factories", factory_rows(plan)),
            "brands": _copy(conn, "brands", brand_rows(plan)),
            "factory_brands": _copy(conn, "factory_brands", factory_brand_rows(plan)),
            "advisory_visits": _copy(conn, "advisory_visits", visit_rows(plan)),
            "courses": _copy(conn, "courses", course_rows()),
            "training_sessions": _copy(conn, "training_sessions", sessions),
            "training_participants": _copy(conn, "training_participants", participants),
            "picc_meetings": _copy(conn, "picc_meetings", picc_rows(plan)),
            "improvement_items": _copy(conn, "improvement_items", improvement_rows(plan)),
        }
        conn.execute(after)
        conn.execute(
            "insert into public.demo_generation (seed, scale, version) values (%s, %s, %s)",
            (plan.seed, plan.scale, VERSION),
        )
        for table in TABLES:
            conn.execute(sql.SQL("analyze {}").format(sql.Identifier("public", table)))
    return {"rows": rows}
