"""The accounts block's user columns; roles move into the users table.

Adds the normalized ``email_key``/``username_key`` (unique), ``email_verified``,
``roles`` (JSON) and ``security_stamp`` that
:class:`~fastapi_secure.accounts.sqlalchemy.SQLAlchemyUserMixin` needs, copies
each user's roles from ``user_roles`` and drops the ``roles`` and ``user_roles``
tables. Users that existed before count as verified: they registered before
verification existed.

Revision ID: 0002
Revises: 0001
Created: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from fastapi_secure.accounts.users import new_security_stamp, normalize_login_name

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_users = sa.table(
    "users",
    sa.column("id", sa.Integer()),
    sa.column("email", sa.String()),
    sa.column("username", sa.String()),
    sa.column("email_key", sa.String()),
    sa.column("username_key", sa.String()),
    sa.column("email_verified", sa.Boolean()),
    sa.column("roles", sa.JSON()),
    sa.column("security_stamp", sa.String()),
)
_roles = sa.table("roles", sa.column("id", sa.Integer()), sa.column("name", sa.String()))
_user_roles = sa.table(
    "user_roles",
    sa.column("user_id", sa.Integer()),
    sa.column("role_id", sa.Integer()),
    sa.column("granted_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    # Read before any batch step: on SQLite a batch copies and drops the users table,
    # and ON DELETE CASCADE would empty user_roles.
    held: dict[int, list[str]] = {}
    for user_id, name in op.get_bind().execute(
        sa.select(_user_roles.c.user_id, _roles.c.name)
        .join(_roles, _roles.c.id == _user_roles.c.role_id)
        .order_by(_roles.c.name)
    ):
        held.setdefault(user_id, []).append(name)
    op.drop_table("user_roles")
    op.drop_table("roles")
    # SQLite's batch mode cannot reflect an expression index.
    op.drop_index("uq_users_username_lower", table_name="users")
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("email_key", sa.String(254), nullable=True))
        batch.add_column(sa.Column("username_key", sa.String(254), nullable=True))
        batch.add_column(
            sa.Column("email_verified", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch.add_column(sa.Column("roles", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("security_stamp", sa.String(64), nullable=True))
    bind = op.get_bind()
    for user_id, email, username in bind.execute(
        sa.select(_users.c.id, _users.c.email, _users.c.username)
    ).all():
        bind.execute(
            _users.update()
            .where(_users.c.id == user_id)
            .values(
                email_key=normalize_login_name(email),
                username_key=normalize_login_name(username),
                email_verified=True,
                roles=held.get(user_id, []),
                security_stamp=new_security_stamp(),
            )
        )
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("ck_users_email_lowercase", type_="check")
        batch.drop_constraint("uq_users_email", type_="unique")
        batch.drop_constraint("uq_users_username", type_="unique")
        batch.alter_column("email_key", existing_type=sa.String(254), nullable=False)
        batch.alter_column("roles", existing_type=sa.JSON(), nullable=False)
        batch.alter_column("security_stamp", existing_type=sa.String(64), nullable=False)
        batch.alter_column(
            "username", existing_type=sa.String(32), type_=sa.String(254), nullable=True
        )
        batch.alter_column("password_hash", existing_type=sa.String(512), nullable=True)
        batch.alter_column(
            "password_changed_at", existing_type=sa.DateTime(timezone=True), nullable=True
        )
        batch.create_unique_constraint("uq_users_email_key", ["email_key"])
        batch.create_unique_constraint("uq_users_username_key", ["username_key"])


def downgrade() -> None:
    bind = op.get_bind()
    held: list[tuple[int, list[str]]] = []
    for user_id, email, username, roles in bind.execute(
        sa.select(_users.c.id, _users.c.email, _users.c.username, _users.c.roles)
    ).all():
        held.append((user_id, list(roles or [])))
        bind.execute(
            _users.update()
            .where(_users.c.id == user_id)
            .values(email=email.lower(), username=(username or f"user{user_id}")[:32])
        )
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("uq_users_username_key", type_="unique")
        batch.drop_constraint("uq_users_email_key", type_="unique")
        batch.alter_column(
            "password_changed_at", existing_type=sa.DateTime(timezone=True), nullable=False
        )
        batch.alter_column("password_hash", existing_type=sa.String(512), nullable=False)
        batch.alter_column(
            "username", existing_type=sa.String(254), type_=sa.String(32), nullable=False
        )
        batch.drop_column("security_stamp")
        batch.drop_column("roles")
        batch.drop_column("email_verified")
        batch.drop_column("username_key")
        batch.drop_column("email_key")
        batch.create_unique_constraint("uq_users_email", ["email"])
        batch.create_unique_constraint("uq_users_username", ["username"])
        batch.create_check_constraint("email_lowercase", "email = lower(email)")
    op.create_index("uq_users_username_lower", "users", [sa.text("lower(username)")], unique=True)
    op.create_table(
        "roles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_roles"),
        sa.UniqueConstraint("name", name="uq_roles_name"),
    )
    op.create_table(
        "user_roles",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("role_id", sa.Integer(), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_user_roles_user_id_users", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["role_id"], ["roles.id"], name="fk_user_roles_role_id_roles", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "role_id", name="pk_user_roles"),
    )
    role_ids: dict[str, int] = {}
    for user_id, roles in held:
        for name in roles:
            if name not in role_ids:
                role_ids[name] = len(role_ids) + 1
                bind.execute(_roles.insert().values(id=role_ids[name], name=name))
            bind.execute(
                _user_roles.insert().values(
                    user_id=user_id, role_id=role_ids[name], granted_at=sa.func.current_timestamp()
                )
            )
