"""Benchmark: ranking latency, page render, naive pandas, refresh, import and memory.

`python -m tokenusage bench` builds (or reuses) a database of demo data of the given
size and prints one table of figures. It runs on any database URL.
"""

from __future__ import annotations

import csv
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy import Engine, func, select

from tokenusage import database, demo, importer, ingest, money, queries, ranges, rollups
from tokenusage.config import PROJECT_ROOT
from tokenusage.periods import DayRange, Period, resolve, utc_bounds
from tokenusage.schema import usage_events

BENCH_DIR = PROJECT_ROOT / "bench-data"
PRESETS = (Period.ALL, Period.TODAY, Period.LAST_30_DAYS, Period.CUSTOM)


@dataclass
class Size:
    users: int = 100_000
    events: int = 10_000_000
    days: int = 365
    seed: int = 42


def default_url(size: Size) -> str:
    return f"sqlite:///{BENCH_DIR / f'bench-{size.users}u-{size.events}e.sqlite'}"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ensure_data(engine: Engine, size: Size, timezone: str) -> bool:
    """Fill the database with demo data of `size` unless it already holds it. True if built."""
    database.upgrade(engine)
    with engine.connect() as connection:
        have = connection.execute(select(func.count()).select_from(usage_events)).scalar()
    if have >= size.events:
        log(f"reusing {have:,} events")
        rollups.refresh(engine, timezone)
        return False
    log(f"generating {size.events:,} events for {size.users:,} users over {size.days} days…")
    data = demo.generate(users=size.users, events=size.events, days=size.days,
                         seed=size.seed, timezone=timezone)
    started, done = time.perf_counter(), [0]

    def progress(stats: ingest.IngestStats) -> None:
        done[0] += stats.read
        if done[0] % 500_000 < stats.read:
            rate = done[0] / (time.perf_counter() - started)
            log(f"  {done[0]:,}/{size.events:,} events ({rate:,.0f}/s)")

    demo.load(engine, timezone, data, on_batch=progress, batch_size=50_000)
    log(f"built in {time.perf_counter() - started:.0f} s")
    return True


def timed(function: Callable[[], object], runs: int, warmup: bool = True) -> list[float]:
    if warmup:
        function()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return samples


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


def period_ranges(tz: ZoneInfo) -> dict[Period, DayRange]:
    today = resolve(Period.TODAY, tz).start
    custom = (today - timedelta(days=120), today - timedelta(days=31))
    return {p: resolve(p, tz, custom if p is Period.CUSTOM else None) for p in PRESETS}


def naive_ranking(engine: Engine, days: DayRange, tz: ZoneInfo) -> pd.DataFrame:
    """The ranking the slow way: every event of the period into pandas, then group."""
    start, end = utc_bounds(days, tz)
    e = usage_events
    query = select(e.c.user_id, e.c.occurred_at, e.c.cost_nanos)
    if start is not None:
        query = query.where(e.c.occurred_at >= start, e.c.occurred_at < end)
    with engine.connect() as connection:
        frame = pd.DataFrame(connection.execute(query).all(),
                             columns=["user_id", "occurred_at", "cost_nanos"])
    spend = frame.groupby("user_id")["cost_nanos"].sum()
    spend = spend[spend > 0].reset_index()
    return spend.sort_values(["cost_nanos", "user_id"], ascending=[False, True]).head(25)


def query_figures(engine: Engine, tz: ZoneInfo, runs: int, search: str) -> list[dict]:
    """Ranking page latency as the page asks for it (the stored range is built once, first)."""
    rows = []
    for period, days in period_ranges(tz).items():
        ranges.build(engine, days)
        for needle in (None, search):
            with queries.snapshot(engine) as connection:
                last = queries.ranking_page(connection, days, needle, 1, 25).pages
            for label, page in (("first", 1), ("last", last)):
                def run(page=page, needle=needle, days=days) -> None:
                    with queries.snapshot(engine) as connection:
                        queries.ranking_page(connection, days, needle, page, 25)
                samples = timed(run, runs)
                rows.append({"period": period.value, "search": needle or "", "page": label,
                             "median": statistics.median(samples), "p95": p95(samples)})
    return rows


def build_figures(engine: Engine, tz: ZoneInfo) -> dict[str, float]:
    """Time to build each period's stored ranking from the rollups (once per data change)."""
    figures = {}
    with engine.begin() as connection:
        rollups.lock(connection)
        rollups.drop_ranges(connection, None, None)
    for period, days in period_ranges(tz).items():
        started = time.perf_counter()
        ranges.build(engine, days)
        figures[period.value] = time.perf_counter() - started
    return figures


def naive_figures(engine: Engine, tz: ZoneInfo, runs: int) -> dict[str, float]:
    return {
        period.value: statistics.median(
            timed(lambda d=days: naive_ranking(engine, d, tz), runs, warmup=False))
        for period, days in period_ranges(tz).items()
    }


def refresh_and_import(engine: Engine, size: Size, timezone: str, count: int
                       ) -> dict[str, float]:
    """Import `count` new events of the last week from a CSV file with the import command's
    code, then time the incremental refresh that folds them into the rollups."""
    rollups.refresh(engine, timezone)
    data = demo.generate(users=size.users, events=count, days=7, seed=size.seed,
                         timezone=timezone)
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S%f")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "events.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["request_id", "user_id", "occurred_at", "provider", "model",
                             "input_tokens", "output_tokens", "cached_input_tokens",
                             "cost_usd"])
            for i, row in enumerate(data.event_rows()):
                cost = "" if i % 10 == 0 else money.exact_usd(row["cost_nanos"])
                writer.writerow([f"bench-{stamp}-{i}", row["user_id"],
                                 row["occurred_at"].isoformat() + "Z", row["provider"],
                                 row["model"], row["input_tokens"], row["output_tokens"],
                                 row["cached_input_tokens"], cost])
        started = time.perf_counter()
        result = importer.import_file(engine, "events", path, timezone=timezone,
                                      refresh=False)
        imported = time.perf_counter() - started
    refresh = rollups.refresh(engine, timezone)
    return {"import_rate": result.imported / imported, "refresh": refresh.seconds,
            "refresh_events": refresh.events}


def render_figures(url: str, timezone: str, runs: int) -> dict:
    """Server-side page renders in a separate process, which also reports its peak memory."""
    script = PROJECT_ROOT / "benchmarks" / "render_pages.py"
    env = dict(os.environ, TOKENUSAGE_DB_URL=url, TOKENUSAGE_TIMEZONE=timezone)
    output = subprocess.run([sys.executable, str(script), str(runs)], env=env, check=True,
                            capture_output=True, text=True, cwd=PROJECT_ROOT).stdout
    return json.loads(output.strip().splitlines()[-1])


def peak_memory_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(url: str | None, size: Size, timezone: str, runs: int, search: str,
        new_events: int) -> int:
    url = url or default_url(size)
    engine = database.make_engine(url)
    tz = ZoneInfo(timezone)
    ensure_data(engine, size, timezone)
    with engine.connect() as connection:
        total = connection.execute(select(func.count()).select_from(usage_events)).scalar()
    log("measuring stored-ranking builds…")
    builds = build_figures(engine, tz)
    log("measuring ranking queries…")
    figures = query_figures(engine, tz, runs, search)
    log("measuring the naive pandas ranking…")
    naive = naive_figures(engine, tz, 2)
    log("measuring page renders…")
    render = render_figures(url, timezone, max(3, runs // 5))
    log(f"measuring import and refresh of {new_events:,} new events…")
    refresh = refresh_and_import(engine, size, timezone, new_events)

    print(f"database: {engine.url.render_as_string(hide_password=True)} "
          f"({engine.dialect.name}); {total:,} events; timezone {timezone}")
    print()
    print("| period | search | page | ranking median | ranking p95 | naive pandas | ratio |")
    print("|---|---|---|---|---|---|---|")
    for row in figures:
        slow = naive[row["period"]]
        ratio = f"{slow / row['median']:,.0f}x" if row["search"] == "" else ""
        print(f"| {row['period']} | {row['search'] or '—'} | {row['page']} | "
              f"{ms(row['median'])} | {ms(row['p95'])} | "
              f"{ms(slow) if row['search'] == '' else ''} | {ratio} |")
    print()
    print("| period | build of the stored ranking (after a data change) |")
    print("|---|---|")
    for period, seconds in builds.items():
        print(f"| {period} | {ms(seconds)} |")
    print()
    print("| page render (AppTest, cold cache) | median |")
    print("|---|---|")
    for period, seconds in render["renders"].items():
        print(f"| {period} | {ms(seconds)} |")
    print()
    print(f"refresh after {refresh['refresh_events']:,} new events: {refresh['refresh']:.2f} s")
    print(f"import (CSV file, validated and priced): {refresh['import_rate']:,.0f} events/s")
    print(f"peak memory, dashboard process serving the pages: {render['peak_mb']:,.0f} MB")
    print(f"peak memory, benchmark process: {peak_memory_mb():,.0f} MB")
    return 0
