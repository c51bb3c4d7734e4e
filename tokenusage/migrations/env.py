"""Alembic environment: runs on the connection tokenusage.database hands over."""

from alembic import context
from alembic.ddl.postgresql import PostgresqlImpl

from tokenusage.schema import metadata


class DuckDBImpl(PostgresqlImpl):
    """DuckDB speaks PostgreSQL's DDL closely enough for these migrations."""

    __dialect__ = "duckdb"
    transactional_ddl = True


def run_migrations_online() -> None:
    connection = context.config.attributes["connection"]
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
