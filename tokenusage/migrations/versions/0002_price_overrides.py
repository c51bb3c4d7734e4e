"""Local price overrides: negotiated or self-hosted model prices with effective dates.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ID_TYPE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
SEQUENCE = "price_overrides_id_seq"


def _id_column(sequence: str) -> sa.Column:
    """An auto-numbered id: a sequence default where the dialect needs one."""
    if op.get_bind().dialect.name in ("postgresql", "duckdb"):
        op.execute(sa.schema.CreateSequence(sa.Sequence(sequence)))
        return sa.Column("id", sa.BigInteger(), primary_key=True,
                         server_default=sa.text(f"nextval('{sequence}')"))
    return sa.Column("id", ID_TYPE, primary_key=True, autoincrement=True)


def upgrade() -> None:
    op.create_table(
        "price_overrides",
        _id_column(SEQUENCE),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("effective_from", sa.DateTime(), nullable=False),
        sa.Column("input_nanos_per_mtok", sa.BigInteger(), nullable=False),
        sa.Column("cached_input_nanos_per_mtok", sa.BigInteger(), nullable=False),
        sa.Column("output_nanos_per_mtok", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_price_overrides_model", "price_overrides", ["provider", "model"])


def downgrade() -> None:
    op.drop_index("ix_price_overrides_model", table_name="price_overrides")
    op.drop_table("price_overrides")
    if op.get_bind().dialect.name in ("postgresql", "duckdb"):
        op.execute(sa.schema.DropSequence(sa.Sequence(SEQUENCE)))
