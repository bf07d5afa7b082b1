"""Build the static site (``SITE_DIR``, default ``data/site/``) from the marts, ``audit`` and
``public_reporting``.

Pages are Jinja2 templates (``templates/``); charts are Plotly figures whose JSON is embedded in the
page and drawn by the vendored ``plotly.min.js`` (copied from the ``plotly`` package), so every page
opens from disk (``file://``) and asks nothing of any other host. Every figure carries
``data-metric="<column>"`` (and ``data-period``, ``data-cycle``, ``data-panel``, ``data-factory``,
``data-compliance-point`` where they apply) and ``data-value`` (the cell's exact value), so tests
can compare each figure with its table cell; each chart has its table beside it or behind a toggle,
and alt text.

Pages: ``index.html`` (programme KPIs against the reported figures), ``compliance.html``
(non-compliance rate per compliance point and cycle, panel selector; clusters over cycles),
``dialogue.html`` (only when the social-dialogue / remediation marts exist), ``quality.html``
(from ``audit``), ``factories/`` (one page per factory), and ``public/`` (the transparency page:
only ``public_reporting.factory_public_summary`` and ``factory_public_findings``).

The same build makes the GX Data Docs work offline (:func:`offline_data_docs`) and links the dbt docs.
The folder is written beside the old one and swapped in at the end: a reader never sees half a site.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import re
import shutil
import statistics
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from include import db
from include.config import settings

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
GX_VENDOR = HERE / "vendor" / "gx"
REPORTED_FIGURES = HERE / "reported_figures.json"

KPI_COLUMNS = (
    ("factories_engaged", "Factories engaged"),
    ("assessments", "Assessments"),
    ("advisory_visits", "Advisory visits"),
    ("training_sessions", "Training sessions"),
    ("training_participants", "People trained"),
    ("training_participations", "Training participations"),
    ("female_participant_share", "Female share of people trained"),
)
DIALOGUE_KPI_COLUMNS = (
    ("picc_meetings", "PICC meetings"),
    ("factories_with_picc_meeting", "Factories with a PICC meeting"),
    ("improvement_items_raised", "Improvement items raised"),
    ("improvement_items_completed", "Improvement items completed"),
    ("women_supervisors_trained", "Women supervisors trained"),
)
"""Social-dialogue and remediation KPIs: shown when programme_kpis has them."""
SHARE_COLUMNS = {
    "female_participant_share",
    "noncompliance_rate",
    "cp_noncompliance_rate",
    "female_worker_share",
    "completion_rate",
    "recheck_compliance_rate",
    "women_share_of_attendees",
    "women_representation_gap",
}
DIALOGUE_MARTS = (
    "factory_social_dialogue",
    "factory_remediation",
    "fct_picc_meeting",
    "fct_improvement_item",
)
"""Any of these marts shows the dialogue page; the first two are its tables (and each factory's)."""
DIALOGUE_TABLES = ("factory_social_dialogue", "factory_remediation")


@dataclass(frozen=True)
class SiteResult:
    path: Path
    pages: int
    seconds: float


# --------------------------------------------------------------------------- formatting


def fmt(value, column: str = "") -> str:
    """How a cell is shown: thousands separators, shares as percentages, dates ISO, null as '–'."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Decimal):
        value = float(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        if column in SHARE_COLUMNS or column.endswith(("_share", "_rate")):
            return f"{value * 100:.1f} %"
        return f"{value:,.1f}"
    if isinstance(value, int):
        return str(value) if column.endswith("_id") or column in ("cycle", "year") else f"{value:,}"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def raw(value) -> str:
    """The exact value behind a figure (``data-value``): repr of floats, ISO dates, '' for null."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal | float):
        return repr(float(value))
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _json_default(value):
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(type(value))


def _dumps(obj) -> str:
    # Safe inside <script type="application/json">: no "</" can close the element.
    return json.dumps(obj, default=_json_default, separators=(",", ":")).replace("</", "<\\/")


# --------------------------------------------------------------------------- reading


def _rows(conn, query: str, params=()) -> list[dict]:
    with conn.cursor() as cur:
        cur.execute(query, params)
        names = [d.name for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _rows_streamed(conn, query: str) -> list[dict]:
    """The rows of ``query``, fetched with a server-side cursor (inside the caller's transaction), so
    that the driver never holds a large result twice (as tuples and as dicts)."""
    with conn.cursor(name="site_rows_streamed") as cur:
        cur.itersize = 10_000
        cur.execute(query)
        names = [d.name for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur]


def _existing_tables(conn, schema: str) -> set[str]:
    return {
        r["table_name"]
        for r in _rows(
            conn, "select table_name from information_schema.tables where table_schema = %s", (schema,)
        )
    }


def read_staff(conn) -> dict:
    """Everything the staff pages show: marts and audit (never public_reporting)."""
    marts = _existing_tables(conn, "marts")
    data: dict = {
        "kpis": _rows(conn, "select * from marts.programme_kpis order by period = 'all', period"),
        "nc": _rows(
            conn,
            "select panel, cycle, cluster, compliance_point, factories_assessed, factories_noncompliant, "
            "noncompliance_rate from marts.cp_noncompliance_rate "
            "order by panel, cluster, compliance_point, cycle",
        ),
        "factories": _rows(conn, "select * from marts.dim_factory order by factory_id"),
        "panel": _rows(conn, "select * from marts.factory_cycle_panel order by factory_id, cycle"),
    }
    # Only what a page shows: fct_picc_meeting's rows never are (its existence shows the dialogue
    # page), nor completed improvement items (3/4 of 179,178 rows at scale 100, ~170 MiB as dicts).
    data["dialogue_marts"] = [name for name in DIALOGUE_MARTS if name in marts]
    data["dialogue"] = {
        name: _rows(conn, f"select * from marts.{name}")  # noqa: S608 (names from a fixed tuple)
        for name in DIALOGUE_TABLES
        if name in marts
    }
    data["open_items"] = (
        _rows_streamed(conn, "select * from marts.fct_improvement_item where not is_completed")
        if "fct_improvement_item" in marts
        else []
    )
    data["quality"] = read_quality(conn)
    return data


def read_quality(conn) -> dict:
    """The data-quality page: loads, quarantine, rejections, validation results, freshness."""
    audit = _existing_tables(conn, "audit")
    quarantine = _existing_tables(conn, "quarantine")
    out: dict = {"last_loads": [], "sources": [], "validation": [], "freshness": []}
    if "load_batches" in audit:
        out["last_loads"] = _rows(
            conn,
            "select distinct on (source, source_object) source, source_object, batch_id, status, "
            "rows_read, rows_loaded, rows_quarantined, finished_at "
            "from audit.load_batches order by source, source_object, batch_id desc",
        )
        rejected = "0"
        if "rejected_rows" in quarantine:
            rejected = (
                "(select count(*) from quarantine.rejected_rows r "
                "where r.batch_id in (select batch_id from audit.load_batches b2 where b2.source = b.source))"
            )
        out["sources"] = _rows(
            conn,
            "select source, count(*)::int as batches, "
            "count(*) filter (where status = 'loaded')::int as batches_loaded, "
            "count(*) filter (where status = 'rejected')::int as batches_rejected, "
            "coalesce(sum(rows_loaded) filter (where status = 'loaded'), 0)::bigint as rows_loaded, "
            "coalesce(sum(rows_quarantined), 0)::bigint as rows_quarantined, "
            f"{rejected}::bigint as rows_rejected "
            "from audit.load_batches b group by source order by source",
        )
        out["freshness"] = _rows(
            conn,
            "select source, max(finished_at) as last_loaded_at, "
            "round(extract(epoch from now() - max(finished_at)) / 3600.0, 1)::float as hours_since_last_load "
            "from audit.load_batches where status = 'loaded' group by source order by source",
        )
    if "validation_results" in audit:
        out["validation"] = _rows(
            conn,
            "select suite, count(*)::int as expectations_checked, "
            "count(*) filter (where not success and severity = 'warning')::int as warnings, "
            "count(*) filter (where not success and severity <> 'warning')::int as failures, "
            "max(validated_at) as last_validated_at "
            "from audit.validation_results group by suite order by suite",
        )
    return out


def read_public(conn) -> dict:
    """Everything the public pages show: the two public_reporting tables, nothing else."""
    return {
        "summary": _rows(conn, "select * from public_reporting.factory_public_summary order by factory_name"),
        "findings": _rows(
            conn,
            "select * from public_reporting.factory_public_findings "
            "order by factory_id, cluster, compliance_point, question_id",
        ),
    }


# --------------------------------------------------------------------------- figures


def _layout(title: str, **extra) -> dict:
    layout = {
        "title": {"text": title, "font": {"size": 15}},
        "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
        "font": {"family": "system-ui, sans-serif", "size": 12},
        "paper_bgcolor": "white",
        "plot_bgcolor": "white",
    }
    layout.update(extra)
    return layout


def _figure(traces: list[dict], layout: dict) -> dict:
    """A Plotly figure as plotly.js reads it (its JSON schema). Not built through
    ``plotly.graph_objects``: importing it costs 1-4 s, a third of the build; the browser tests
    check that every chart draws without a console error."""
    return {"data": traces, "layout": layout}


def kpi_figure(kpis: list[dict], reported: dict) -> dict:
    years = [r for r in kpis if r["period"] != "all"]
    x = [r["period"] for r in years]
    traces = [
        {"type": "bar", "name": label, "x": x, "y": [r[col] for r in years]}
        for col, label in KPI_COLUMNS[1:4]
    ]
    return _figure(traces, _layout("Services per year", barmode="group", yaxis={"title": {"text": "count"}}))


YLORRD = [[0, "#ffffcc"], [0.25, "#fed976"], [0.5, "#fd8d3c"], [0.75, "#e31a1c"], [1, "#800026"]]
"""Light yellow (0 %) to dark red (100 %)."""


def nc_figures(nc: list[dict]) -> dict[str, dict]:
    """One heatmap per panel: compliance point × cycle, colour = non-compliance rate."""
    by_panel: dict[str, list[dict]] = defaultdict(list)
    for r in nc:
        by_panel[r["panel"]].append(r)
    figures = {}
    for panel, rows in by_panel.items():
        cycles = sorted({r["cycle"] for r in rows})
        points = sorted({(r["cluster"] or "", r["compliance_point"]) for r in rows})
        cell = {(r["compliance_point"], r["cycle"]): r for r in rows}
        z, text = [], []
        for _, cp in points:
            rates = [cell.get((cp, c), {}).get("noncompliance_rate") for c in cycles]
            z.append([_float(v) for v in rates])
            text.append([fmt(v, "noncompliance_rate") for v in rates])
        trace = {
            "type": "heatmap",
            "x": [f"cycle {c}" for c in cycles],
            "y": [f"{cl} · {cp}" for cl, cp in points],
            "z": z,
            "text": text,
            "hovertemplate": "%{y}<br>%{x}: %{text}<extra></extra>",
            "zmin": 0,
            "zmax": 1,
            # explicit stops: plotly.js's named "YlOrRd" runs the other way round from plotly.py's
            "colorscale": YLORRD,
            "colorbar": {"title": {"text": "rate"}, "tickformat": ".0%"},
        }
        height = max(400, 18 * len(points) + 120)
        figures[panel] = _figure(
            [trace],
            _layout(
                f"Non-compliance rate per compliance point and cycle — panel {panel}",
                height=height,
                margin={"l": 380, "r": 20, "t": 50, "b": 40},
                yaxis={"autorange": "reversed", "automargin": True},
            ),
        )
    return figures


def cluster_rows(nc: list[dict], panel: str = "all") -> list[dict]:
    """Mean of the compliance points' non-compliance rates per cluster and cycle (one panel)."""
    groups: dict[tuple, list[float]] = defaultdict(list)
    for r in nc:
        if r["panel"] == panel and r["noncompliance_rate"] is not None:
            groups[(r["cluster"], r["cycle"])].append(float(r["noncompliance_rate"]))
    return [
        {"cluster": cl, "cycle": cy, "noncompliance_rate": statistics.fmean(v), "points": len(v)}
        for (cl, cy), v in sorted(groups.items(), key=lambda kv: (kv[0][0] or "", kv[0][1]))
    ]


def cluster_figure(rows: list[dict]) -> dict:
    by_cluster: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_cluster[r["cluster"] or "(no cluster)"].append(r)
    traces = [
        {
            "type": "scatter",
            "mode": "lines+markers",
            "name": cl,
            "x": [f"cycle {r['cycle']}" for r in rs],
            "y": [r["noncompliance_rate"] for r in rs],
        }
        for cl, rs in by_cluster.items()
    ]
    return _figure(
        traces,
        _layout(
            "Clusters over cycles (mean rate of their compliance points, all factories)",
            yaxis={"tickformat": ".0%", "rangemode": "tozero"},
            height=420,
        ),
    )


def factory_figure(history: list[dict]) -> dict:
    """A factory's non-compliance over its cycles (plain Plotly JSON: cheap for many pages)."""
    return {
        "data": [
            {
                "type": "bar",
                "x": [f"cycle {r['cycle']}" for r in history],
                "y": [_float(r.get("cp_noncompliance_rate")) for r in history],
                "name": "non-compliant points ÷ assessed points",
            }
        ],
        "layout": _layout(
            "Share of compliance points found non-compliant",
            yaxis={"tickformat": ".0%", "range": [0, 1]},
            height=320,
        ),
    }


def _float(v):
    return None if v is None else float(v)


# --------------------------------------------------------------------------- GX Data Docs offline

_GX_LINKS = {
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": "css/bootstrap.min.css",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": "js/bootstrap.min.js",
    "https://code.jquery.com/jquery-3.7.1.min.js": "js/jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": "js/popper.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": "css/bootstrap-table.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": "js/bootstrap-table.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.min.js": "js/bootstrap-table-filter-control.min.js",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.min.css": "css/bootstrap-table-filter-control.min.css",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.css": "css/bootstrap-table-filter-control.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/"
    "bootstrap-datepicker.min.css": "css/bootstrap-datepicker.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/"
    "bootstrap-datepicker.min.js": "js/bootstrap-datepicker.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": "css/fontawesome.min.css",
}
# Tags dropped: the 880 kB dark-mode stylesheet, and Vega (no validation page draws a chart).
_GX_DROP = re.compile(
    r'<link[^>]+href="https://cdn\.jsdelivr\.net/npm/@forevolve/bootstrap-dark[^"]*"[^>]*>\s*'
    r'|<script[^>]+src="https://cdn\.jsdelivr\.net/npm/vega[^"]*"[^>]*>\s*</script>\s*'
)
_GX_ATTR = re.compile(r'\s(?:integrity|crossorigin)="[^"]*"')
_GX_LOGO = re.compile(r'src="https://great-expectations-web-assets\.[^"]*/logo-long\.png[^"]*"')
_GX_URL = re.compile(r'(?:src|href)="(https?://[^"]+)"')


def offline_data_docs(data_docs: Path) -> int:
    """Point every GX Data Docs page at the vendored copies of its CDN assets; return pages changed.

    Idempotent: GX rewrites its index on every validation, so each site build runs this again.
    """
    if not data_docs.is_dir():
        return 0
    vendor = data_docs / "static" / "vendor"
    shutil.copytree(GX_VENDOR, vendor, dirs_exist_ok=True, ignore=shutil.ignore_patterns("README.md"))
    changed = 0
    for page in data_docs.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        if "https://" not in text:
            continue
        rel = os.path.relpath(vendor, page.parent)
        new = _GX_DROP.sub("", text)
        for url, local in _GX_LINKS.items():
            if url in new:
                new = new.replace(url, f"{rel}/{local}")
        if "fontawesome.min.css" in new and "solid.min.css" not in new:
            solid = f'<link rel="stylesheet" href="{rel}/css/solid.min.css">'
            new = new.replace(
                f'href="{rel}/css/fontawesome.min.css">', f'href="{rel}/css/fontawesome.min.css">{solid}'
            )
        images = os.path.relpath(data_docs / "static" / "images", page.parent)
        new = _GX_LOGO.sub(f'src="{images}/logo-long.png"', new)
        new = _GX_ATTR.sub("", new)
        if new != text:
            page.write_text(new, encoding="utf-8")
            changed += 1
    return changed


def offline_dbt_docs(page: Path) -> bool:
    """Make dbt's static docs page clean under ``file://``. Its favicon link is an unbuilt webpack
    expression (a missing file); its Angular templates carry
    ``<use xlink:href="{{ … }}">``, which Chromium tries to load before Angular fills it in ("Unsafe
    attempt to load URL" on file://); ``ng-attr-`` sets the attribute only once it is interpolated."""
    if not page.is_file():
        return False
    text = page.read_text(encoding="utf-8")
    new = text.replace('<use xlink:href="{{', '<use ng-attr-xlink:href="{{')
    # dbt ships its favicon link unbuilt (href="${require('./assets/favicons/favicon.ico')}").
    new = re.sub(r'href="\$\{require\([^"]*\)\}"', 'href="data:,"', new)
    if new != text:
        page.write_text(new, encoding="utf-8")
    return new != text


def remaining_remote_assets(root: Path) -> list[str]:
    """Scripts, styles and images under ``root`` still fetched from another host (links are fine)."""
    found = []
    for page in root.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        for m in re.finditer(r'<(?:script|link|img)\b[^>]*?(?:src|href)="(https?://[^"]+)"', text):
            tag = m.group(0)
            if tag.startswith("<link") and "stylesheet" not in tag and "icon" not in tag:
                continue
            found.append(f"{page.relative_to(root)}: {m.group(1)}")
    return found


# --------------------------------------------------------------------------- build


def _environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["fmt"] = fmt
    env.filters["raw"] = raw
    env.filters["tojson_script"] = _dumps
    return env


def _columns(rows: list[dict], skip=()) -> list[str]:
    return [c for c in (rows[0] if rows else {}) if c not in skip]


def build(
    warehouse_url: str,
    site_dir: Path | str | None = None,
    docs_dir: Path | str | None = None,
) -> SiteResult:
    """Read the warehouse and write the whole site; return where, how many pages, how long."""
    started = time.perf_counter()
    cfg = settings()
    site = Path(site_dir) if site_dir else cfg.site_dir
    docs = Path(docs_dir) if docs_dir else cfg.docs_dir
    with db.connect(warehouse_url) as conn:
        conn.read_only = True
        with conn.transaction():  # one snapshot for every page
            conn.execute("set transaction isolation level repeatable read")
            staff = read_staff(conn)
            public = read_public(conn)
            built_at = conn.execute("select now()").fetchone()[0]

    offline_data_docs(docs / "data_docs")
    offline_dbt_docs(docs / "dbt" / "index.html")

    tmp = site.with_name(f".{site.name}.building-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    pages = _write_site(tmp, staff, public, built_at, docs)
    old = site.with_name(f".{site.name}.old-{os.getpid()}")
    if site.exists():
        site.rename(old)
    tmp.rename(site)
    shutil.rmtree(old, ignore_errors=True)
    seconds = time.perf_counter() - started
    log.info("site: %d pages in %s (%.2f s)", pages, site, seconds)
    return SiteResult(site, pages, seconds)


def _copy_assets(dest: Path, plotly: bool) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for f in STATIC.iterdir():
        shutil.copyfile(f, dest / f.name)
    if plotly:
        from importlib.resources import files

        src = files("plotly") / "package_data" / "plotly.min.js"
        (dest / "plotly.min.js").write_bytes(src.read_bytes())


class _Pages:
    """Writes the site's pages under ``root``: each template gets the links every page needs
    (relative to the page's own folder) and the values common to the whole build."""

    def __init__(self, root: Path, common: dict):
        self.root, self.common, self.env, self.written = root, common, _environment(), 0

    def write(self, template: str, path: str, **ctx) -> None:
        out = self.root / path
        out.parent.mkdir(parents=True, exist_ok=True)
        depth = path.count("/")
        prefix = "../" * depth
        links = {
            "root": prefix,
            "proot": "../" * (depth - 1) if path.startswith("public/") else prefix,
            "dbt_docs": prefix + self.common["dbt_docs"],
            "data_docs": prefix + self.common["data_docs"],
        }
        _write_page(out, self.env.get_template(template).generate(**{**self.common, **links, **ctx}))
        self.written += 1


def _write_site(root: Path, staff: dict, public: dict, built_at: datetime, docs: Path) -> int:
    """Every page of the site (staff pages, then the public ones); returns how many were written."""
    _copy_assets(root / "assets", plotly=True)
    _copy_assets(root / "public" / "assets", plotly=False)
    pages = _Pages(
        root,
        {
            "built_at": fmt(built_at),
            "has_dialogue": bool(staff["dialogue_marts"]),
            "dbt_docs": os.path.relpath(docs / "dbt" / "index.html", root),
            "data_docs": os.path.relpath(docs / "data_docs" / "index.html", root),
        },
    )
    _kpi_page(pages, staff["kpis"])
    _compliance_page(pages, staff["nc"])
    if staff["dialogue_marts"]:
        tables = [{"name": n, "rows": r, "columns": _columns(r)} for n, r in staff["dialogue"].items()]
        title = "Social dialogue and remediation"
        pages.write("dialogue.html.j2", "dialogue.html", title=title, active="dialogue", tables=tables)
    pages.write("quality.html.j2", "quality.html", title="Data quality", active="quality", q=staff["quality"])
    _factory_pages(pages, staff)
    _public_pages(pages, public)
    return pages.written


def _kpi_page(pages: _Pages, kpis: list[dict]) -> None:
    reported = json.loads(REPORTED_FIGURES.read_text())
    years = [r["period"] for r in kpis if r["period"] != "all"]
    pages.write(
        "index.html.j2",
        "index.html",
        title="Programme KPIs",
        active="kpis",
        kpi_columns=KPI_COLUMNS,
        dialogue_kpi_columns=[(c, label) for c, label in DIALOGUE_KPI_COLUMNS if kpis and c in kpis[0]],
        periods=[*years, "all"],
        by_period={r["period"]: r for r in kpis},
        reported=reported,
        figure=kpi_figure(kpis, reported),
    )


def _compliance_page(pages: _Pages, nc: list[dict]) -> None:
    panels = sorted({r["panel"] for r in nc}, key=lambda p: (p != "all", p))
    nc_tables = {}
    for p in panels:
        rows = [r for r in nc if r["panel"] == p]
        nc_tables[p] = {
            "cycles": sorted({r["cycle"] for r in rows}),
            "points": sorted({(r["cluster"] or "", r["compliance_point"]) for r in rows}),
            "cells": {(r["compliance_point"], r["cycle"]): r for r in rows},
        }
    clusters = cluster_rows(nc)
    pages.write(
        "compliance.html.j2",
        "compliance.html",
        title="Non-compliance",
        active="compliance",
        panels=panels,
        figures=nc_figures(nc),
        nc_tables=nc_tables,
        clusters=clusters,
        cluster_cycles=sorted({r["cycle"] for r in clusters}),
        cluster_cells={(r["cluster"], r["cycle"]): r for r in clusters},
        cluster_names=sorted({r["cluster"] for r in clusters}, key=lambda c: c or ""),
        cluster_fig=cluster_figure(clusters),
    )


def _by_factory(rows: list[dict]) -> dict[int, list[dict]]:
    grouped: dict[int, list[dict]] = defaultdict(list)
    for r in rows:
        grouped[r.get("factory_id")].append(r)
    return grouped


def _factory_pages(pages: _Pages, staff: dict) -> None:
    """The factory list and one page per factory: its panel history, dialogue rows, open items."""
    history = _by_factory(staff["panel"])
    per_factory = {name: _by_factory(rows) for name, rows in staff["dialogue"].items()}
    open_items = _by_factory(staff["open_items"])
    hist_columns = _columns(staff["panel"], skip=("factory_id",))
    pages.write(
        "factories.html.j2",
        "factories/index.html",
        title="Factories",
        active="factories",
        factories=staff["factories"],
        history=history,
    )
    for f in staff["factories"]:
        fid = f["factory_id"]
        rows = history.get(fid, [])
        items = open_items.get(fid, [])
        pages.write(
            "factory.html.j2",
            f"factories/{fid}.html",
            title=f["name"] or f"Factory {fid}",
            active="factories",
            f=f,
            history=rows,
            hist_columns=hist_columns,
            figure=factory_figure(rows) if rows else None,
            extra_tables=[
                {"name": name, "rows": grouped.get(fid, []), "columns": _columns(grouped.get(fid, []))}
                for name, grouped in per_factory.items()
            ],
            open_items=items,
            item_columns=_columns(items, skip=("factory_id",)),
            has_item_mart="fct_improvement_item" in staff["dialogue_marts"],
        )


def _public_pages(pages: _Pages, public: dict) -> None:
    """The transparency page and one public page per factory that agreed to be named."""
    summary, findings = public["summary"], public["findings"]
    as_of = max((r["data_as_of"] for r in summary), default=None)
    by_factory = _by_factory(findings)
    pages.write(
        "public_index.html.j2", "public/index.html", title="Transparency", summary=summary, as_of=as_of
    )
    for s in summary:
        pages.write(
            "public_factory.html.j2",
            f"public/factories/{s['factory_id']}.html",
            title=s["factory_name"],
            s=s,
            findings=by_factory.get(s["factory_id"], []),
            as_of=as_of,
        )


def _write_page(path: Path, pieces: Iterator[str]) -> None:
    """Write a page as its template generates it, a few thousand pieces at a time: rendered whole,
    the dialogue page (65 MB at scale 100) took ~300 MiB beyond the rows it shows."""
    with path.open("w", encoding="utf-8") as f:
        while chunk := list(itertools.islice(pieces, 4096)):
            f.write("".join(chunk))


def main() -> int:
    """``python -m include.serve.site.builder``: build the site against the configured warehouse."""
    from include import warehouse

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    result = build(warehouse.resolve().url)
    print(f"site: {result.pages} pages in {result.path} ({result.seconds:.2f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
