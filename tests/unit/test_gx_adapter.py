"""GX's private APIs are used in include/validate/gx_adapter.py only, against one pinned GX release.

An upgrade of great-expectations in uv.lock fails here until someone has checked every private
name the adapter lists against the new release and moved ``GX_VERSION``.
"""

from __future__ import annotations

import importlib
import re
from importlib.metadata import version

from include.config import PROJECT_DIR
from include.validate import gx_adapter


def locked_version(package: str) -> str:
    lock = (PROJECT_DIR / "uv.lock").read_text()
    found = re.search(rf'\[\[package\]\]\nname = "{package}"\nversion = "([^"]+)"', lock)
    assert found, f"{package} not in uv.lock"
    return found.group(1)


def test_the_adapter_is_pinned_to_the_locked_and_installed_gx():
    locked = locked_version("great-expectations")
    assert gx_adapter.GX_VERSION == locked == version("great-expectations"), (
        f"GX is {version('great-expectations')} (uv.lock: {locked}) but include/validate/gx_adapter.py "
        f"was written for {gx_adapter.GX_VERSION}: check every name in gx_adapter.PRIVATE_APIS and "
        "PRIVATE_ATTRIBUTES against the new release, then move GX_VERSION"
    )


def test_every_private_name_the_adapter_relies_on_exists():
    for module, name in gx_adapter.PRIVATE_APIS:
        assert hasattr(importlib.import_module(module), name), f"{module}.{name} is gone"
    for module, cls, attribute in gx_adapter.PRIVATE_ATTRIBUTES:
        assert hasattr(getattr(importlib.import_module(module), cls), attribute), f"{cls}.{attribute} is gone"


def test_no_other_module_reaches_into_gx_internals():
    """Outside the adapter, GX is imported from its public top level or from what the adapter lists."""
    allowed = {m for m, _ in gx_adapter.PRIVATE_APIS} | {m for m, _, _ in gx_adapter.PRIVATE_ATTRIBUTES}
    public = {
        "great_expectations",
        "great_expectations.core",  # ExpectationSuiteValidationResult: in the adapter only
        "great_expectations.compatibility.sqlalchemy",
        "great_expectations.constants",
        "great_expectations.core.metric_domain_types",
        "great_expectations.core.result_format",
        "great_expectations.execution_engine",
        "great_expectations.expectations.core.unexpected_rows_expectation",
        "great_expectations.expectations.metrics.metric_provider",
    }
    for path in sorted((PROJECT_DIR / "include").rglob("*.py")):
        if path.name == "gx_adapter.py":
            continue
        text = path.read_text()
        for module in re.findall(r"^\s*(?:from|import) (great_expectations[\w.]*)", text, flags=re.M):
            assert module in public | allowed, f"{path.name} imports {module}: move that use into gx_adapter"
        assert "._save_project_config" not in text, path.name
