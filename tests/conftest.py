"""Shared fixtures: fresh databases on every backend, and demo data with a pandas oracle."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pandas as pd
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from tokenusage import database, demo

BACKENDS = ("sqlite", "duckdb", "postgresql", "mariadb")
SERVER_URLS = {
    "postgresql": os.environ.get(
        "TOKENUSAGE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    ),
    "mariadb": os.environ.get(
        "TOKENUSAGE_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test?charset=utf8mb4"
    ),
}
# CI sets this so that a missing server fails the run instead of skipping its tests.
REQUIRED = {b for b in os.environ.get("TOKENUSAGE_REQUIRE_BACKENDS", "").split(",") if b}

NOW = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)


def _unavailable(backend: str, url: str, error: Exception) -> None:
    message = f"{backend} server not reachable at {make_url(url).render_as_string()}: " \
              f"{str(error).splitlines()[0]}"
    if backend in REQUIRED:
        pytest.fail(message)
    pytest.skip(message)


def _server_database(backend: str) -> Iterator[str]:
    admin_url = SERVER_URLS[backend]
    name = f"tu_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            if backend == "postgresql":
                connection.execute(text(f'CREATE DATABASE "{name}" ENCODING \'UTF8\''))
            else:
                connection.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    except Exception as error:  # noqa: BLE001 - any failure to reach the server
        _unavailable(backend, admin_url, error)
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            if backend == "postgresql":
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            else:
                connection.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        admin.dispose()


def database_url(backend: str, tmp_path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path}/tokenusage.sqlite"
    elif backend == "duckdb":
        pytest.importorskip("duckdb_engine")
        yield f"duckdb:///{tmp_path}/tokenusage.duckdb"
    else:
        yield from _server_database(backend)


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def engine(backend: str, tmp_path) -> Iterator[Engine]:
    """A fresh, migrated database on each backend."""
    for url in database_url(backend, tmp_path):
        eng = database.make_engine(url)
        database.upgrade(eng)
        yield eng
        eng.dispose()


@pytest.fixture
def sqlite_engine(tmp_path) -> Iterator[Engine]:
    eng = database.make_engine(f"sqlite:///{tmp_path}/tokenusage.sqlite")
    database.upgrade(eng)
    yield eng
    eng.dispose()


def demo_frame(data: demo.DemoData) -> pd.DataFrame:
    """The generated events as a pandas frame, straight from the generator (not the DB)."""
    ids = [u["user_id"] for u in data.users]
    return pd.DataFrame({
        "user_id": [ids[i] for i in data.events["user"]],
        "occurred_at": pd.to_datetime(data.events["occurred_us"], unit="us", utc=True),
        "cost_nanos": data.events["cost_nanos"].astype("int64"),
        "tokens": data.events["input_tokens"] + data.events["output_tokens"],
    })


@pytest.fixture(scope="session")
def small_demo() -> demo.DemoData:
    return demo.generate(users=120, events=4_000, days=75, seed=11,
                         timezone="Europe/Berlin", now=NOW)
