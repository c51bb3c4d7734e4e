"""Command line: python -m tokenusage COMMAND."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sqlalchemy.exc import OperationalError

from tokenusage import database, demo, rollups
from tokenusage.config import ConfigError, Settings, load_settings


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings()
    if getattr(args, "db", None):
        settings = Settings(args.db, settings.timezone, settings.profile_url)
    return settings


def cmd_init(args: argparse.Namespace) -> int:
    settings = _settings(args)
    engine = database.make_engine(settings.db_url)
    database.upgrade(engine)
    print(f"schema is up to date on {engine.url.render_as_string(hide_password=True)}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    settings = _settings(args)
    engine = database.make_engine(settings.db_url)
    database.upgrade(engine)
    data = demo.generate(users=args.users, events=args.events, days=args.days,
                         seed=args.seed, timezone=settings.timezone)
    done = [0]

    def progress(stats) -> None:
        done[0] += stats.read
        print(f"\r  events {done[0]:,}/{data.event_count:,}", end="", file=sys.stderr)

    stats = demo.load(engine, settings.timezone, data, on_batch=progress)
    print(file=sys.stderr)
    print(f"demo data: {len(data.users):,} users, {stats.inserted:,} new events "
          f"({stats.duplicates:,} already there), {len(data.payments):,} payments")
    return 0


def cmd_refresh(args: argparse.Namespace) -> int:
    settings = _settings(args)
    engine = database.make_engine(settings.db_url)
    database.upgrade(engine)
    result = rollups.refresh(engine, settings.timezone, rebuild=args.rebuild)
    print(f"rollups {result.mode}: {result.events:,} events in {result.seconds:.2f} s "
          f"(timezone {settings.timezone})")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    settings = _settings(args)
    engine = database.make_engine(settings.db_url)
    report = rollups.verify(engine, settings.timezone)
    pending = rollups.pending_events(engine)
    for line in report.differences:
        print(line)
    if pending:
        print(f"note: {pending:,} events are not in the rollups yet (run refresh)")
    if report.ok:
        print(f"rollups match the raw events ({report.checked_events:,} events checked)")
        return 0
    print(f"rollups differ from the raw events: {len(report.differences)} problems")
    return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tokenusage", description=__doc__)
    parser.add_argument("--db", help="database URL (default: TOKENUSAGE_DB_URL or the "
                        "embedded SQLite file)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("init", help="create or upgrade the schema").set_defaults(func=cmd_init)
    p = sub.add_parser("demo", help="fill the database with realistic demo data")
    p.add_argument("--users", type=int, default=demo.SMALL["users"])
    p.add_argument("--events", type=int, default=demo.SMALL["events"])
    p.add_argument("--days", type=int, default=demo.SMALL["days"])
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser("refresh", help="bring the rollups up to date")
    p.add_argument("--rebuild", action="store_true", help="rebuild from scratch")
    p.set_defaults(func=cmd_refresh)
    sub.add_parser("verify", help="compare the rollups with the raw events"
                   ).set_defaults(func=cmd_verify)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, database.DatabaseUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OperationalError as exc:
        print(f"error: the database is not reachable: {str(exc.orig).splitlines()[0]}",
              file=sys.stderr)
        return 2
