"""Renders the ranking page with AppTest for every period; prints timings and peak memory.

Run by `python -m tokenusage bench` in its own process, so the memory figure is the serving
process's alone. Reads TOKENUSAGE_DB_URL and TOKENUSAGE_TIMEZONE.
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import time

import streamlit as st
from streamlit.testing.v1 import AppTest

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))
from tokenusage.config import PROJECT_ROOT  # noqa: E402

PERIODS = {"all": {}, "today": {}, "30d": {}, "30d + search": {"search": "smith"}}


def render(query: dict[str, str]) -> float:
    st.cache_data.clear()
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=120)
    for key, value in query.items():
        at.query_params[key] = value
    started = time.perf_counter()
    at.run()
    elapsed = time.perf_counter() - started
    if at.exception:
        raise RuntimeError(at.exception[0].value)
    return elapsed


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited)."""
    for line in open("/proc/self/status", encoding="ascii"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(runs: int) -> None:
    render({})
    renders = {}
    for label, extra in PERIODS.items():
        period = label.split()[0]
        renders[label] = statistics.median(
            render({"period": period, **extra}) for _ in range(runs)
        )
    peak = peak_rss_mb()
    print(json.dumps({"renders": renders, "peak_mb": peak}))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
