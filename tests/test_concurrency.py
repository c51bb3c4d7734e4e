"""An import running in another process never makes a page fail or show half a refresh."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from tests.conftest import NOW
from tokenusage import demo, queries
from tokenusage.periods import DayRange

TZ = "Europe/Berlin"

WRITER = textwrap.dedent("""
    import sys
    from datetime import datetime, UTC
    from tokenusage import database, demo, ingest, rollups
    url, tz = sys.argv[1], sys.argv[2]
    engine = database.make_engine(url)
    data = demo.generate(users=120, events=6_000, days=75, seed=99, timezone=tz,
                         now=datetime(2026, 11, 20, 15, 30, tzinfo=UTC))
    rows = list(data.event_rows())
    for start in range(0, len(rows), 500):
        ingest.insert_events(engine, rows[start:start + 500], batch_size=250)
        rollups.refresh(engine, tz)
    print("done")
""")


def test_pages_stay_consistent_while_another_process_imports(engine, backend, small_demo):
    if backend == "duckdb":
        pytest.skip("DuckDB lets one process at a time open a database file")
    demo.load(engine, TZ, small_demo)
    url = engine.url.render_as_string(hide_password=False)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, url, TZ],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    everything = DayRange(None, None)
    month = DayRange(NOW.date().replace(day=1), NOW.date())
    checks, seen_totals = 0, set()
    deadline = time.monotonic() + 120
    while writer.poll() is None and time.monotonic() < deadline:
        for days in (everything, month):
            overview = queries.ranking_overview(engine, days, None, 1, 10)
            totals = overview.page.totals
            assert sum(p.spend_nanos for p in overview.series) == totals.spend_nanos
            assert sum(p.events for p in overview.series) == totals.events
            with queries.snapshot(engine) as connection:
                rows = list(queries.iter_ranking(connection, days))
                again = queries.period_totals(connection, days)
            assert sum(r.spend_nanos for r in rows) == again.spend_nanos
            assert len(rows) == again.users
            seen_totals.add(totals.spend_nanos)
            checks += 1
    out, err = writer.communicate(timeout=120)
    assert writer.returncode == 0, err
    assert "done" in out
    assert checks > 3 and len(seen_totals) > 2  # the reads really overlapped the writes


def test_threads_of_one_process_build_and_refresh_together(engine, small_demo):
    """Streamlit serves sessions as threads: concurrent writers must not fail a page view."""
    from concurrent.futures import ThreadPoolExecutor
    from datetime import timedelta

    from tokenusage import ranges, rollups

    demo.load(engine, TZ, small_demo)
    wanted = [DayRange(NOW.date() - timedelta(days=n), NOW.date()) for n in range(12)]

    def work(days):
        rollups.refresh(engine, TZ)
        return ranges.build(engine, days)

    with ThreadPoolExecutor(max_workers=4) as pool:
        built = list(pool.map(work, wanted + wanted))
    assert sum(built) == len(wanted)  # each range built exactly once, no errors
    with queries.snapshot(engine) as connection:
        assert all(ranges.stored(connection, days) is not None for days in wanted)
