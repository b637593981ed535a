"""moments to the microsecond on MariaDB and MySQL (their DATETIME kept whole seconds); SQLite is unchanged

Revision ID: 0009
Revises: 0008
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# (table, column, nullable): every DateTime column of revision 0008.
MOMENTS = (
    ("credential_types", "created_at", False),
    ("flavors", "created_at", False),
    ("revoked_tokens", "expires_at", False),
    ("signing_keys", "created_at", False),
    ("signing_keys", "retired_at", True),
    ("users", "tokens_valid_after", False),
    ("users", "locked_until", True),
    ("application_credentials", "expires_at", True),
    ("application_credentials", "created_at", False),
    ("credentials", "created_at", False),
    ("jobs", "heartbeat_at", True),
    ("jobs", "created_at", False),
    ("jobs", "started_at", True),
    ("jobs", "finished_at", True),
    ("keypairs", "created_at", False),
    ("records", "created_at", False),
    ("records", "updated_at", False),
    ("job_events", "created_at", False),
    ("operations", "created_at", False),
)


def _alter(fsp: int) -> None:
    if op.get_bind().dialect.name not in ("mysql", "mariadb"):
        return
    for table, column, nullable in MOMENTS:
        op.alter_column(table, column, existing_nullable=nullable, existing_type=sa.DateTime(timezone=True),
                        type_=mysql.DATETIME(fsp=fsp))


def upgrade():
    _alter(6)


def downgrade():
    _alter(0)
