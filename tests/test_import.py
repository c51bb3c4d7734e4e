"""Importing users, events and payments: formats, rejections, idempotency and resuming."""

from __future__ import annotations

import csv
import gzip
import json
import re
import shutil
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from genai_prices import Usage, calc_price
from sqlalchemy import func, select

from tokenusage import ingest, queries, rollups
from tokenusage.cli import main
from tokenusage.importer import ImportFileError, import_file, rejects_path
from tokenusage.money import to_nanos
from tokenusage.periods import DayRange
from tokenusage.schema import payments, usage_events, users

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TZ = "Europe/Berlin"
NOW = datetime(2026, 11, 20, 12, 0)
EVENT_HEADER = ("request_id,user_id,occurred_at,provider,model,input_tokens,output_tokens,"
                "cached_input_tokens,cost_usd")


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def rows_of(engine, table, *order) -> list[dict]:
    columns = [c for c in table.c if c.name != "id"]
    with engine.connect() as connection:
        return [dict(r) for r in connection.execute(
            select(*columns).order_by(*(table.c[o] for o in order))).mappings()]


def count(engine, table) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(table)).scalar()


def rejects(path: Path) -> list[tuple[int, str, str]]:
    with open(rejects_path(path), encoding="utf-8", errors="surrogateescape",
              newline="") as handle:
        reader = csv.reader(handle)
        assert next(reader) == ["line", "reason", "raw"]
        return [(int(line), reason, raw) for line, reason, raw in reader]


def expected_example_costs() -> dict[str, int]:
    """Cost of every example event: its cost_usd, or genai-prices' calc_price at its time."""
    costs = {}
    with open(EXAMPLES / "events.csv", encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["cost_usd"]:
                costs[row["request_id"]] = to_nanos(row["cost_usd"])
                continue
            model = row["model"].split("/")[-1]
            usage = Usage(input_tokens=int(row["input_tokens"]),
                          cache_read_tokens=int(row["cached_input_tokens"]),
                          output_tokens=int(row["output_tokens"]))
            when = datetime.fromisoformat(row["occurred_at"])
            price = calc_price(usage, model, provider_id=row["provider"],
                               genai_request_timestamp=when)
            costs[row["request_id"]] = to_nanos(price.total_price)
    return costs


def test_examples_import_idempotently(engine, tmp_path):
    for kind in ("users", "events", "payments"):
        shutil.copy(EXAMPLES / f"{kind}.csv", tmp_path)
    first = {kind: import_file(engine, kind, tmp_path / f"{kind}.csv", timezone=TZ)
             for kind in ("users", "events", "payments")}
    assert [(r.read, r.imported, r.duplicates, r.rejected) for r in first.values()] == [
        (5, 5, 0, 0), (10, 10, 0, 0), (4, 4, 0, 0)]
    stored = {t.name: rows_of(engine, t, key) for t, key in
              ((users, "user_id"), (usage_events, "request_id"), (payments, "payment_id"))}

    again = {kind: import_file(engine, kind, tmp_path / f"{kind}.csv", timezone=TZ)
             for kind in ("users", "events", "payments")}
    assert [(r.read, r.imported, r.updated, r.duplicates, r.rejected)
            for r in again.values()] == [(5, 0, 0, 5, 0), (10, 0, 0, 10, 0), (4, 0, 0, 4, 0)]
    assert stored == {t.name: rows_of(engine, t, key) for t, key in
                      ((users, "user_id"), (usage_events, "request_id"),
                       (payments, "payment_id"))}
    assert not rejects_path(tmp_path / "events.csv").exists()

    events = {e["request_id"]: e for e in stored["usage_events"]}
    expected = expected_example_costs()
    assert {rid: e["cost_nanos"] for rid, e in events.items()} == expected
    assert events["req_01JD9A1B2C"]["cost_source"] == "computed"
    assert events["req_01JDB4P5Q6"]["cost_source"] == "computed"
    assert events["req_01JD8K2M3N"]["cost_source"] == "source"
    assert events["req_01JD9A1B2C"]["occurred_at"] == datetime(2026, 11, 2, 11, 2, 11)
    assert events["req_01JDB4P5Q6"]["occurred_at"] == datetime(2026, 11, 6, 0, 44, 30)
    people = {u["user_id"]: u for u in stored["users"]}
    assert people["u_1002"]["name"] == "Анна Смирнова"
    assert people["u_1004"]["name"] == "García, Lucía"
    assert people["u_1002"]["signed_up_at"] == datetime(2026, 5, 2, 14, 45, 10)
    assert people["u_1005"]["signed_up_at"] is None
    assert sum(p["amount_nanos"] for p in stored["payments"]) == 500 * 10**9

    assert rollups.verify(engine, TZ).ok
    assert rollups.pending_events(engine) == 0
    with queries.snapshot(engine) as connection:
        totals = queries.period_totals(connection, DayRange(None, None))
    assert totals.spend_nanos == sum(expected.values())
    assert (totals.events, totals.unpriced, totals.users) == (10, 0, 5)

    updated = (EXAMPLES / "users.csv").read_text(encoding="utf-8").replace(
        "u_1002,Анна Смирнова,anna.smirnova@yandex.ru,team",
        "u_1002,Анна Кузнецова,anna.k@yandex.ru,enterprise")
    result = import_file(engine, "users", write(tmp_path, "users.csv", updated))
    assert (result.imported, result.updated, result.duplicates) == (0, 1, 4)
    anna = next(u for u in rows_of(engine, users, "user_id") if u["user_id"] == "u_1002")
    assert (anna["name"], anna["email"], anna["plan"]) == (
        "Анна Кузнецова", "anna.k@yandex.ru", "enterprise")
    assert "кузнецова" in anna["search_key"]


def test_every_event_rejection_reason(sqlite_engine, tmp_path):
    long_id = "r" * 192
    lines = [
        EVENT_HEADER,
        "ok-1,u1,2026-11-01T10:00:00Z,openai,gpt-4o,100,10,0,0.5",
        ",u1,2026-11-01T10:00:00Z,openai,gpt-4o,100,10,0,",
        "e3,u1,2026-11-01T10:00:00Z,openai,gpt-4o,100,10,0",
        "e4,u1,yesterday,openai,gpt-4o,100,10,0,",
        "e5,u1,2026-11-01T10:00:00Z,openai,gpt-4o,-5,10,0,",
        "e6,u1,2026-11-01T10:00:00Z,openai,gpt-4o,100,12.5,0,",
        "e7,u1,2026-11-01T10:00:00Z,openai,gpt-4o,100,10,101,",
        "e8,u1,2026-11-01T10:00:00Z,openai,gpt-4o,100,10,0,1.2.3",
        "e9,u1,2026-11-01T10:00:00Z,openai,gpt-4o,100,10,0,-0.01",
        "e10,u1,2026-12-25T10:00:00Z,openai,gpt-4o,100,10,0,",
        f"{long_id},u1,2026-11-01T10:00:00Z,openai,gpt-4o,100,10,0,",
        "e12,u1,2026-11-01T10:00:00Z,openai,,100,10,0,",
        'e13,u1,2026-11-01T10:00:00Z,openai,"gpt-4o',
        'multi",x,10,0,',
        "e15,u1,1969-12-31T23:59:59Z,openai,gpt-4o,100,10,0,",
        "e16,,2026-11-01T10:00:00Z,openai,gpt-4o,100,10,0,",
        "e17,u1,2026-11-01T10:00:00Z,openai,gpt-4o,,10,0,",
        "e18,u1,2026-11-01T10:00:00Z,openai,gpt-4o,100,10,0,NaN",
        "",
        "ok-2,u2,2026-11-01T12:00:00+02:00,openai,gpt-4o-2024-08-06,1000,100,200,",
    ]
    path = write(tmp_path, "events.csv", "\n".join(lines) + "\n")
    result = import_file(sqlite_engine, "events", path, timezone=TZ, now=NOW)
    assert (result.read, result.imported, result.rejected) == (18, 2, 16)
    assert result.rejects_path == rejects_path(path)
    got = rejects(path)
    assert [(line, reason) for line, reason, _ in got] == [
        (3, "request_id: empty"),
        (4, "expected 9 fields, found 8"),
        (5, "occurred_at: not an ISO 8601 timestamp: 'yesterday'"),
        (6, "input_tokens: negative (-5)"),
        (7, "output_tokens: not a whole number: '12.5'"),
        (8, "cached_input_tokens: more than input_tokens (101 > 100)"),
        (9, "cost_usd: not a decimal amount: '1.2.3'"),
        (10, "cost_usd: negative (-0.01)"),
        (11, "occurred_at: in the future (2026-12-25T10:00:00 UTC)"),
        (12, "request_id: longer than 191 characters"),
        (13, "model: empty"),
        (14, "input_tokens: not a whole number: 'x'"),
        (16, "occurred_at: out of range (1969-12-31; expected 1970 to 2099)"),
        (17, "user_id: empty"),
        (18, "input_tokens: empty"),
        (19, "cost_usd: not a decimal amount: 'NaN'"),
    ]
    assert got[1][2] == lines[3]
    assert got[11][2] == lines[13] + "\n" + lines[14]
    stored = {e["request_id"]: e for e in rows_of(sqlite_engine, usage_events, "request_id")}
    assert set(stored) == {"ok-1", "ok-2"}
    assert stored["ok-1"]["cost_nanos"] == 500_000_000
    assert stored["ok-2"]["occurred_at"] == datetime(2026, 11, 1, 10, 0)
    expected = calc_price(Usage(input_tokens=1000, cache_read_tokens=200, output_tokens=100),
                          "gpt-4o-2024-08-06", provider_id="openai",
                          genai_request_timestamp=datetime(2026, 11, 1, 10, tzinfo=UTC))
    assert stored["ok-2"]["cost_nanos"] == to_nanos(expected.total_price)
    assert "rejected 16" in result.summary()


def test_jsonl_rejections_and_values(sqlite_engine, tmp_path):
    good = ('"user_id": 42, "occurred_at": "2026-11-01T10:00:00Z", "provider": "openai", '
            '"model": "openai/gpt-4o-mini", "output_tokens": 300, "cached_input_tokens": 0')
    lines = [
        '{"request_id": "j1", "input_tokens": 1200, "cost_usd": 0.000123456789, ' + good + "}",
        "{not json",
        "[1, 2, 3]",
        '{"request_id": "j4", ' + good + "}",
        '{"request_id": "j5", "input_tokens": 5, ' + good.replace("42", '["a"]') + "}",
        '{"request_id": "j6", "input_tokens": true, ' + good + "}",
        "",
        '{"request_id": "j8", "input_tokens": 5, "cost_usd": Infinity, ' + good + "}",
        '{"request_id": "j9", "input_tokens": 12.0, "cost_usd": null, '
        + good.replace('"openai", ', "null, ") + "}",
    ]
    raw = "\n".join(lines).encode("utf-8")
    raw += b'\n{"request_id": "j10", "user_id": "\xff\xfe", "occurred_at": "2026-11-01"}\n'
    path = tmp_path / "events.ndjson"
    path.write_bytes(raw)
    result = import_file(sqlite_engine, "events", path, timezone=TZ, now=NOW)
    got = rejects(path)
    assert [(line, reason.split(":")[0]) for line, reason, _ in got] == [
        (2, "malformed JSON"), (3, "not a JSON object"), (4, "input_tokens"),
        (5, "user_id"), (6, "input_tokens"), (8, "malformed JSON"), (10, "user_id")]
    assert got[2][1] == "input_tokens: missing field"
    assert got[3][1] == "user_id: expected text, got ['a']"
    assert got[4][1] == "input_tokens: not a whole number: True"
    assert got[5][1] == "malformed JSON: Infinity is not a number"
    assert got[6][1] == "user_id: not valid UTF-8"
    assert got[0][2] == "{not json"
    assert rejects_path(path).read_bytes().count(b"\xff\xfe") == 1
    assert (result.read, result.imported, result.rejected) == (9, 2, 7)
    stored = {e["request_id"]: e for e in rows_of(sqlite_engine, usage_events, "request_id")}
    assert stored["j1"]["user_id"] == "42"
    assert stored["j1"]["cost_nanos"] == 123_457  # parsed as Decimal, rounded half up
    assert stored["j9"]["input_tokens"] == 12
    assert stored["j9"]["provider"] == ""
    assert stored["j9"]["cost_source"] == "computed"
    expected = calc_price(Usage(input_tokens=12, output_tokens=300), "gpt-4o-mini",
                          provider_id="openai",
                          genai_request_timestamp=datetime(2026, 11, 1, 10, tzinfo=UTC))
    assert stored["j9"]["cost_nanos"] == to_nanos(expected.total_price)


def test_users_and_payments_rejections_and_placeholders(sqlite_engine, tmp_path):
    payments_file = write(tmp_path, "payments.csv", "\n".join([
        "payment_id,user_id,paid_at,amount_usd",
        "p1,new-user,2026-10-01T00:00:00Z,19.99",
        "p2,new-user,2026-10-02,12,50",
        "p3,new-user,2026-10-02,\"12,50\"",
        "p4,new-user,2026-10-02,-3",
        "p5,new-user,2026-10-02,",
        "p6,new-user,2026-13-02,5",
        "p7,other,2026-10-03T10:00:00-04:00,0.000000001",
    ]) + "\n")
    result = import_file(sqlite_engine, "payments", payments_file)
    assert [(line, reason) for line, reason, _ in rejects(payments_file)] == [
        (3, "expected 4 fields, found 5"),
        (4, "amount_usd: not a decimal amount: '12,50'"),
        (5, "amount_usd: negative (-3)"),
        (6, "amount_usd: empty"),
        (7, "paid_at: not an ISO 8601 timestamp: '2026-13-02'"),
    ]
    assert (result.imported, result.rejected, result.placeholders) == (2, 5, 2)
    paid = {p["payment_id"]: p for p in rows_of(sqlite_engine, payments, "payment_id")}
    assert paid["p1"]["amount_nanos"] == 19_990_000_000
    assert paid["p7"]["amount_nanos"] == 1
    assert paid["p7"]["paid_at"] == datetime(2026, 10, 3, 14, 0)
    placeholder = rows_of(sqlite_engine, users, "user_id")[0]
    assert (placeholder["user_id"], placeholder["is_placeholder"]) == ("new-user", True)

    users_file = write(tmp_path, "users.csv", "\n".join([
        "\ufeffUser_ID,name,email,plan,signed_up_at",
        "new-user,Иван Петров,ivan@example.org,pro,2026-09-30",
        ",Nobody,nobody@example.org,free,",
        "u3,Bad Mail,not-an-email,free,",
        "u4,When,when@example.org,free,last week",
        f"u5,{'x' * 256},long@example.org,free,",
        "u6,Plain,,,",
    ]) + "\n")
    result = import_file(sqlite_engine, "users", users_file)
    assert [(line, reason) for line, reason, _ in rejects(users_file)] == [
        (3, "user_id: empty"),
        (4, "email: not an email address: 'not-an-email'"),
        (5, "signed_up_at: not an ISO 8601 timestamp: 'last week'"),
        (6, "name: longer than 255 characters"),
    ]
    assert (result.imported, result.updated, result.rejected) == (1, 1, 4)
    people = {u["user_id"]: u for u in rows_of(sqlite_engine, users, "user_id")}
    assert people["new-user"]["is_placeholder"] is False
    assert people["new-user"]["name"] == "Иван Петров"
    assert people["new-user"]["signed_up_at"] == datetime(2026, 9, 30)
    assert (people["u6"]["plan"], people["u6"]["email"]) == ("free", "")
    assert people["other"]["is_placeholder"] is True


@pytest.mark.parametrize(("name", "content", "message"), [
    ("events.csv", "request_id,user_id,model\nr1,u1,gpt-4o\n",
     "missing column(s) occurred_at, input_tokens, output_tokens"),
    ("events.csv", EVENT_HEADER + ",model\n", "duplicated column(s) model"),
    ("events.csv", "", "the file is empty"),
    ("events.xlsx", "whatever", "unknown format"),
    ("events.csv.gz", "not gzip at all", "cannot read"),
    ("missing.csv", None, "no such file"),
])
def test_unreadable_files_import_nothing(sqlite_engine, tmp_path, capsys, name, content,
                                         message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ImportFileError, match=re.escape(message)):
        import_file(sqlite_engine, "events", path, timezone=TZ)
    url = sqlite_engine.url.render_as_string(hide_password=False)
    assert main(["--db", url, "import", "events", str(path)]) == 2
    assert message in capsys.readouterr().err
    assert count(sqlite_engine, usage_events) == 0
    assert not rejects_path(path).exists()


def test_gzip_files_and_cli_exit_codes(sqlite_engine, tmp_path, capsys):
    events = [
        {"request_id": f"g{i}", "user_id": f"u{i % 3}", "occurred_at": f"2026-11-0{1 + i % 5}",
         "provider": "openai", "model": "gpt-4o-mini", "input_tokens": 1000 + i,
         "output_tokens": 50, "cached_input_tokens": 0, "cost_usd": ""}
        for i in range(25)
    ]
    path = tmp_path / "events.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        for event in events:
            handle.write(json.dumps(event) + "\n")
        handle.write('{"request_id": "bad"}\n')
    url = sqlite_engine.url.render_as_string(hide_password=False)
    assert main(["--db", url, "import", "events", str(path), "--batch-size", "10"]) == 1
    captured = capsys.readouterr()
    assert "read 26, imported 25, duplicates skipped 0, rejected 1" in captured.out
    assert "placeholder users created for unknown user ids: 3" in captured.out
    assert "events: 26 rows (100%)" in captured.err
    assert count(sqlite_engine, usage_events) == 25

    content = gzip.decompress(path.read_bytes()).replace(b'{"request_id": "bad"}\n', b"")
    path.write_bytes(gzip.compress(content))
    assert main(["--db", url, "import", "events", str(path)]) == 0
    assert "read 25, imported 0, duplicates skipped 25, rejected 0" in capsys.readouterr().out
    assert not rejects_path(path).exists()

    users_path = tmp_path / "users.csv.gz"
    users_path.write_bytes(gzip.compress(
        "user_id,name,email,plan,signed_up_at\nu1,Ёжик,yo@example.org,pro,\n".encode()))
    assert main(["--db", url, "import", "users", str(users_path)]) == 0
    assert rows_of(sqlite_engine, users, "user_id")[1]["name"] == "Ёжик"


def _event_lines(n: int, users: int = 4) -> str:
    return EVENT_HEADER + "\n" + "".join(
        f"r{i:03d},user{i % users},2026-11-{1 + i % 9:02d}T08:00:00Z,openai,gpt-4o,"
        f"{500 + i},{20 + i},0,{Decimal(i) / 1000}\n" for i in range(n))


def test_interrupted_import_resumes_with_every_row_once(sqlite_engine, tmp_path):
    path = write(tmp_path, "events.csv", _event_lines(10))

    def stop_after_two(result) -> None:
        if result.imported >= 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        import_file(sqlite_engine, "events", path, timezone=TZ, batch_size=3,
                    on_batch=stop_after_two)
    assert count(sqlite_engine, usage_events) == 6

    result = import_file(sqlite_engine, "events", path, timezone=TZ, batch_size=3)
    assert (result.read, result.imported, result.duplicates) == (10, 4, 6)
    stored = rows_of(sqlite_engine, usage_events, "request_id")
    assert [e["request_id"] for e in stored] == [f"r{i:03d}" for i in range(10)]
    assert sum(e["cost_nanos"] for e in stored) == to_nanos(Decimal(45) / 1000)
    assert rollups.verify(sqlite_engine, TZ).ok
    assert rollups.pending_events(sqlite_engine) == 0


def test_a_failing_batch_leaves_nothing_behind(sqlite_engine, tmp_path, monkeypatch):
    path = write(tmp_path, "events.csv", _event_lines(9, users=9))
    real = ingest.ensure_users
    calls = []

    def fail_third(connection, user_ids):
        calls.append(1)
        created = real(connection, user_ids)
        if len(calls) == 3:
            raise RuntimeError("database went away")
        return created

    monkeypatch.setattr(ingest, "ensure_users", fail_third)
    with pytest.raises(RuntimeError):
        import_file(sqlite_engine, "events", path, timezone=TZ, batch_size=3)
    stored = rows_of(sqlite_engine, usage_events, "request_id")
    assert [e["request_id"] for e in stored] == ["r000", "r001", "r002", "r003", "r004", "r005"]
    assert [u["user_id"] for u in rows_of(sqlite_engine, users, "user_id")] == [
        f"user{i}" for i in range(6)]

    monkeypatch.setattr(ingest, "ensure_users", real)
    result = import_file(sqlite_engine, "events", path, timezone=TZ, batch_size=3)
    assert (result.imported, result.duplicates) == (3, 6)
    assert count(sqlite_engine, usage_events) == 9


def test_progress_reports_the_share_of_the_file(sqlite_engine, tmp_path):
    path = write(tmp_path, "events.csv", _event_lines(40))
    seen = []
    import_file(sqlite_engine, "events", path, timezone=TZ, batch_size=10,
                progress=lambda result, fraction: seen.append((result.read, fraction)))
    assert [read for read, _ in seen] == [10, 20, 30, 40]
    assert seen[-1][1] == 1.0
    assert all(0 < fraction <= 1 for _, fraction in seen)


def test_truncated_gzip_stops_and_a_repaired_file_completes(sqlite_engine, tmp_path):
    lines = "".join(json.dumps({
        "request_id": f"t{i:05d}", "user_id": f"u{i % 7}", "occurred_at": "2026-11-01T10:00:00",
        "provider": "openai", "model": "gpt-4o", "input_tokens": i, "output_tokens": 1,
        "cost_usd": "0.001"}) + "\n" for i in range(3_000))
    whole = gzip.compress(lines.encode())
    path = tmp_path / "events.jsonl.gz"
    path.write_bytes(whole[: len(whole) * 2 // 3])
    with pytest.raises(ImportFileError, match="cannot read the rest of the file"):
        import_file(sqlite_engine, "events", path, timezone=TZ, batch_size=100)
    partial = count(sqlite_engine, usage_events)
    assert 0 < partial < 3_000 and partial % 100 == 0

    path.write_bytes(whole)
    result = import_file(sqlite_engine, "events", path, timezone=TZ, batch_size=100)
    assert (result.imported, result.duplicates) == (3_000 - partial, partial)
    assert count(sqlite_engine, usage_events) == 3_000
    assert rollups.verify(sqlite_engine, TZ).ok
