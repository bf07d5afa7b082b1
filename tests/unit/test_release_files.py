"""Pure pieces of the release writer: CSV values, codebook meanings, content hash, README."""

from __future__ import annotations

from include.serve import release


def test_csv_values_are_plain_and_nulls_empty():
    assert [release._csv_value(v) for v in (None, True, False, 0.1, 7, "a")] == [
        "",
        "true",
        "false",
        "0.1",
        "7",
        "a",
    ]


def test_every_panel_and_band_has_a_meaning():
    assert "1…3" in release._meaning("panel", "balanced_3")
    assert release._meaning("size_band", "500-999") == "500-999 workers"
    assert release._meaning("gender", "female")


def test_content_hash_depends_on_data_only(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for folder in (a, b):
        folder.mkdir()
        (folder / "t.csv").write_text("x\n1\n")
        (folder / "t.parquet").write_bytes(folder.name.encode())  # parquet bytes are not hashed
    assert release.content_hash(a) == release.content_hash(b)
    (b / "t.csv").write_text("x\n2\n")
    assert release.content_hash(a) != release.content_hash(b)


def test_readme_states_k_and_carries_the_recipe():
    table = release.Table("cp_noncompliance_rate", "rates", [release.Column("panel", "text", "p")], rows=3)
    text = release.render_readme("2025-01-01-abc", [table], 7)
    assert "k = 7" in text and release.REPRODUCE in text and "| `cp_noncompliance_rate` | 3 |" in text
