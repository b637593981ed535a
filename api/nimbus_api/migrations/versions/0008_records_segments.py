"""records (what the OpenStack APIs keep of resources beyond their hosts), segments (tenant networks' VNIs), and
the jobs a job waits for

Revision ID: 0008
Revises: 0007
"""

from alembic import op
import sqlalchemy as sa

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "records",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("attrs", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("kind", "id"),
    )
    op.create_index("ix_records_project_id", "records", ["project_id"])
    op.create_table(
        "segments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("segmentation_id", sa.Integer(), nullable=False),
        sa.Column("network_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("type", "segmentation_id"),
        sa.UniqueConstraint("network_id"),
    )
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("after", sa.Text(), server_default="", nullable=False))


def downgrade():
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("after")
    op.drop_table("segments")
    op.drop_index("ix_records_project_id", table_name="records")
    op.drop_table("records")
