"""Disclosure checks shared by the research, release and canary tests.

The quasi-identifiers come from the dbt models' ``meta.disclosure`` (read from dbt's manifest, so a
model counts whichever yml declares it); every table of the ``research`` schema and every data file
of a release is checked against them.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

CLASSES = ("keys", "quasi_identifiers", "measures")


def declared(manifest_path: Path) -> dict[str, dict]:
    """Table name (alias) in ``research`` -> its ``meta.disclosure`` (None when undeclared)."""
    manifest = json.loads(manifest_path.read_text())
    out = {}
    for node in manifest["nodes"].values():
        if node["resource_type"] == "model" and node["schema"] == "research":
            meta = node.get("meta") or node.get("config", {}).get("meta") or {}
            out[node["alias"]] = meta.get("disclosure")
    return out


def _is_true(value) -> bool:
    return value is True or value == "true"


def _blank(value) -> object:
    return None if value == "" else value


def problems(table: str, columns: list[str], rows: list[dict], policy: dict | None, k: int) -> list[str]:
    """Everything wrong with one table (or file) under its declared policy; [] when it complies."""
    if not policy:
        return [f"{table}: no meta.disclosure declared"]
    out = []
    classified = [c for cls in CLASSES for c in policy.get(cls) or []]
    for column in columns:
        if classified.count(column) != 1:
            out.append(f"{table}.{column}: classified {classified.count(column)} times (keys/QIs/measures)")
    for column in set(classified) - set(columns):
        out.append(f"{table}.{column}: declared but not in the table")
    qis = policy.get("quasi_identifiers") or []
    if policy.get("kind") == "microdata":
        unit = (policy.get("keys") or [None])[0]
        classes: dict[tuple, set] = defaultdict(set)
        for n, row in enumerate(rows):
            classes[tuple(_blank(row.get(q)) for q in qis)].add(row.get(unit) if unit else n)
        for values, members in classes.items():
            if len(members) < k:
                shared = dict(zip(qis, values, strict=True))
                out.append(f"{table}: {len(members)} {policy.get('unit')}(s) share {shared}")
    elif policy.get("kind") == "aggregate":
        count, flag = policy.get("count"), policy.get("suppressed")
        if not flag:
            out.append(f"{table}: an aggregate without a suppression flag")
        seen: set[tuple] = set()
        for row in rows:
            cell = tuple(_blank(row.get(q)) for q in qis)
            if cell in seen:
                out.append(f"{table}: cell {cell} published twice")
            seen.add(cell)
            if flag and _is_true(row.get(flag)):
                continue
            if count:
                value = _blank(row.get(count))
                if value is None or (int(value) != 0 and int(value) < k):
                    where = dict(zip(qis, cell, strict=True))
                    out.append(f"{table}: cell {where} published with {count} = {value}")
    else:
        out.append(f"{table}: kind must be microdata or aggregate")
    return out


def release_tables(folder: Path) -> dict[str, tuple[str, list[str], list[dict]]]:
    """Every data file of a release: file name -> (table, columns, rows)."""
    import pyarrow.parquet as pq

    dictionary = json.loads((folder / "data_dictionary.json").read_text())
    out = {}
    for table in dictionary:
        with open(folder / f"{table}.csv", newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            out[f"{table}.csv"] = (table, list(reader.fieldnames or []), list(reader))
        parquet = pq.read_table(folder / f"{table}.parquet")
        out[f"{table}.parquet"] = (table, parquet.column_names, parquet.to_pylist())
    return out
