"""The site builder's pure parts: formatting of figures, and GX Data Docs made to work offline."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import great_expectations

from include.serve.site import builder

GX_TEMPLATES = Path(great_expectations.__file__).parent / "render" / "view" / "templates"


def test_figures_are_shown_and_kept_exactly():
    assert builder.fmt(1200, "advisory_visits") == "1,200"
    assert builder.fmt(1007, "factory_id") == "1007"
    assert builder.fmt(0.36764705882352944, "female_participant_share") == "36.8 %"
    assert builder.fmt(None, "noncompliance_rate") == "–"
    assert builder.raw(0.36764705882352944) == "0.36764705882352944"
    assert builder.raw(date(2025, 1, 2)) == "2025-01-02"
    assert builder.raw(None) == ""


def test_every_cdn_asset_of_gx_templates_is_vendored_or_dropped(tmp_path):
    """Each script/style URL in GX's own templates: rewritten to a vendored file that exists, or dropped."""
    tags = []
    for template in GX_TEMPLATES.rglob("*.j2"):
        tags += re.findall(r'<(?:script|link)\b[^>]*(?:src|href)="https://[^"]+"[^>]*>', template.read_text())
    assert tags, "GX's templates moved: update the list of vendored assets"
    page = tmp_path / "data_docs" / "validations" / "suite" / "run.html"
    page.parent.mkdir(parents=True)
    page.write_text(
        "<html><head>"
        + "".join(t + ("</script>" if t.startswith("<script") else "") for t in tags)
        + "</head></html>"
    )
    (tmp_path / "data_docs" / "index.html").write_text(page.read_text())
    assert builder.offline_data_docs(tmp_path / "data_docs") == 2
    assert builder.remaining_remote_assets(tmp_path / "data_docs") == []
    for html in (tmp_path / "data_docs").rglob("*.html"):
        for ref in re.findall(r'(?:src|href)="([^"]+)"', html.read_text()):
            assert (html.parent / ref).resolve().is_file(), ref
    # idempotent: a second pass changes nothing
    assert builder.offline_data_docs(tmp_path / "data_docs") == 0
