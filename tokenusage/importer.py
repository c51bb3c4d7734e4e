"""Import users, usage events and payments from CSV or JSON Lines files.

The format follows the file name: `.csv`, `.jsonl` or `.ndjson`, each optionally
gzip-compressed (`.gz`). Rows are validated one by one; a bad row is written with its
line number and reason to `FILE.rejects.csv` next to the input while the good rows
land. Rows stream through in batches, each one transaction, so memory stays bounded
and an interrupted import can simply be run again: stored keys (user_id, request_id,
payment_id) are skipped. Events and payments of unknown users create placeholder users.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import re
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Engine, func, select

from tokenusage import ingest, rollups
from tokenusage.config import load_settings
from tokenusage.money import to_nanos
from tokenusage.prices import PriceBook, as_utc_naive
from tokenusage.schema import users

KINDS = ("users", "events", "payments")
BATCH_SIZE = ingest.BATCH_SIZE
MAX_BIGINT = 2**63 - 1
EARLIEST = datetime(1970, 1, 1)
LATEST = datetime(2100, 1, 1)
FUTURE_TOLERANCE = timedelta(days=1)
SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
_INTEGER = re.compile(r"\s*[+-]?[0-9]+\s*")


@dataclass(frozen=True)
class Spec:
    """Columns of one kind of file: those the header must have, and optional ones."""

    required: tuple[str, ...]
    optional: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        return self.required + self.optional


SPECS = {
    "users": Spec(("user_id", "name", "email", "plan", "signed_up_at")),
    "events": Spec(
        ("request_id", "user_id", "occurred_at", "model", "input_tokens", "output_tokens"),
        ("provider", "cached_input_tokens", "cost_usd"),
    ),
    "payments": Spec(("payment_id", "user_id", "paid_at", "amount_usd")),
}


class ImportFileError(Exception):
    """The file cannot be imported at all (unreadable, unknown format, bad header)."""


class RowError(ValueError):
    """One row is invalid; the message is the reason written to the rejects file."""


# --- field parsers (shared with tokenusage.recording) --------------------------------------


def _present(values: Mapping[str, Any], name: str) -> Any:
    if name not in values:
        raise RowError(f"{name}: missing field")
    return values[name]


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def parse_text(value: Any, name: str, max_length: int, required: bool = False) -> str:
    """A text field: stripped; ids may be JSON integers; NUL and invalid UTF-8 are refused."""
    if value is None:
        text = ""
    elif isinstance(value, str):
        text = value.strip()
    elif isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    else:
        raise RowError(f"{name}: expected text, got {_show(value)}")
    if required and not text:
        raise RowError(f"{name}: empty")
    if "\x00" in text:
        raise RowError(f"{name}: contains a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise RowError(f"{name}: not valid UTF-8") from None
    if len(text) > max_length:
        raise RowError(f"{name}: longer than {max_length} characters")
    return text


def parse_count(value: Any, name: str, default: int | None = None) -> int:
    """A token count: a whole, non-negative number (an integer or a string of digits)."""
    if type(value) is str and value.isascii() and value.isdigit():
        number = int(value)
        if number > MAX_BIGINT:
            raise RowError(f"{name}: too large")
        return number
    if _is_blank(value):
        if default is None:
            raise RowError(f"{name}: empty")
        return default
    if isinstance(value, bool):
        raise RowError(f"{name}: not a whole number: {_show(value)}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        number = int(value)
    elif isinstance(value, str) and _INTEGER.fullmatch(value):
        number = int(value)
    else:
        raise RowError(f"{name}: not a whole number: {_show(value)}")
    if number < 0:
        raise RowError(f"{name}: negative ({number})")
    if number > MAX_BIGINT:
        raise RowError(f"{name}: too large")
    return number


def parse_timestamp(value: Any, name: str, required: bool = True,
                    not_after: datetime | None = None) -> datetime | None:
    """An ISO 8601 timestamp as naive UTC; without an offset it means UTC."""
    if _is_blank(value):
        if required:
            raise RowError(f"{name}: empty")
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise RowError(f"{name}: not an ISO 8601 timestamp: {_show(value)}") from None
    else:
        raise RowError(f"{name}: not an ISO 8601 timestamp: {_show(value)}")
    moment = as_utc_naive(moment)
    if not EARLIEST <= moment < LATEST:
        raise RowError(f"{name}: out of range ({moment:%Y-%m-%d}; expected 1970 to 2099)")
    if not_after is not None and moment > not_after:
        raise RowError(f"{name}: in the future ({moment.isoformat()} UTC)")
    return moment


def parse_usd(value: Any, name: str, required: bool = True) -> int | None:
    """A non-negative USD amount as integer nano-dollars, parsed with Decimal (never float)."""
    if _is_blank(value):
        if required:
            raise RowError(f"{name}: empty")
        return None
    if isinstance(value, float):
        raise TypeError(f"{name} must not be a float; pass a Decimal or a string")
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise RowError(f"{name}: not a decimal amount: {_show(value)}")
    try:
        amount = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise RowError(f"{name}: not a decimal amount: {_show(value)}") from None
    if not amount.is_finite():
        raise RowError(f"{name}: not a decimal amount: {_show(value)}")
    if amount < 0:
        raise RowError(f"{name}: negative ({amount})")
    nanos = to_nanos(amount)
    if nanos > MAX_BIGINT:
        raise RowError(f"{name}: too large")
    return nanos


def _show(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else repr(value.strip())
    return text if len(text) <= 60 else text[:57] + "..."


# --- rows of each kind -----------------------------------------------------------------------


def user_row(values: Mapping[str, Any]) -> dict[str, Any]:
    """A users row for ingest.upsert_users; raises RowError."""
    user_id = parse_text(_present(values, "user_id"), "user_id", 191, required=True)
    name = parse_text(_present(values, "name"), "name", 255)
    email = parse_text(_present(values, "email"), "email", 255)
    if email and not _EMAIL.fullmatch(email):
        raise RowError(f"email: not an email address: {_show(email)}")
    return {
        "user_id": user_id,
        "name": name,
        "email": email,
        "plan": parse_text(_present(values, "plan"), "plan", 64) or "free",
        "signed_up_at": parse_timestamp(_present(values, "signed_up_at"), "signed_up_at",
                                        required=False),
    }


def event_row(values: Mapping[str, Any], book: PriceBook,
              now: datetime | None = None) -> dict[str, Any]:
    """A usage_events row for ingest.insert_events, priced when it has no cost; raises RowError.

    `now` (naive UTC) bounds the event time: an event more than a day in the future is refused.
    """
    now = now or datetime.now(UTC).replace(tzinfo=None)
    row = {
        "request_id": parse_text(_present(values, "request_id"), "request_id", 191,
                                 required=True),
        "user_id": parse_text(_present(values, "user_id"), "user_id", 191, required=True),
        "occurred_at": parse_timestamp(_present(values, "occurred_at"), "occurred_at",
                                       not_after=now + FUTURE_TOLERANCE),
        "provider": parse_text(values.get("provider"), "provider", 64),
        "model": parse_text(_present(values, "model"), "model", 128, required=True),
        "input_tokens": parse_count(_present(values, "input_tokens"), "input_tokens"),
        "output_tokens": parse_count(_present(values, "output_tokens"), "output_tokens"),
        "cached_input_tokens": parse_count(values.get("cached_input_tokens"),
                                           "cached_input_tokens", default=0),
    }
    input_tokens, output_tokens = row["input_tokens"], row["output_tokens"]
    cached = row["cached_input_tokens"]
    if cached > input_tokens:
        raise RowError(f"cached_input_tokens: more than input_tokens ({cached} > {input_tokens})")
    cost = parse_usd(values.get("cost_usd"), "cost_usd", required=False)
    if cost is not None:
        row["cost_nanos"], row["cost_source"] = cost, "source"
    else:
        cost = book.cost_nanos(row["provider"], row["model"], row["occurred_at"],
                               input_tokens, output_tokens, cached)
        row["cost_nanos"] = cost
        row["cost_source"] = "unpriced" if cost is None else "computed"
    return row


def payment_row(values: Mapping[str, Any]) -> dict[str, Any]:
    """A payments row for ingest.insert_payments; raises RowError."""
    return {
        "payment_id": parse_text(_present(values, "payment_id"), "payment_id", 191,
                                 required=True),
        "user_id": parse_text(_present(values, "user_id"), "user_id", 191, required=True),
        "paid_at": parse_timestamp(_present(values, "paid_at"), "paid_at"),
        "amount_nanos": parse_usd(_present(values, "amount_usd"), "amount_usd"),
    }


# --- reading files -------------------------------------------------------------------------


@dataclass
class Record:
    """One record of the file: its first line number, raw text, and values or a parse error."""

    line: int
    raw: str
    values: Mapping[str, Any] | None = None
    error: str | None = None


def file_format(path: Path) -> tuple[str, bool]:
    """('csv' or 'jsonl', gzipped) from the file name."""
    suffixes = [s.lower() for s in path.suffixes]
    gz = bool(suffixes) and suffixes[-1] == ".gz"
    if gz:
        suffixes = suffixes[:-1]
    kind = SUFFIXES.get(suffixes[-1]) if suffixes else None
    if kind is None:
        raise ImportFileError(
            f"{path.name}: unknown format; expected .csv, .jsonl or .ndjson (optionally .gz)")
    return kind, gz


def rejects_path(path: Path) -> Path:
    """Where the rejected rows of `path` are written: `FILE.rejects.csv` next to it."""
    return path.with_name(path.name + ".rejects.csv")


class _Capture:
    """Iterates the lines of a text stream, keeping those of the current record."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.lines: list[str] = []
        self.count = 0

    def __iter__(self) -> _Capture:
        return self

    def __next__(self) -> str:
        line = next(self.stream)
        self.lines.append(line)
        self.count += 1
        return line

    def take(self) -> tuple[int, str]:
        first, raw = self.count - len(self.lines) + 1, "".join(self.lines)
        self.lines.clear()
        return first, raw


class Source:
    """An open import file: records one by one, and how far through the file reading is."""

    def __init__(self, path: Path, spec: Spec) -> None:
        self.path = path
        self.format, gz = file_format(path)
        try:
            self._raw = open(path, "rb")  # noqa: SIM115 - closed in close()
            self.size = os.fstat(self._raw.fileno()).st_size
            binary: IO[bytes] = gzip.GzipFile(fileobj=self._raw) if gz else self._raw
            self._text = io.TextIOWrapper(binary, encoding="utf-8-sig",
                                          errors="surrogateescape", newline="")
            self._records = self._csv(spec) if self.format == "csv" else self._jsonl()
            if self.format == "csv":
                next(self._records)  # read and check the header before anything is written
        except ImportFileError:
            self.close()
            raise
        except (OSError, EOFError, zlib.error) as exc:
            self.close()
            raise ImportFileError(f"{path}: cannot read: {exc}") from exc

    def close(self) -> None:
        for handle in ("_text", "_raw"):
            stream = getattr(self, handle, None)
            if stream is not None:
                try:
                    stream.close()
                except (OSError, EOFError, zlib.error):
                    pass

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def fraction(self) -> float | None:
        """How much of the file has been read, from 0 to 1 (None for an empty file)."""
        if not self.size or self._raw.closed:
            return None
        return min(self._raw.tell() / self.size, 1.0)

    def __iter__(self) -> Iterator[Record]:
        try:
            yield from self._records
        except (OSError, EOFError, zlib.error) as exc:
            raise ImportFileError(
                f"{self.path}: cannot read the rest of the file: {exc}. The complete batches "
                f"before this point were imported; importing the repaired file again is safe"
            ) from exc

    def _csv(self, spec: Spec) -> Iterator[Record]:
        lines = _Capture(self._text)
        reader = csv.reader(lines)
        try:
            header = next(reader, None)
        except csv.Error as exc:
            raise ImportFileError(f"{self.path}: bad header: {exc}") from exc
        if header is None:
            raise ImportFileError(f"{self.path}: the file is empty (expected a header line)")
        names = [name.strip().lower() for name in header]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        missing = [c for c in spec.required if c not in names]
        if missing or duplicated:
            problem = (f"missing column(s) {', '.join(missing)}" if missing
                       else f"duplicated column(s) {', '.join(duplicated)}")
            raise ImportFileError(
                f"{self.path}: bad header: {problem}; expected columns: {', '.join(spec.columns)}"
            )
        lines.take()
        yield Record(1, "")
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                line, raw = lines.take()
                yield Record(line, raw, error=f"malformed CSV: {exc}")
                continue
            line, raw = lines.take()
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) != len(names):
                yield Record(line, raw,
                             error=f"expected {len(names)} fields, found {len(row)}")
                continue
            yield Record(line, raw, dict(zip(names, row, strict=True)))

    def _jsonl(self) -> Iterator[Record]:
        for number, line in enumerate(self._text, start=1):
            if not line.strip():
                continue
            try:
                values = json.loads(line, parse_float=Decimal, parse_constant=_no_constant)
            except (json.JSONDecodeError, ValueError) as exc:
                yield Record(number, line, error=f"malformed JSON: {exc}")
                continue
            if not isinstance(values, dict):
                yield Record(number, line, error="not a JSON object")
                continue
            yield Record(number, line, {str(k).strip().lower(): v for k, v in values.items()})


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number")


class _Rejects:
    """The rejects file, opened on the first rejected row."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._file: IO[str] | None = None
        self._writer: Any = None

    def add(self, record: Record, reason: str) -> None:
        if self._file is None:
            self._file = open(self.path, "w", encoding="utf-8", errors="surrogateescape",  # noqa: SIM115
                              newline="")
            self._writer = csv.writer(self._file)
            self._writer.writerow(["line", "reason", "raw"])
        self._writer.writerow([record.line, reason, record.raw.rstrip("\r\n")])
        self.count += 1

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


# --- importing -----------------------------------------------------------------------------


@dataclass
class ImportResult:
    """What an import did. `duplicates` are rows already stored (or repeated in the file)."""

    kind: str
    path: Path
    read: int = 0
    imported: int = 0
    updated: int = 0
    duplicates: int = 0
    rejected: int = 0
    placeholders: int = 0
    rejects_path: Path | None = None
    unpriced_models: Counter = field(default_factory=Counter)
    refresh: rollups.RefreshResult | None = None

    @property
    def ok(self) -> bool:
        return not self.rejected

    def summary(self) -> str:
        """Human summary: read, imported, duplicates skipped, rejected, and what to do next."""
        imported = f"imported {self.imported:,}"
        if self.kind == "users":
            imported = f"new {self.imported:,}, updated {self.updated:,}"
        lines = [
            f"{self.kind} from {self.path}: read {self.read:,}, {imported}, "
            f"duplicates skipped {self.duplicates:,}, rejected {self.rejected:,}"
        ]
        if self.rejected and self.rejects_path:
            lines.append(f"  rejected rows with line numbers and reasons: {self.rejects_path}")
        if self.placeholders:
            lines.append(f"  placeholder users created for unknown user ids: "
                         f"{self.placeholders:,} (import a users file to fill them in)")
        if self.unpriced_models:
            top = ", ".join(f"{p + '/' if p else ''}{m} ({n:,})"
                            for (p, m), n in self.unpriced_models.most_common(5))
            lines.append(f"  no price known for: {top}; add one with `python -m tokenusage "
                         f"prices set`, then run `python -m tokenusage reprice`")
        if self.refresh is not None:
            lines.append(f"  rollups {self.refresh.mode}: {self.refresh.events:,} events")
        return "\n".join(lines)


def _count_placeholders(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(
            select(func.count()).select_from(users).where(users.c.is_placeholder.is_(True))
        ).scalar() or 0


def _same_time(stored: datetime | None, new: datetime | None) -> bool:
    if stored is None or new is None:
        return stored is new
    return stored == new or (stored.microsecond == 0 and stored == new.replace(microsecond=0))


def _write_users(engine: Engine, batch: list[dict[str, Any]]) -> ingest.IngestStats:
    """Upsert the users of one batch that are new or differ from what is stored."""
    latest = {row["user_id"]: row for row in batch}
    stored = {}
    with engine.connect() as connection:
        for chunk in ingest.batched(latest, 1_000):
            stored.update((r.user_id, r) for r in connection.execute(
                select(users).where(users.c.user_id.in_(chunk))))
    changed = [
        row for uid, row in latest.items()
        if uid not in stored or stored[uid].is_placeholder
        or (stored[uid].name, stored[uid].email, stored[uid].plan)
        != (row["name"], row["email"], row["plan"])
        or not _same_time(stored[uid].signed_up_at, row["signed_up_at"])
    ]
    stats = ingest.upsert_users(engine, changed) if changed else ingest.IngestStats()
    return ingest.IngestStats(read=len(batch), inserted=stats.inserted, updated=stats.updated,
                              duplicates=len(batch) - len(changed))


def import_file(
    engine: Engine,
    kind: str,
    path: str | os.PathLike[str],
    *,
    timezone: str | None = None,
    batch_size: int = BATCH_SIZE,
    refresh: bool = True,
    book: PriceBook | None = None,
    on_batch: Callable[[ImportResult], None] | None = None,
    progress: Callable[[ImportResult, float | None], None] | None = None,
    now: datetime | None = None,
) -> ImportResult:
    """Import one file of `kind` ('users', 'events' or 'payments').

    Raises ImportFileError, before writing anything, when the file cannot be opened, has an
    unknown extension or a bad CSV header. After an events import the rollups are refreshed
    for `timezone` (default: the configured business timezone) unless `refresh` is false.
    `on_batch` runs after each committed batch; `progress` gets the running result and the
    fraction of the file read.
    """
    if kind not in SPECS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    path = Path(path)
    if not path.is_file():
        raise ImportFileError(f"{path}: no such file")
    result = ImportResult(kind, path)
    with Source(path, SPECS[kind]) as source:
        stale = rejects_path(path)
        if stale.exists():
            stale.unlink()
        rejects = _Rejects(stale)
        if kind == "events":
            book = book or PriceBook.load(engine)
            now = now or datetime.now(UTC).replace(tzinfo=None)

            def convert(values: Mapping[str, Any]) -> dict[str, Any]:
                return event_row(values, book, now)
        else:
            convert = user_row if kind == "users" else payment_row

        def good_rows() -> Iterator[dict[str, Any]]:
            for record in source:
                result.read += 1
                try:
                    if record.error:
                        raise RowError(record.error)
                    row = convert(record.values)
                except RowError as exc:
                    rejects.add(record, str(exc))
                    result.rejected += 1
                    continue
                if row.get("cost_source") == "unpriced":
                    result.unpriced_models[(row["provider"], row["model"])] += 1
                yield row

        placeholders_before = _count_placeholders(engine) if kind != "users" else 0
        try:
            for batch in ingest.batched(good_rows(), batch_size):
                if kind == "users":
                    stats = _write_users(engine, batch)
                elif kind == "events":
                    stats = ingest.insert_events(engine, batch, batch_size=len(batch))
                else:
                    stats = ingest.insert_payments(engine, batch)
                result.imported += stats.inserted
                result.updated += stats.updated
                result.duplicates += stats.duplicates
                if progress:
                    progress(result, source.fraction)
                if on_batch:
                    on_batch(result)
        finally:
            rejects.close()
            result.rejects_path = stale if rejects.count else None
    if kind != "users":
        result.placeholders = _count_placeholders(engine) - placeholders_before
    if kind == "events" and refresh:
        result.refresh = rollups.refresh(engine, timezone or load_settings().timezone)
    return result
