"""Benchmarks of the pipeline: measurements, never pass/fail tests, and not part of the product.

Outside the ``include`` package on purpose (the wheel and the CLI ship only ``include``); each
module runs with ``.venv/bin/python -m benchmarks.<module>``, the Makefile's ``bench-*`` targets
call them. Figures and methods: docs/BENCHMARKS.md.

- ``load``: ``make bench-load``, the export loader against a bare ``COPY`` and ``DataFrame.to_sql``
- ``run``: ``make bench-run``, wall time of a warm ``make run``
- ``scale``: ``make bench-scale``, the whole pipeline at several demo scales, fresh warehouse each
- ``plans``: nested loops over two large inputs in dbt's model plans (used by ``scale``)
- ``watcher_eval``: Cosmos ``ExecutionMode.WATCHER`` against the single ``dbt build`` task
- ``machine``: the machine line and peak memory every benchmark reports
"""
