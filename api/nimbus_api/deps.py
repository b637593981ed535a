"""Per-request dependencies: the database session and the caller."""

from __future__ import annotations

from fastapi import Request


def get_db(request: Request):
    """One session per request; endpoints that write commit explicitly, anything else is rolled back."""
    db = request.app.state.sessions()
    request.state.db = db
    try:
        yield db
    finally:
        db.rollback()
        db.close()
