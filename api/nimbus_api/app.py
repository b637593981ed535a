"""The FastAPI application."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from nimbus_api.db import make_engine, make_sessionmaker, migrate
from nimbus_api.policy import PolicyRoute, policy
from nimbus_api.resources import ResourceViews
from nimbus_api.routes import auth, catalog, dashboard, identity, jobs, resources
from nimbus_api.runner import InProcessQueue, JobRunner
from nimbus_api.settings import Settings, get_settings


def make_queue(settings: Settings, runner: JobRunner):
    if settings.queue == "inprocess":
        return InProcessQueue(runner, settings.workers)
    from nimbus_api.worker import CeleryQueue  # Celery is only imported where it is used

    return CeleryQueue(settings)


def create_app(settings: Settings | None = None, run_migrations: bool = True) -> FastAPI:
    settings = settings or get_settings()
    if run_migrations:
        migrate(settings.database_url)
    app = FastAPI(title="nimbus.cloud API", version="0.1.0",
                  description="Identity, RBAC, job templates that run nimbus.cloud playbooks, live job events.")
    app.router.route_class = PolicyRoute
    app.state.settings = settings
    app.state.engine = make_engine(settings.database_url)
    app.state.sessions = make_sessionmaker(app.state.engine)
    app.state.runner = JobRunner(settings, app.state.sessions)
    app.state.queue = make_queue(settings, app.state.runner)
    app.state.resources = ResourceViews(settings)
    for module in (auth, identity, catalog, jobs, resources, dashboard):
        app.include_router(module.router)
    app.mount("/ui/static", StaticFiles(directory=str(dashboard.STATIC)), name="static")

    @app.get("/healthz", tags=["health"])
    @policy("public")
    def healthz():
        return {"status": "ok"}

    return app
