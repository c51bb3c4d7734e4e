"""Engines and schema upgrades, for every supported backend."""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from tokenusage.schema import usage_events, users

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
CONFLICT_ATTEMPTS = 8
P = ParamSpec("P")
T = TypeVar("T")
SQLITE_CACHE_KIB = 65_536  # page cache per connection; the default 2 MiB thrashes at scale


def is_write_conflict(exc: DBAPIError) -> bool:
    """A transaction lost a race with another writer and may simply be run again.

    DuckDB does not wait for a row another transaction is updating: it fails the second
    one. PostgreSQL and MySQL report serialization failures and deadlocks the same way.
    """
    orig = exc.orig
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    code = orig.args[0] if getattr(orig, "args", None) else None
    return (type(orig).__name__ == "TransactionException" or state in ("40001", "40P01")
            or code in (1205, 1213))


def retry_on_conflict(function: Callable[P, T]) -> Callable[P, T]:
    """Run a whole write transaction again when it loses a race with another writer."""

    @functools.wraps(function)
    def call(*args: P.args, **kwargs: P.kwargs) -> T:
        for attempt in range(CONFLICT_ATTEMPTS):
            try:
                return function(*args, **kwargs)
            except DBAPIError as exc:
                if attempt + 1 == CONFLICT_ATTEMPTS or not is_write_conflict(exc):
                    raise
                time.sleep(0.02 * 2**attempt * (1 + random.random()))
        raise AssertionError("unreachable")

    return call


class DatabaseUnavailable(RuntimeError):
    """The configured database cannot be reached or used."""


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite files get WAL mode, a busy timeout and real transactions."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        _sqlite_transactions(engine)
        return engine
    if parsed.get_backend_name() == "duckdb":
        return create_engine(url)
    connect_args = {}
    if parsed.get_backend_name() == "postgresql":
        # Naive datetimes are UTC: compare them with timestamptz columns in UTC.
        connect_args["options"] = "-c timezone=UTC"
    return create_engine(url, pool_pre_ping=True, pool_recycle=3600, connect_args=connect_args)


def _sqlite_transactions(engine: Engine) -> None:
    """Let SQLAlchemy, not pysqlite, begin transactions, so reads see one snapshot."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        cursor.execute("PRAGMA wal_autocheckpoint=16384")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection) -> None:
        connection.exec_driver_sql("BEGIN")


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision` with the Alembic migrations."""
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def check_connection(engine: Engine) -> None:
    try:
        with engine.connect() as connection:
            connection.execute(select(1))
    except SQLAlchemyError as exc:
        raise DatabaseUnavailable(str(exc).splitlines()[0]) from exc


def has_data(engine: Engine) -> bool:
    """Whether the database holds any user or event (cheap on any size)."""
    with engine.connect() as connection:
        for column in (usage_events.c.id, users.c.user_id):
            if connection.execute(select(column).limit(1)).first() is not None:
                return True
    return False
