"""The static site in a real browser (Debian's Chromium via Playwright), built by ``bw run`` on the
scale-1 demo: every page loads with no console error and no request to another host; every figure
of the KPI and non-compliance pages equals its mart cell; the panel selector changes the chart; the
public page lists exactly the factories of ``public_reporting.factory_public_summary``.
Screenshots of each page go to docs/img/ (shown in docs/SITE.md).
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict

import pytest

from include.serve.site.builder import fmt, raw, remaining_remote_assets
from tests.browser.conftest import SCREENSHOTS, figures, rows


def _pages(site, docs) -> dict[str, object]:
    factory = sorted((site / "factories").glob("[0-9]*.html"), key=lambda p: int(p.stem))
    public_factory = sorted((site / "public" / "factories").glob("*.html"), key=lambda p: int(p.stem))
    validation = sorted((docs / "data_docs" / "validations").rglob("*.html"))
    pages = {
        "site_kpis": site / "index.html",
        "site_compliance": site / "compliance.html",
        "site_quality": site / "quality.html",
        "site_factories": site / "factories" / "index.html",
        "site_factory": factory[0],
        "public_index": site / "public" / "index.html",
        "public_factory": public_factory[0],
        "gx_data_docs": docs / "data_docs" / "index.html",
        "gx_validation": validation[0],
        "dbt_docs": docs / "dbt" / "index.html",
    }
    if (site / "dialogue.html").exists():
        pages["site_dialogue"] = site / "dialogue.html"
    return pages


def test_every_page_loads_offline_without_console_errors(built_site, visit):
    site, docs = built_site["site"], built_site["docs"]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    problems = {}
    for name, path in _pages(site, docs).items():
        v = visit(path)
        v.page.wait_for_timeout(300)  # charts drawn, dbt's app rendered
        if v.console_errors or v.remote_requests:
            problems[name] = {"console": v.console_errors, "remote": v.remote_requests}
        v.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
    assert problems == {}
    # Every site page (one per factory too) and every Data Docs page: no script, style or image
    # from another host left in the files.
    assert remaining_remote_assets(site) == []
    assert remaining_remote_assets(docs / "data_docs") == []


def test_dbt_docs_open_on_the_project_overview(built_site, visit):
    v = visit(built_site["docs"] / "dbt" / "index.html")
    v.page.wait_for_selector("text=Better Work Pakistan data platform", timeout=15000)
    assert "public_reporting" in v.page.content()


def test_every_kpi_figure_equals_its_mart_cell(built_site, visit):
    v = visit(built_site["site"] / "index.html")
    shown = figures(v.page)
    mart = {r["period"]: r for r in rows(built_site["url"], "select * from marts.programme_kpis")}
    columns = {f["metric"] for f in shown}
    assert columns >= {
        "factories_engaged",
        "assessments",
        "advisory_visits",
        "training_sessions",
        "training_participants",
        "female_participant_share",
    }
    # all of them: one figure per period and column shown, each equal to its cell
    assert {(f["period"], f["metric"]) for f in shown} == {(p, c) for p in mart for c in columns}
    for f in shown:
        cell = mart[f["period"]][f["metric"]]
        assert f["value"] == raw(cell)
        assert f["text"] == fmt(cell, f["metric"])


def test_every_noncompliance_figure_equals_its_mart_cell(built_site, visit):
    v = visit(built_site["site"] / "compliance.html")
    mart = rows(built_site["url"], "select * from marts.cp_noncompliance_rate")
    cells = {(r["panel"], r["cycle"], r["compliance_point"]): r["noncompliance_rate"] for r in mart}
    shown = figures(v.page, "[data-metric][data-compliance-point]")
    assert len(shown) == len(mart)
    assert {(f["panel"], int(f["cycle"]), f["compliancePoint"]) for f in shown} == set(cells)
    for f in shown:
        assert f["metric"] == "noncompliance_rate"
        cell = cells[(f["panel"], int(f["cycle"]), f["compliancePoint"])]
        assert float(f["value"]) == cell
        assert f["text"] == fmt(cell, "noncompliance_rate")
    # clusters over cycles: the mean of the cluster's compliance points (panel all)
    groups = defaultdict(list)
    for r in mart:
        if r["panel"] == "all" and r["noncompliance_rate"] is not None:
            groups[(r["cluster"], r["cycle"])].append(r["noncompliance_rate"])
    clusters = figures(v.page, "[data-metric][data-aggregate]")
    assert {(f["cluster"], int(f["cycle"])) for f in clusters} == set(groups)
    for f in clusters:
        assert math.isclose(float(f["value"]), statistics.fmean(groups[(f["cluster"], int(f["cycle"]))]))


def test_panel_selector_changes_the_chart(built_site, visit):
    v = visit(built_site["site"] / "compliance.html")
    page = v.page
    panels = page.eval_on_selector_all("#panel-select option", "os => os.map(o => o.value)")
    assert panels[0] == "all" and len(panels) > 1
    chart = "document.getElementById('nc-chart')"
    before = page.evaluate(f"({chart}.data[0].z)")
    title_before = page.evaluate(f"{chart}.layout.title.text")
    page.select_option("#panel-select", panels[-1])
    page.wait_for_function(f"{chart}.getAttribute('data-panel') === '{panels[-1]}'")
    after = page.evaluate(f"({chart}.data[0].z)")
    assert after != before
    assert panels[-1] in page.evaluate(f"{chart}.layout.title.text") != title_before
    visible = page.eval_on_selector_all(".nc-table:not([hidden])", "ts => ts.map(t => t.dataset.panel)")
    assert visible == [panels[-1]]
    assert v.console_errors == []


def test_public_page_lists_exactly_the_public_factories(built_site, visit):
    summary = rows(built_site["url"], "select * from public_reporting.factory_public_summary")
    assert summary, "the demo has factories in cycle 2 or later"
    v = visit(built_site["site"] / "public" / "index.html")
    listed = figures(v.page, "tr.public-factory")
    assert sorted(int(f["factory"]) for f in listed) == sorted(r["factory_id"] for r in summary)
    names = figures(v.page, "[data-metric=factory_name]")
    assert sorted(f["text"] for f in names) == sorted(r["factory_name"] for r in summary)
    as_of = max(r["data_as_of"] for r in summary).isoformat()
    assert v.page.get_attribute("time[data-metric=data_as_of]", "datetime") == as_of
    # the search narrows the list
    first = summary[0]["factory_name"]
    v.page.fill("#search", first)
    visible = v.page.eval_on_selector_all("tr.public-factory:not([hidden])", "rs => rs.length")
    assert 1 <= visible < len(summary)
    # the public pages link to nothing outside public/
    hrefs = v.page.eval_on_selector_all("a[href]", "as => as.map(a => a.href)")
    public_root = (built_site["site"] / "public").as_uri()
    assert all(h.startswith(public_root) for h in hrefs), hrefs


def test_public_factory_page_shows_its_findings(built_site, visit):
    findings = rows(built_site["url"], "select * from public_reporting.factory_public_findings")
    by_factory = defaultdict(list)
    for r in findings:
        by_factory[r["factory_id"]].append(r)
    fid = sorted(by_factory)[0]
    v = visit(built_site["site"] / "public" / "factories" / f"{fid}.html")
    shown = figures(v.page, "[data-metric=is_noncompliant]")
    expected = sorted(
        "" if r["is_noncompliant"] is None else str(r["is_noncompliant"]).lower() for r in by_factory[fid]
    )
    assert sorted(f["value"] for f in shown) == expected


@pytest.mark.parametrize("column", ["cp_noncompliance_rate", "advisory_visits_since_previous"])
def test_factory_page_figures_equal_the_panel(built_site, visit, column):
    panel = rows(built_site["url"], "select * from marts.factory_cycle_panel order by factory_id, cycle")
    fid = panel[0]["factory_id"]
    v = visit(built_site["site"] / "factories" / f"{fid}.html")
    shown = figures(v.page, f"td[data-metric={column}]")
    expected = [r[column] for r in panel if r["factory_id"] == fid]
    assert [f["text"] for f in shown] == [fmt(x, column) for x in expected]
