"""``make bench-run``: wall time of a warm ``make run`` on the demo data.

Warm means the environment, the warehouse and the demo sources exist and were loaded once
already, which is the case for every run after the first. Runs the pipeline a few times and
reports each wall time, the median and the machine. Never part of a pass/fail test.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.machine import machine, peak_rss_mib

RUNS = 3


def _run() -> float:
    bw = str(Path(sys.executable).with_name("bw"))
    started = time.perf_counter()
    subprocess.run([bw, "run"], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> int:
    print("warming up (one run, not counted)…", flush=True)
    _run()
    times = []
    for i in range(RUNS):
        times.append(_run())
        print(f"run {i + 1}: {times[-1]:.1f} s", flush=True)
    print(f"warm make run: median {statistics.median(times):.1f} s, min {min(times):.1f} s over {RUNS} runs")
    print(f"peak memory of one pipeline process tree member: {peak_rss_mib(children=True):.0f} MiB")
    print(f"machine: {machine()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
