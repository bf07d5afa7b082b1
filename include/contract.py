"""The data contract's sources (docs/SOURCES.md), defined once, as typed table specs.

Each source table is a :class:`TableSpec`: its name, its columns with their SQL types (in contract
order, the order of its raw table), its key, its change-time columns and its personal columns. The
demo generator writes sources with these names and the extractors read them, so both sides take
them from here. The raw DDL (``include/sql/warehouse.sql``), the demo's case-management schema
(``include/demo/ops_schema.sql``) and the GX suites' shape and key rules (``expectations/``) are
written by hand and checked against these specs by ``tests/integration/test_source_specs.py``; the
extraction column lists (:mod:`include.extract.case_management`), the export columns and the
columns of the demo's case-management rows (:data:`include.demo.ops.COLUMNS`) are these specs.

Adding a source table: a spec here, its raw table in ``warehouse.sql``, its suite in
``expectations/`` (the test says what disagrees).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TableSpec:
    """One source table of the contract, as loaded into ``raw``."""

    name: str  # the source table (case management: ``public.<name>``) or the export entity
    column_types: tuple[tuple[str, str], ...]  # (column, PostgreSQL type) in contract order
    key: tuple[str, ...]  # what identifies a row (a version of it, for case management)
    change_columns: tuple[str, ...] = ()  # change time: greatest of these (empty: read whole)
    personal: tuple[str, ...] = ()  # personal data: never outside raw unmasked
    raw_prefix: str = "cm_"  # raw table = raw.<prefix><name>

    def __post_init__(self) -> None:
        names = self.columns
        unknown = [c for c in (*self.key, *self.change_columns, *self.personal) if c not in names]
        if unknown or len(set(names)) != len(names):
            raise ValueError(f"{self.name}: key, change or personal columns not among its columns: {unknown}")

    @property
    def table(self) -> str:
        """The source table's name (as ``extract_ops`` has always called it)."""
        return self.name

    @property
    def columns(self) -> list[str]:
        """Column names in contract order."""
        return [c for c, _ in self.column_types]

    @property
    def types(self) -> dict[str, str]:
        return dict(self.column_types)

    @property
    def entity(self) -> str:
        """The raw table without schema, also the GX suite's name (``expectations/<entity>.json``)."""
        return f"{self.raw_prefix}{self.name}"

    @property
    def raw_table(self) -> str:
        return f"raw.{self.entity}"

    @property
    def source_object(self) -> str:
        return f"public.{self.name}"


def _columns(spec: str) -> tuple[tuple[str, str], ...]:
    """``"a int, b text"`` → ((a, int), (b, text)): the specs below read like DDL."""
    return tuple(tuple(part.split()) for part in spec.split(","))  # type: ignore[misc]


_AUDITED = "updated_at timestamptz, deleted_at timestamptz"

EXPORT = TableSpec(
    "assessment_export_rows",
    tuple(
        (c, "text")
        for c in (
            "Country",
            "Factory.Assessed.ID",
            "Factory.Assessed.Name",
            "Quest.ID",
            "Assesment.Start.Date",  # sic: the global system's spelling
            "Cycle",
            "Question.type",
            "Question.ID",
            "Q.Label",
            "CP",
            "Cluster",
            "Finding",
            "Tags",
            "TQ.Name",
        )
    ),
    key=("Quest.ID", "Question.ID"),
    raw_prefix="",
)
"""An assessment export (docs/SOURCES.md): every value text, as received; one row per assessment
and question."""

CASE_MANAGEMENT: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        TableSpec(
            "factories",
            _columns(
                "factory_id int, name text, os_id text, address text, city text, province text, "
                "sector text, enrolled_on date, exited_on date, exit_reason text, workers_total int, "
                f"workers_female int, {_AUDITED}"
            ),
            key=("factory_id",),
            change_columns=("updated_at", "deleted_at"),
        ),
        TableSpec(
            "brands",
            _columns("brand_id int, name text, updated_at timestamptz"),
            key=("brand_id",),
            change_columns=("updated_at",),
        ),
        TableSpec(
            "factory_brands",
            _columns("factory_id int, brand_id int, since date, until date, updated_at timestamptz"),
            key=("factory_id", "brand_id", "since"),
            change_columns=("updated_at",),
        ),
        TableSpec(
            "advisory_visits",
            _columns(
                "visit_id int, factory_id int, visit_date date, phase text, mode text, "
                f"advisor_code text, topics text, {_AUDITED}"
            ),
            key=("visit_id",),
            change_columns=("updated_at", "deleted_at"),
        ),
        TableSpec("courses", _columns("course_code text, title text, days numeric"), key=("course_code",)),
        TableSpec(
            "training_sessions",
            _columns(
                "session_id int, course_code text, factory_id int, city text, starts_on date, "
                f"ends_on date, trainer_code text, {_AUDITED}"
            ),
            key=("session_id",),
            change_columns=("updated_at", "deleted_at"),
        ),
        TableSpec(
            "training_participants",
            _columns(
                "participant_id int, session_id int, person_ref text, full_name text, cnic text, "
                "phone text, gender text, role text, factory_id int, attended boolean, "
                f"pre_score numeric, post_score numeric, {_AUDITED}"
            ),
            key=("participant_id",),
            change_columns=("updated_at", "deleted_at"),
            personal=("full_name", "cnic", "phone"),
        ),
        TableSpec(
            "picc_meetings",
            _columns(
                "meeting_id int, factory_id int, held_on date, workers_present int, "
                "managers_present int, women_present int, updated_at timestamptz"
            ),
            key=("meeting_id",),
            change_columns=("updated_at",),
        ),
        TableSpec(
            "improvement_items",
            _columns(
                "item_id int, factory_id int, cycle int, compliance_point text, status text, "
                "raised_on date, due_on date, closed_on date, updated_at timestamptz"
            ),
            key=("item_id",),
            change_columns=("updated_at",),
        ),
    )
}
"""Tables of the case-management database (docs/SOURCES.md), in extraction order (referenced tables first)."""

EXPORT_COLUMNS = tuple(EXPORT.columns)
"""Columns of an assessment export (docs/SOURCES.md), spelled exactly as the global assessment system does."""

CASE_MANAGEMENT_TABLES = tuple(CASE_MANAGEMENT)
"""Tables of the case-management database (docs/SOURCES.md), in extraction order (referenced tables first)."""

RAW_TABLES = (EXPORT.entity, *(spec.entity for spec in CASE_MANAGEMENT.values()))
"""The ``raw`` schema's tables: one for the exports, one per case-management table."""

SOURCES = (EXPORT, *CASE_MANAGEMENT.values())
"""Every source table's spec."""
