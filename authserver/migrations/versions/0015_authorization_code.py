"""the authorization code flow: clients' redirect and post-logout URIs, first-party and PAR
flags and ID-token algorithm; authorization codes (keyed hashes, single use); remembered consents

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01 11:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clients") as batch:
        batch.add_column(
            sa.Column("redirect_uris", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )
        batch.add_column(
            sa.Column(
                "post_logout_redirect_uris",
                sa.JSON(),
                nullable=False,
                server_default=sa.text("'[]'"),
            )
        )
        batch.add_column(
            sa.Column("first_party", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(
            sa.Column("require_par", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("id_token_alg", sa.String(length=16), nullable=True))
    op.create_table(
        "authorization_codes",
        sa.Column("id", sa.String(length=48), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=48), nullable=False),
        sa.Column("tenant_id", sa.String(length=48), nullable=False),
        sa.Column("user_id", sa.String(length=48), nullable=False),
        sa.Column("redirect_uri", sa.Text(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("code_challenge", sa.String(length=128), nullable=False),
        sa.Column("nonce", sa.Text(), nullable=True),
        sa.Column("dpop_jkt", sa.String(length=64), nullable=True),
        sa.Column("auth_time", sa.BigInteger(), nullable=False),
        sa.Column("amr", sa.String(length=32), nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("redeemed_at", sa.BigInteger(), nullable=True),
        sa.Column("family_id", sa.String(length=48), nullable=True),
        sa.Column("access_jti_hash", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code_hash"),
    )
    op.create_index("ix_authorization_codes_expires_at", "authorization_codes", ["expires_at"])
    op.create_table(
        "consents",
        sa.Column("user_id", sa.String(length=48), nullable=False),
        sa.Column("client_id", sa.String(length=48), nullable=False),
        sa.Column("tenant_id", sa.String(length=48), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("user_id", "client_id"),
    )
    op.create_index("ix_consents_tenant_id", "consents", ["tenant_id"])


def downgrade() -> None:
    op.drop_index("ix_consents_tenant_id", table_name="consents")
    op.drop_table("consents")
    op.drop_index("ix_authorization_codes_expires_at", table_name="authorization_codes")
    op.drop_table("authorization_codes")
    with op.batch_alter_table("clients") as batch:
        for column in (
            "id_token_alg",
            "require_par",
            "first_party",
            "post_logout_redirect_uris",
            "redirect_uris",
        ):
            batch.drop_column(column)
