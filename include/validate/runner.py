"""GX's validation of a list of expectations on one staged table or view, on several connections at once.

:mod:`include.validate.suites` plans passes (:mod:`include.validate.plan`) and asks this module to
run each: :meth:`TableRunner.validate` cuts the expectations into parts (GX's own expectations, one
part per row condition, as GX bundles them into one query each; then each custom SQL rule) and
hands them to as many threads as the entity has data sources, each taking the next part as soon as
it is done with one, so that PostgreSQL works on every core until the end. The caller holds the
session's lock (GX's stores and Data Docs).
"""

from __future__ import annotations

import json
import queue
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from include.validate import plan
from include.validate.plan import CUSTOM_SQL
from include.validate.session import GxSession

Part = tuple[list[dict], dict]
"""Expectations validated together, and their GX result format."""


@dataclass
class TableRunner:
    """GX validations of one entity's tables in a loading run."""

    session: GxSession
    sources: list  # GX data sources of the entity, one per validation thread
    schema: str
    suite_name: str
    params: dict  # the suites' parameters ({"today": …})

    def validate(self, table: str, expectations: list[dict], page: str | None, examples: int = 0) -> dict:
        """GX results of ``expectations`` on ``schema.table``, by (rule, ``meta.batch_id`` or None).

        GX's own expectations run with ``examples`` unexpected values fetched per failure (0: counts
        only, which spares the example queries; they scan the whole table when nothing is wrong).
        Custom queries run apart, in GX's COMPLETE format: their result then holds up to 200 of
        their rows (fetched anyway). With a ``page`` name, the result is stored, as a checkpoint
        would, for Data Docs.
        """
        parts = work_parts(expectations, examples)
        used = self.sources[: max(1, min(len(self.sources), len(parts)))]
        batches, done = self._validate_on(used, table, parts)
        found = {plan.key_of(r.expectation_config.meta): r for result in done for r in result.results}
        if page is not None:  # in the suite's order
            self._store(page, batches[0], done[0], [found[plan.key_of(e["meta"])] for e in expectations])
        return found

    def _validate_on(self, sources: list, table: str, parts: list[Part]) -> tuple[list, list]:
        """(GX batches of the table, one per source; GX's results of every part) on these sources.

        Each source gets a table asset for the table for the time of the validation; assets are
        added and removed by the calling thread only (the context's catalogue is not thread-safe).
        """
        todo: queue.SimpleQueue = queue.SimpleQueue()
        for part in parts:
            todo.put(part)
        name = f"{self.schema}.{table}"
        batches, with_asset = [], []
        try:
            for source in sources:
                asset = source.add_table_asset(name=name, table_name=table, schema_name=self.schema)
                with_asset.append(source)
                batches.append(asset.add_batch_definition_whole_table("whole table").get_batch())
            if len(sources) == 1:
                return batches, self._lane(batches[0], todo)
            with ThreadPoolExecutor(max_workers=len(sources), thread_name_prefix="gx") as pool:
                lanes = [pool.submit(self._lane, b, todo) for b in batches]
                return batches, [result for lane in lanes for result in lane.result()]
        finally:
            for source in with_asset:
                source.delete_asset(name)  # the asset names this table only

    def _lane(self, batch, todo: queue.SimpleQueue) -> list:
        """GX's results of the parts taken from ``todo``, one after another until none is left."""
        import great_expectations as gx

        done = []
        while True:
            try:
                part, result_format = todo.get_nowait()
            except queue.Empty:
                return done
            expectations = [{k: v for k, v in e.items() if k != "id"} for e in part]
            suite = gx.ExpectationSuite(name=self.suite_name, expectations=expectations)
            done.append(
                batch.validate(suite, result_format=result_format, expectation_parameters=self.params)
            )

    def _store(self, page: str, batch, first, every: list) -> None:
        """One validation result with ``every`` expectation's, stored as a checkpoint would, for Data Docs.

        ``first`` is one of the run's GX validation results (for its meta and batch id).
        """
        from include.validate import gx_adapter

        key = gx_adapter.store_validation_result(
            self.session.context, self.suite_name, page, batch, first, every
        )
        self.session.pending_docs.append(key)


def work_parts(expectations: list[dict], examples: int) -> list[Part]:
    """The expectations as units of work, the larger first, each with its GX result format.

    GX bundles the metrics of one validation into one query per row condition, so GX's own
    expectations are one part per row condition (all conditions on one batch's rows of a run
    together); then each custom query is a part of its own.
    """
    groups: dict[str, list[dict]] = {}
    for e in expectations:
        if e["type"] not in CUSTOM_SQL:
            condition = json.dumps(e["kwargs"].get("row_condition"), sort_keys=True)
            groups.setdefault("per batch" if "batch_id" in e["meta"] else condition, []).append(e)
    counts = {"result_format": "BASIC", "partial_unexpected_count": examples}
    return [(group, counts) for group in sorted(groups.values(), key=len, reverse=True)] + [
        ([e], {"result_format": "COMPLETE"}) for e in expectations if e["type"] in CUSTOM_SQL
    ]
