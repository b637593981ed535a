"""credential types, sealed signing keys, lockout, restricted application credentials, job heartbeats

Revision ID: 0005
Revises: 0004

Existing credentials were {ENV_VAR: secret}. Each distinct set of variable names becomes a credential type
(``migrated-N``) whose fields are those names and whose env injector gives each field back under its own
name, unless the name is one a credential may no longer set (PATH, ANSIBLE_*, PYTHON*, ...): such a field
keeps its value but is no longer injected, and the type's description says so. The sealed values are not
touched, so no secret key is needed here.

Signing keys were stored in plain text; they cannot be sealed without the service's secret key, which a
migration does not have, so they are deleted: tokens issued before the upgrade stop validating and users
log in again (a new sealed key is made on the first login).
"""

import json

from alembic import op
import sqlalchemy as sa

from nimbus_api.credentials import env_name_problem

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _idempotency_constraint(bind):
    for uq in sa.inspect(bind).get_unique_constraints("jobs"):
        if list(uq["column_names"]) == ["launched_by", "idempotency_key"]:
            return uq["name"]
    return None


def upgrade():
    bind = op.get_bind()
    op.create_table(
        "credential_types",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("fields", sa.Text(), nullable=False),
        sa.Column("injectors", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    with op.batch_alter_table("credentials") as batch:
        batch.add_column(sa.Column("credential_type_id", sa.String(length=32), nullable=True))
    types = {}
    for cred_id, variables in bind.execute(sa.text("SELECT id, variables FROM credentials ORDER BY id")).all():
        names = tuple(sorted(n for n in variables.split(",") if n))
        if names not in types:
            type_id = "%032x" % (len(types) + 1)
            dropped = [n for n in names if env_name_problem(n)]
            description = "Migrated from credentials that set %s." % ", ".join(names)
            if dropped:
                description += " No longer injected (not allowed as environment variables): %s." % ", ".join(dropped)
            bind.execute(sa.text("INSERT INTO credential_types (id, name, description, fields, injectors, created_at) "
                                 "VALUES (:id, :name, :description, :fields, :injectors, CURRENT_TIMESTAMP)"),
                         {"id": type_id, "name": "migrated-%d" % (len(types) + 1), "description": description,
                          "fields": json.dumps([{"id": n, "label": n, "secret": True, "required": True}
                                                for n in names]),
                          "injectors": json.dumps({"env": {n: n for n in names if n not in dropped},
                                                   "extra_vars": {}})})
            types[names] = type_id
        bind.execute(sa.text("UPDATE credentials SET credential_type_id = :t WHERE id = :c"),
                     {"t": types[names], "c": cred_id})
    with op.batch_alter_table("credentials") as batch:
        batch.alter_column("credential_type_id", existing_type=sa.String(length=32), nullable=False)
        batch.create_foreign_key("fk_credentials_credential_type_id", "credential_types",
                                 ["credential_type_id"], ["id"])

    # Plain-text keys cannot be sealed here (see the module's docstring).
    op.drop_table("signing_keys")
    op.create_table(
        "signing_keys",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("sealed", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )

    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("failed_logins", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("application_credentials") as batch:
        batch.add_column(sa.Column("role", sa.String(length=16), nullable=False, server_default="member"))
        batch.add_column(sa.Column("unrestricted", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("job_templates") as batch:
        batch.add_column(sa.Column("extra_vars", sa.Text(), nullable=False, server_default="{}"))

    # SQLite does not name the old unique constraint; the naming convention gives it one batch mode can drop.
    old = _idempotency_constraint(bind) or "uq_jobs_launched_by"
    with op.batch_alter_table("jobs", naming_convention={"uq": "uq_%(table_name)s_%(column_0_name)s"}) as batch:
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("explanation", sa.Text(), nullable=False, server_default=""))
        batch.drop_constraint(old, type_="unique")
        batch.create_unique_constraint("uq_jobs_idempotency",
                                       ["launched_by", "project_id", "template_id", "idempotency_key"])


def downgrade():
    with op.batch_alter_table("jobs") as batch:
        batch.drop_constraint("uq_jobs_idempotency", type_="unique")
        batch.create_unique_constraint("uq_jobs_launched_by", ["launched_by", "idempotency_key"])
        batch.drop_column("explanation")
        batch.drop_column("heartbeat_at")
    with op.batch_alter_table("job_templates") as batch:
        batch.drop_column("extra_vars")
    with op.batch_alter_table("application_credentials") as batch:
        batch.drop_column("unrestricted")
        batch.drop_column("role")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("locked_until")
        batch.drop_column("failed_logins")
    op.drop_table("signing_keys")
    op.create_table(
        "signing_keys",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("secret", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("credentials") as batch:
        batch.drop_constraint("fk_credentials_credential_type_id", type_="foreignkey")
        batch.drop_column("credential_type_id")
    op.drop_table("credential_types")
