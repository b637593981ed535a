"""The Alembic migrations make exactly the schema the models describe (a model changed without its migration
fails here, before a deployed database meets it)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from nimbus_api.db import make_engine, migrate
from nimbus_api.models import Base


def test_the_migrations_make_the_models_schema(settings):
    migrate(settings.database_url)
    engine = make_engine(settings.database_url)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []
