"""Reading a company's own tables in place, read-only, through a [source] mapping."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pandas as pd
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.conftest import SERVER_URLS, database_url
from tests.oracle import ranking
from tokenusage import database, queries, ranges, rollups
from tokenusage.config import ConfigError, load_settings
from tokenusage.money import to_nanos
from tokenusage.periods import DayRange
from tokenusage.source import from_mapping

TZ = "America/New_York"
MAPPING = {
    "events": {
        "table": "billing.llm_calls", "id": "call_id", "request_id": "call_uuid",
        "user_id": "account_id", "occurred_at": "created", "provider": "vendor",
        "model": "model_name", "input_tokens": "prompt_tokens",
        "output_tokens": "completion_tokens", "cached_input_tokens": "cached_tokens",
        "cost_usd": "cost",
    },
    "users": {
        "table": "crm.accounts", "user_id": "id", "name": "full_name", "email": "mail",
        "plan": "tier", "signed_up_at": "joined",
    },
}
COMPANY_SCHEMA = """
CREATE SCHEMA crm;
CREATE SCHEMA billing;
CREATE TABLE crm.accounts (id bigint PRIMARY KEY, full_name text, mail text, tier text,
                           joined timestamptz);
CREATE TABLE billing.llm_calls (call_id bigserial PRIMARY KEY, call_uuid uuid NOT NULL,
    account_id bigint NOT NULL, created timestamptz NOT NULL, vendor text, model_name text,
    prompt_tokens integer, completion_tokens integer, cached_tokens integer,
    cost numeric(18, 9));
"""


def _calls(count: int, seed: int):
    rng = pd.Series(range(count))
    start = datetime(2026, 10, 20, tzinfo=UTC)
    for i in rng:
        yield {
            "uuid": str(uuid.UUID(int=seed * 10**9 + int(i))),
            "account": int(i * 7919 % 40) + 1,
            "created": start + timedelta(seconds=int(i * 104729 % (20 * 86400))),
            "cost": Decimal(int(i * 31 % 997) + 1) / Decimal(10**6),
        }


@pytest.fixture
def company(tmp_path):
    """A PostgreSQL database holding a company's own schema, and a read-only role for us."""
    for url in database_url("postgresql", tmp_path):
        admin = create_engine(url)
        role = f"tu_reader_{uuid.uuid4().hex[:8]}"
        with admin.begin() as connection:
            connection.execute(text(COMPANY_SCHEMA))
            connection.execute(text(
                "INSERT INTO crm.accounts VALUES " + ", ".join(
                    f"({i}, :n{i}, :m{i}, :t{i}, now() - interval '{i} days')"
                    for i in range(1, 41))),
                {**{f"n{i}": ("Анна Сергеевна" if i % 5 == 0 else f"Customer {i}")
                    for i in range(1, 41)},
                 **{f"m{i}": f"c{i}@corp.example" for i in range(1, 41)},
                 **{f"t{i}": ("pro" if i % 3 else "free") for i in range(1, 41)}})
            for call in _calls(3_000, 1):
                connection.execute(text(
                    "INSERT INTO billing.llm_calls (call_uuid, account_id, created, vendor, "
                    "model_name, prompt_tokens, completion_tokens, cached_tokens, cost) "
                    "VALUES (:uuid, :account, :created, 'openai', 'gpt-4o', 100, 20, 0, :cost)"),
                    call)
            connection.execute(text(f'CREATE ROLE "{role}" LOGIN'))
            connection.execute(text(f'GRANT USAGE ON SCHEMA crm, billing TO "{role}"'))
            connection.execute(text(
                f'GRANT SELECT ON ALL TABLES IN SCHEMA crm, billing TO "{role}"'))
            connection.execute(text(f'GRANT ALL ON SCHEMA public TO "{role}"'))
        reader_url = make_url(url).set(username=role).render_as_string(hide_password=False)
        reader = database.make_engine(reader_url)
        yield admin, reader
        reader.dispose()
        with admin.begin() as connection:
            connection.execute(text(f'DROP OWNED BY "{role}"'))
        admin.dispose()
    with create_engine(SERVER_URLS["postgresql"], isolation_level="AUTOCOMMIT").connect() as c:
        c.execute(text(f'DROP ROLE IF EXISTS "{role}"'))


def _frame(admin) -> pd.DataFrame:
    with admin.connect() as connection:
        rows = connection.execute(text(
            "SELECT account_id::text AS user_id, created AS occurred_at, cost, "
            "prompt_tokens + completion_tokens AS tokens FROM billing.llm_calls")).all()
    frame = pd.DataFrame(rows, columns=["user_id", "occurred_at", "cost", "tokens"])
    frame["occurred_at"] = pd.to_datetime(frame["occurred_at"], utc=True)
    frame["cost_nanos"] = [to_nanos(c) for c in frame["cost"]]
    return frame


def test_company_tables_read_in_place(company):
    admin, engine = company
    database.upgrade(engine)  # our own tables, created by the read-only role in public
    source = from_mapping(MAPPING)
    assert rollups.refresh(engine, TZ, source=source).events == 3_000
    assert rollups.verify(engine, TZ, source).ok

    expected = ranking(_frame(admin), TZ, None, None)
    with queries.snapshot(engine) as connection:
        got = list(queries.iter_ranking(connection, DayRange(None, None), source=source))
    assert [(r.rank, r.user_id, r.spend_nanos) for r in got] == list(
        zip(expected["rank"], expected["user_id"], expected["spend_nanos"], strict=True))
    assert got[0].name.startswith(("Customer", "Анна"))

    november = DayRange(datetime(2026, 11, 1).date(), datetime(2026, 11, 30).date())
    ranges.build(engine, november)
    with queries.snapshot(engine) as connection:
        page = queries.ranking_page(connection, november, "анна", 1, 50, source)
        profile = queries.user_profile(connection, "5", source)
        models = queries.user_models(connection, "5", source=source)
    want = ranking(_frame(admin), TZ, november.start, november.end)
    want = want[want["user_id"].astype(int) % 5 == 0]
    assert [(r.rank, r.user_id) for r in page.rows] == list(
        zip(want["rank"], want["user_id"], strict=True))
    assert profile.name == "Анна Сергеевна" and profile.email == "c5@corp.example"
    assert models[0].model == "gpt-4o"

    with admin.begin() as connection:  # the company writes more calls
        for call in _calls(500, 2):
            connection.execute(text(
                "INSERT INTO billing.llm_calls (call_uuid, account_id, created, vendor, "
                "model_name, prompt_tokens, completion_tokens, cached_tokens, cost) "
                "VALUES (:uuid, :account, :created, 'openai', 'gpt-4o', 100, 20, 0, :cost)"),
                call)
    assert rollups.refresh(engine, TZ, source=source).events == 500
    assert rollups.verify(engine, TZ, source).ok
    with pytest.raises(Exception, match="permission denied"):
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM billing.llm_calls"))


def test_mapping_errors_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="needs id"):
        from_mapping({"events": {k: v for k, v in MAPPING["events"].items() if k != "id"},
                      "users": MAPPING["users"]})
    with pytest.raises(ConfigError, match="unknown keys: colour"):
        from_mapping({"events": MAPPING["events"], "users": {**MAPPING["users"],
                                                             "colour": "x"}})
    path = tmp_path / "source.toml"
    path.write_text('[source.users]\ntable = "crm.accounts"\nuser_id = "id"\n')
    settings = load_settings({"TOKENUSAGE_SOURCE_FILE": str(path)}, {})
    assert settings.source_mapping == {"users": {"table": "crm.accounts", "user_id": "id"}}
    with pytest.raises(ConfigError, match="needs table"):
        from_mapping(settings.source_mapping)


def test_an_id_committed_late_is_still_counted(company):
    """A company's writers do not take our lock: a lower id may commit after a higher one."""
    admin, engine = company
    database.upgrade(engine)
    source = from_mapping(MAPPING)
    rollups.refresh(engine, TZ, source=source)
    insert_call = text(
        "INSERT INTO billing.llm_calls (call_uuid, account_id, created, vendor, model_name, "
        "prompt_tokens, completion_tokens, cached_tokens, cost) VALUES (:uuid, 7, "
        "'2026-11-25T12:00:00Z', 'openai', 'gpt-4o', 1, 1, 0, :cost) RETURNING call_id")
    slow, fast = admin.connect(), admin.connect()
    slow_tx = slow.begin()
    slow_id = slow.execute(insert_call, {"uuid": str(uuid.uuid4()), "cost": "2"}).scalar()
    with fast.begin():
        fast_id = fast.execute(insert_call, {"uuid": str(uuid.uuid4()), "cost": "1"}).scalar()
    assert slow_id < fast_id
    assert rollups.refresh(engine, TZ, source=source).events == 1  # the committed one
    slow_tx.commit()
    slow.close()
    fast.close()
    assert not rollups.is_current(engine, TZ, source)
    assert rollups.refresh(engine, TZ, source=source).events == 1  # the late one, once
    assert rollups.is_current(engine, TZ, source)
    assert rollups.refresh(engine, TZ, source=source).events == 0
    report = rollups.verify(engine, TZ, source)
    assert report.ok, report.differences
    expected = ranking(_frame(admin), TZ, None, None)
    with queries.snapshot(engine) as connection:
        totals = queries.period_totals(connection, DayRange(None, None))
    assert totals.spend_nanos == int(expected["spend_nanos"].sum())
