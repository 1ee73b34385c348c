"""Second factors: TOTP authenticators, recovery-code digests and passkeys.

Three tables, each row deleted with its user (``ON DELETE CASCADE``); their
columns come from the mixins of :mod:`fastapi_secure.mfa.sqlalchemy`.

Revision ID: 0003
Revises: 0002
Created: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _user_id() -> sa.Column[int]:
    return sa.Column("user_id", sa.Integer(), nullable=False)


def _user_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["user_id"], ["users.id"], name=f"fk_{table}_user_id_users", ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "mfa_totp",
        _user_id(),
        sa.Column("encrypted_secret", sa.String(512), nullable=False),
        sa.Column("digits", sa.SmallInteger(), nullable=False),
        sa.Column("period", sa.SmallInteger(), nullable=False),
        sa.Column("algorithm", sa.String(8), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        _user_fk("mfa_totp"),
        sa.PrimaryKeyConstraint("user_id", name="pk_mfa_totp"),
    )
    op.create_table(
        "mfa_recovery_codes",
        _user_id(),
        sa.Column("digest", sa.String(64), nullable=False),
        _user_fk("mfa_recovery_codes"),
        sa.PrimaryKeyConstraint("user_id", "digest", name="pk_mfa_recovery_codes"),
    )
    op.create_table(
        "mfa_passkeys",
        _user_id(),
        sa.Column("credential_id", sa.LargeBinary(1023), nullable=False),
        sa.Column("user_handle", sa.LargeBinary(64), nullable=False),
        sa.Column("public_key", sa.LargeBinary(2048), nullable=False),
        sa.Column("sign_count", sa.BigInteger(), nullable=False),
        sa.Column("transports", sa.JSON(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("aaguid", sa.String(36), nullable=False),
        sa.Column("backed_up", sa.Boolean(), nullable=False),
        sa.Column("device_type", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        _user_fk("mfa_passkeys"),
        sa.PrimaryKeyConstraint("credential_id", name="pk_mfa_passkeys"),
    )
    op.create_index("ix_mfa_passkeys_user_id", "mfa_passkeys", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_mfa_passkeys_user_id", table_name="mfa_passkeys")
    op.drop_table("mfa_passkeys")
    op.drop_table("mfa_recovery_codes")
    op.drop_table("mfa_totp")
