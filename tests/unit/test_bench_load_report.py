"""The figures ``make bench-load`` derives (and docs/LOADING.md quotes) follow from the measured runs."""

from __future__ import annotations

from benchmarks.load import _median, report


def _run(rows: int, seconds: float, peak: float = 100.0, **steps: float) -> dict:
    return {"rows": rows, "seconds": seconds, "peak_mib": peak, "steps": steps}


def test_ratios_and_validation_share_follow_from_the_runs():
    lines = report(
        {
            "extract_load": _run(1_000_000, 2.0, stage=1.9, publish=0.1),
            "loader_warm": _run(1_000_000, 5.0, stage=1.9, validate=2.6, publish=0.1, data_docs=0.2),
            "loader": _run(1_000_000, 10.0, validate_startup=5.0),
            "copy": _run(1_000_000, 1.0),
            "to_sql": _run(1_000_000, 20.0),
        }
    )
    text = "\n".join(lines)
    assert "| loader, extract + load only (no validation) | 1,000,000 | 2.00 | 500,000 | 100 |" in text
    assert "| bare COPY (ceiling) | 1,000,000 | 1.00 | 1,000,000 | 100 |" in text
    # validation adds 5.0 - 2.0 = 3.0 s: 3.0 s per million rows, 1.5x extract + load, 60% of 5.0 s
    assert "validation adds 3.00 s to the load: 3.00 s per million export rows, 1.50x" in text
    assert "60% of the warm extract-validate-load time" in text
    # timed inside the warm run: 2.6 + 0.2 = 2.8 s of its 5.0 s, 1.27x the other 2.2 s
    assert (
        "validation within the warm run (validate + data_docs): 2.80 s, 2.80 s per million export rows, "
        "1.27x the rest of that run, 56% of it"
    ) in text
    assert "loader / bare COPY: extract_load 50%, loader_warm 20%, loader 10% (target >= 60%)" in text
    assert "loader / to_sql: extract_load 10.0x, loader_warm 4.0x, loader 2.0x (target >= 5x)" in text


def test_the_median_run_is_reported_whole():
    runs = [_run(10, 3.0, peak=1), _run(10, 1.0, peak=2), _run(10, 2.0, peak=3)]
    assert _median(runs) == runs[2]
