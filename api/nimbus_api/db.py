"""Engine, sessions and migrations. The schema is Alembic's: `migrate()` brings any database to head."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event
from sqlalchemy.orm import sessionmaker

from nimbus_api.sealing import private_dir, private_file

MIGRATIONS = Path(__file__).with_name("migrations")


def sqlite_file(url: str) -> bool:
    """Make a SQLite database file owner-only (0600, in a 0700 directory if it makes one) before SQLite sees
    it, whatever the umask: it holds password hashes and sealed secrets. SQLite gives the -wal and -shm files
    the database file's mode. Whether the URL is a SQLite file."""
    if not url.startswith("sqlite:///") or url == "sqlite:///:memory:":
        return False
    path = Path(url[len("sqlite:///"):].split("?")[0])
    private_dir(path.parent)
    private_file(path)
    return True


def make_engine(url: str):
    if sqlite_file(url):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(conn, _record):
            cur = conn.cursor()
            # Foreign keys are off by default in SQLite; WAL lets the stream read while a job writes.
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.close()
        return engine
    return create_engine(url, pool_pre_ping=True, pool_recycle=3600)


def private_dirs(settings) -> None:
    """The service's state and job directories, owner-only (0700) when they are made."""
    private_dir(settings.state_dir)
    private_dir(settings.data_dir)


def make_sessionmaker(engine):
    return sessionmaker(bind=engine, expire_on_commit=False)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(url: str) -> None:
    """Apply every migration the database lacks."""
    sqlite_file(url)
    command.upgrade(alembic_config(url), "head")


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
