"""Initial schema: users, usage events, payments, annotations and the rollup tables.

Revision ID: 0001
Revises:
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID_TYPE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
USER_ID = sa.String(191)



def _spend_columns() -> list[sa.Column]:
    return [
        sa.Column("cost_nanos", sa.BigInteger(), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.Column("unpriced", sa.BigInteger(), nullable=False),
    ]


def _rollup_storage() -> dict:
    """Rollup rows are updated in place by every refresh: free room on each page lets
    PostgreSQL keep those updates on the page (no index writes, less bloat)."""
    if op.get_bind().dialect.name == "postgresql":
        return {"postgresql_with": {"fillfactor": 70}}
    return {}


def _id_column(sequence: str) -> sa.Column:
    """An auto-numbered id: a sequence default where the dialect needs one."""
    if op.get_bind().dialect.name in ("postgresql", "duckdb"):
        op.execute(sa.schema.CreateSequence(sa.Sequence(sequence)))
        return sa.Column("id", sa.BigInteger(), primary_key=True,
                         server_default=sa.text(f"nextval('{sequence}')"))
    return sa.Column("id", ID_TYPE, primary_key=True, autoincrement=True)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("user_id", USER_ID, primary_key=True),
        sa.Column("name", sa.String(255), nullable=False, server_default=""),
        sa.Column("email", sa.String(255), nullable=False, server_default=""),
        sa.Column("plan", sa.String(64), nullable=False, server_default="free"),
        sa.Column("signed_up_at", TIMESTAMP, nullable=True),
        sa.Column("search_key", sa.Text(), nullable=False, server_default=""),
        sa.Column("is_placeholder", sa.Boolean(), nullable=False, server_default="0"),
    )
    op.create_table(
        "usage_events",
        _id_column("usage_events_id_seq"),
        sa.Column("request_id", sa.String(191), nullable=False, unique=True),
        sa.Column("user_id", USER_ID, nullable=False),
        sa.Column("occurred_at", TIMESTAMP, nullable=False),
        sa.Column("provider", sa.String(64), nullable=False, server_default=""),
        sa.Column("model", sa.String(128), nullable=False, server_default=""),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("cached_input_tokens", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("cost_nanos", sa.BigInteger(), nullable=True),
        sa.Column("cost_source", sa.String(16), nullable=False, server_default="source"),
    )
    op.create_index("ix_usage_events_occurred_at", "usage_events", ["occurred_at"])
    op.create_index(
        "ix_usage_events_user_id_occurred_at", "usage_events", ["user_id", "occurred_at"]
    )
    op.create_table(
        "payments",
        sa.Column("payment_id", sa.String(191), primary_key=True),
        sa.Column("user_id", USER_ID, nullable=False),
        sa.Column("paid_at", TIMESTAMP, nullable=False),
        sa.Column("amount_nanos", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_payments_user_id", "payments", ["user_id"])
    op.create_table(
        "annotations",
        _id_column("annotations_id_seq"),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("title", sa.String(255), nullable=False),
    )
    state = op.create_table(
        "rollup_state",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("watermark", sa.BigInteger(), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("refreshed_at", sa.DateTime(), nullable=True),
    )
    op.bulk_insert(state, [{"id": 1, "timezone": "", "watermark": 0, "generation": 0}])
    op.create_table(
        "daily_user_spend",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("user_id", USER_ID, nullable=False),
        *_spend_columns(),
        sa.PrimaryKeyConstraint("day", "user_id"),
        **_rollup_storage(),
    )
    op.create_index("ix_daily_user_spend_user_id", "daily_user_spend", ["user_id"])
    op.create_table(
        "monthly_user_spend",
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("user_id", USER_ID, nullable=False),
        *_spend_columns(),
        sa.PrimaryKeyConstraint("month", "user_id"),
        **_rollup_storage(),
    )
    op.create_table(
        "user_spend_total",
        sa.Column("user_id", USER_ID, primary_key=True),
        *_spend_columns(),
        **_rollup_storage(),
    )
    op.create_table(
        "daily_totals",
        sa.Column("day", sa.Date(), primary_key=True),
        *_spend_columns(),
        sa.Column("users", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "range_summaries",
        sa.Column("range_key", sa.String(32), primary_key=True),
        sa.Column("start_day", sa.Date(), nullable=True),
        sa.Column("end_day", sa.Date(), nullable=True),
        *_spend_columns(),
        sa.Column("users", sa.BigInteger(), nullable=False),
        sa.Column("built_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "range_rankings",
        sa.Column("range_key", sa.String(32), nullable=False),
        sa.Column("rank", sa.BigInteger(), nullable=False),
        sa.Column("user_id", USER_ID, nullable=False),
        *_spend_columns(),
        sa.PrimaryKeyConstraint("range_key", "rank"),
    )
    op.create_index("ix_range_rankings_user", "range_rankings", ["range_key", "user_id"])
    op.create_table(
        "rollup_delta",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("user_id", USER_ID, nullable=False),
        *_spend_columns(),
        sa.PrimaryKeyConstraint("day", "user_id"),
    )
    op.create_table(
        "rollup_seen",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("refresh", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_rollup_seen_refresh", "rollup_seen", ["refresh"])
    op.create_table(
        "rollup_delta_month",
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("user_id", USER_ID, nullable=False),
        *_spend_columns(),
        sa.PrimaryKeyConstraint("user_id", "month"),
    )


def downgrade() -> None:
    for table in (
        "rollup_seen",
        "rollup_delta_month",
        "rollup_delta",
        "range_rankings",
        "range_summaries",
        "daily_totals",
        "user_spend_total",
        "monthly_user_spend",
        "daily_user_spend",
        "rollup_state",
        "annotations",
        "payments",
        "usage_events",
        "users",
    ):
        op.drop_table(table)
    if op.get_bind().dialect.name in ("postgresql", "duckdb"):
        for sequence in ("annotations_id_seq", "usage_events_id_seq"):
            op.execute(sa.schema.DropSequence(sa.Sequence(sequence)))
