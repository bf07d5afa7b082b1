"""The GX session: GX's context, the suites and their data sources, built once and reused by a process.

Importing GX (~5 s) and building a context (~0.5 s) dwarf validating a small batch, and ``bw run``
loads every table in one process: the session is built on the first validation of a process and
reused by every later one (:data:`SESSIONS`, keyed by warehouse, ``DOCS_DIR`` and
``VALIDATION_THREADS``; another key closes it and builds a new one, as tests switching warehouses
do). It holds no database connection between validations: :meth:`GxSession.release_connections`
closes its data sources' connections when each validation call ends. Data Docs are built by
:meth:`GxSession.build_docs`, once per loading run, from the results stored since the last build.
"""

from __future__ import annotations

import fcntl
import logging
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from include import db
from include.config import settings


@dataclass(frozen=True)
class EntitySuite:
    """An entity's suite as stored, as a GX suite, and its GX data sources (one per validation thread)."""

    spec: dict
    gx_suite: object
    sources: list


class GxSession:
    """GX's context, the warehouse's data sources and the suites, for one warehouse and ``DOCS_DIR``."""

    def __init__(self, url: str, docs_dir: Path, threads: int):
        started = time.perf_counter()
        self.url = url
        self.threads = threads
        self.state_dir = docs_dir / "gx_state"
        self.context = _context(self.state_dir, docs_dir / "data_docs")
        self.suites: dict[str, EntitySuite] = {}
        self.pending_docs: list = []  # validation results not yet rendered in Data Docs
        self.startup_seconds = time.perf_counter() - started  # reported once: take_startup_seconds

    @property
    def key(self) -> tuple[str, Path, int]:
        return self.url, self.state_dir, self.threads

    def take_startup_seconds(self) -> float:
        """The seconds this session's start-up took, the first time asked; 0 afterwards."""
        seconds, self.startup_seconds = self.startup_seconds, 0.0
        return seconds

    def suite(self, entity: str) -> EntitySuite:
        """The entity's suite and its data sources, built on first use.

        Data sources (SQLAlchemy engines) per entity: GX caches column metadata in its engine, and
        shared between entities it resolved ``cycle`` (improvement items) as ``"Cycle"`` (exports).
        One per validation thread: GX's execution engine holds the batch it is working on.
        """
        if entity not in self.suites:
            import great_expectations as gx

            from include.validate import suites

            spec = suites.load_suite_json(entity)
            gx_suite = self.context.suites.add_or_update(gx.ExpectationSuite(**spec))
            sources = [
                self.context.data_sources.add_or_update_postgres(
                    f"warehouse_{entity}" + (f"_{n}" if n else ""),
                    connection_string=db.sqlalchemy_url(self.url),
                )
                for n in range(self.threads)
            ]
            self.suites[entity] = EntitySuite(spec, gx_suite, sources)
        return self.suites[entity]

    @contextmanager
    def lock(self):
        """GX's file stores and Data Docs are not safe for concurrent writers (parallel table tasks)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with (self.state_dir / ".lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def build_docs(self) -> None:
        """Render the results stored since the last build (and the index) in Data Docs."""
        if not self.pending_docs:
            return
        with self.lock():
            # Only this run's pages (and the index): older results were rendered by their own run.
            self.context.build_data_docs(resource_identifiers=self.pending_docs)
        self.pending_docs = []

    def release_connections(self) -> None:
        """Close every connection the data sources hold (GX opens new ones when next asked)."""
        from include.validate import gx_adapter

        for entity_suite in self.suites.values():
            for source in entity_suite.sources:
                gx_adapter.release_connections(source)


class Sessions:
    """This process's GX session: built for the first (warehouse, ``DOCS_DIR``, threads) asked for,
    replaced when another is asked for (the old one closed), reused otherwise."""

    def __init__(self) -> None:
        self._current: GxSession | None = None
        self._building = threading.Lock()  # exports warm GX up in a thread while files are staged

    def for_warehouse(self, url: str) -> GxSession:
        """The session for this warehouse and the current ``DOCS_DIR`` and ``VALIDATION_THREADS``."""
        config = settings()
        key = (url, config.docs_dir / "gx_state", config.validation_threads)
        with self._building:
            if self._current is None or self._current.key != key:
                self.close()
                self._current = GxSession(url, config.docs_dir, config.validation_threads)
            return self._current

    def existing(self, url: str | None = None) -> GxSession | None:
        """The session built so far (for this warehouse, if given), or None: nothing to render."""
        current = self._current
        return current if current is not None and url in (None, current.url) else None

    def close(self) -> None:
        if self._current is not None:
            self._current.release_connections()
            self._current = None


SESSIONS = Sessions()
"""This process's GX session (:class:`Sessions`)."""


def _context(state_dir: Path, docs_dir: Path):
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    from include.validate import gx_adapter, gx_custom  # noqa: F401  (gx_custom registers expect_no_unexpected_rows)

    return gx_adapter.ephemeral_context(state_dir, docs_dir, template_cache(state_dir))


def template_cache(state_dir: Path) -> str:
    """Where Data Docs' compiled Jinja templates are kept (include/validate/gx_custom.py)."""
    folder = state_dir / "jinja"
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder)
