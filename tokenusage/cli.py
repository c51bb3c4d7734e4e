"""Command line: python -m tokenusage COMMAND."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

from sqlalchemy.exc import OperationalError

from tokenusage import database, demo, importer, prices, ranges, rollups, source
from tokenusage.config import ConfigError, Settings, load_settings


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings()
    if getattr(args, "db", None):
        settings = replace(settings, db_url=args.db)
    return settings


def _writable(settings: Settings) -> Settings:
    """Settings for a command that writes events: refused when reading a company's tables."""
    if settings.source_mapping:
        raise ConfigError("a [source] mapping is configured: the dashboard reads those tables "
                          "read-only; load data into them with your own tools")
    return settings


def cmd_init(args: argparse.Namespace) -> int:
    settings = _settings(args)
    engine = database.make_engine(settings.db_url)
    database.upgrade(engine)
    print(f"schema is up to date on {engine.url.render_as_string(hide_password=True)}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    settings = _writable(_settings(args))
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
    result = rollups.refresh(engine, settings.timezone, rebuild=args.rebuild,
                             source=source.for_settings(settings))
    print(f"rollups {result.mode}: {result.events:,} events in {result.seconds:.2f} s "
          f"(timezone {settings.timezone})")
    built = ranges.warm(engine, settings.timezone)
    if built:
        print(f"stored rankings built for {built} preset periods")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    settings = _settings(args)
    engine = database.make_engine(settings.db_url)
    origin = source.for_settings(settings)
    report = rollups.verify(engine, settings.timezone, origin)
    pending = rollups.pending_events(engine, origin)
    for line in report.differences:
        print(line)
    if pending:
        print(f"note: {pending:,} events are not in the rollups yet (run refresh)")
    if report.ok:
        print(f"rollups match the raw events ({report.checked_events:,} events checked)")
        return 0
    print(f"rollups differ from the raw events: {len(report.differences)} problems")
    return 1


class _ProgressLine:
    """One progress line on stderr, rewritten in place; `end` moves past it."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.shown = False

    def show(self, done: int, fraction: float | None = None) -> None:
        share = f" ({fraction:.0%})" if fraction is not None else ""
        print(f"\r  {self.label}: {done:,} rows{share}", end="", file=sys.stderr, flush=True)
        self.shown = True

    def end(self) -> None:
        if self.shown:
            print(file=sys.stderr)
            self.shown = False


def cmd_import(args: argparse.Namespace) -> int:
    settings = _writable(_settings(args))
    engine = database.make_engine(settings.db_url)
    database.upgrade(engine)
    line = _ProgressLine(args.kind)
    try:
        result = importer.import_file(
            engine, args.kind, args.file, timezone=settings.timezone,
            batch_size=args.batch_size,
            progress=lambda r, fraction: line.show(r.read, fraction),
        )
    except importer.ImportFileError as exc:
        line.end()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        line.end()
    print(result.summary())
    return 0 if result.ok else 1


def _describe_prices(unit: prices.UnitPrices) -> str:
    return (f"input ${prices.format_per_mtok(unit.input)}, cached input "
            f"${prices.format_per_mtok(unit.cached_input)}, output "
            f"${prices.format_per_mtok(unit.output)} per million tokens")


def _parse_moment(value: str, option: str) -> datetime:
    try:
        return importer.parse_timestamp(value, option)
    except importer.RowError as exc:
        raise ConfigError(str(exc)) from None


def cmd_prices(args: argparse.Namespace) -> int:
    settings = _settings(args)
    engine = database.make_engine(settings.db_url)
    database.upgrade(engine)
    action = args.prices_command or "list"
    if action == "set":
        try:
            override = prices.set_override(
                engine, args.provider, args.model, _parse_moment(args.effective_from, "--from"),
                input_usd=args.input, output_usd=args.output,
                cached_input_usd=args.cached_input,
            )
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"price override #{override.id}: {override.provider}/{override.model} from "
              f"{override.effective_from:%Y-%m-%d %H:%M} UTC: {_describe_prices(override.prices)}")
        print("stored events keep their cost until you run `python -m tokenusage reprice`")
        return 0
    if action == "delete":
        if not prices.delete_override(engine, args.id):
            print(f"error: no price override #{args.id}", file=sys.stderr)
            return 2
        print(f"deleted price override #{args.id}; run `python -m tokenusage reprice` to apply")
        return 0
    if action == "show":
        when = (_parse_moment(args.at, "--at") if args.at
                else datetime.now(UTC).replace(tzinfo=None))
        info = prices.PriceBook.load(engine).info(args.provider, args.model, when)
        provider, model = prices.normalize(args.provider, args.model)
        print(f"{model} ({provider or 'any provider'}) at {when:%Y-%m-%d %H:%M} UTC")
        quote = info.genai
        if quote is None:
            print("  genai-prices: no price known")
        else:
            print(f"  genai-prices: {quote.provider_name}/{quote.model_id}: "
                  f"{_describe_prices(quote.prices)}")
            for start, region in zip(quote.tiers, quote.regions[1:], strict=True):
                if region is not None:
                    print(f"    above {start:,} input tokens: {_describe_prices(region)}")
            if quote.per_event or None in quote.regions:
                print("    prices vary by time of day or per call: events are priced one by one")
        if info.override is not None:
            found = info.override
            print(f"  override #{found.id} from {found.effective_from:%Y-%m-%d %H:%M}: "
                  f"{_describe_prices(found.prices)}")
        print(f"  applies: {info.source or 'nothing (such events are stored unpriced)'}")
        return 0
    overrides = prices.list_overrides(engine)
    if not overrides:
        print("no price overrides: every price comes from genai-prices. Add one with\n"
              "  python -m tokenusage prices set PROVIDER MODEL --from DATE --input X "
              "--output Y [--cached-input Z]")
        return 0
    print("price overrides, USD per million tokens, effective from (UTC):")
    rows = [("id", "provider", "model", "from", "input", "cached input", "output")]
    rows += [(str(o.id), o.provider or "-", o.model, f"{o.effective_from:%Y-%m-%d %H:%M}",
              prices.format_per_mtok(o.prices.input),
              prices.format_per_mtok(o.prices.cached_input),
              prices.format_per_mtok(o.prices.output)) for o in overrides]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
              .rstrip())
    return 0


def cmd_reprice(args: argparse.Namespace) -> int:
    settings = _writable(_settings(args))
    engine = database.make_engine(settings.db_url)
    database.upgrade(engine)
    line = _ProgressLine("repriced")
    try:
        result = prices.reprice(engine, settings.timezone, batch_size=args.batch_size,
                                on_batch=lambda r: line.show(r.checked))
    finally:
        line.end()
    print(f"repriced {result.checked:,} events with computed or missing prices: "
          f"{result.changed:,} changed, {result.computed:,} priced, "
          f"{result.unpriced:,} still without a price")
    if result.unpriced_models:
        top = sorted(result.unpriced_models.items(), key=lambda item: -item[1])[:5]
        print("  no price known for: " + ", ".join(
            f"{p + '/' if p else ''}{m} ({n:,})" for (p, m), n in top))
    print(f"rollups rebuilt: {result.refresh.events:,} events (timezone {settings.timezone})")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from tokenusage import bench

    size = bench.Size(users=args.users, events=args.events, days=args.days, seed=args.seed)
    return bench.run(args.db, size, load_settings().timezone, args.runs, args.search,
                     args.new_events)


def _add_data_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="import users, events or payments from CSV or JSON Lines")
    p.add_argument("kind", choices=importer.KINDS)
    p.add_argument("file", help=".csv, .jsonl or .ndjson, optionally .gz")
    p.add_argument("--batch-size", type=int, default=importer.BATCH_SIZE,
                   help="rows per transaction (default %(default)s)")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("prices", help="list, show or set model prices (local overrides)")
    p.set_defaults(func=cmd_prices, prices_command=None)
    actions = p.add_subparsers(dest="prices_command")
    actions.add_parser("list", help="list the local price overrides (the default)")
    show = actions.add_parser("show", help="the price of a model: genai-prices and overrides")
    show.add_argument("model", help="e.g. gpt-4o, openai/gpt-4o, gpt-4o-2024-08-06")
    show.add_argument("--provider", default="", help="e.g. openai, anthropic, google")
    show.add_argument("--at", help="ISO date or time (UTC unless an offset is given); "
                      "default now")
    put = actions.add_parser("set", help="set a local price, in USD per million tokens")
    put.add_argument("provider")
    put.add_argument("model")
    put.add_argument("--from", dest="effective_from", required=True,
                     help="ISO date or time it applies from (UTC unless an offset is given)")
    put.add_argument("--input", required=True, help="USD per million input tokens")
    put.add_argument("--output", required=True, help="USD per million output tokens")
    put.add_argument("--cached-input", help="USD per million cached input tokens "
                     "(default: the input price)")
    drop = actions.add_parser("delete", help="delete a local price by id")
    drop.add_argument("id", type=int)

    p = sub.add_parser("reprice", help="recompute computed and missing costs after a price "
                       "change, then rebuild the rollups")
    p.add_argument("--batch-size", type=int, default=prices.REPRICE_BATCH_SIZE)
    p.set_defaults(func=cmd_reprice)


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
    _add_data_commands(sub)
    p = sub.add_parser("bench", help="build (or reuse) a large demo database and print "
                       "latency, render, refresh, import and memory figures")
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--events", type=int, default=10_000_000)
    p.add_argument("--days", type=int, default=365)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--runs", type=int, default=15, help="timed runs per query")
    p.add_argument("--search", default="smith", help="search term to time")
    p.add_argument("--new-events", type=int, default=100_000,
                   help="events to import before timing the refresh")
    p.set_defaults(func=cmd_bench)
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
