"""The FastAPI application."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.staticfiles import StaticFiles

from nimbus_api.db import make_engine, make_sessionmaker, migrate, private_dirs
from nimbus_api.middleware import RequestGuard, SecurityHeaders
from nimbus_api.openstack import errors as openstack_errors
from nimbus_api.openstack import operations
from nimbus_api.openstack import (cinder, glance, keystone, neutron, neutron_ports, neutron_routers, neutron_security,
                                  nova, nova_volumes)
from nimbus_api.policy import PolicyRoute, policy
from nimbus_api.resources import ResourceViews
from nimbus_api.routes import auth, catalog, credentials, dashboard, identity, jobs, resources
from nimbus_api.runner import Every, InProcessQueue, JobRunner
from nimbus_api.settings import Settings, get_settings


def make_queue(settings: Settings, runner: JobRunner):
    if settings.queue == "inprocess":
        return InProcessQueue(runner, settings.workers)
    from nimbus_api.worker import CeleryQueue  # Celery is only imported where it is used

    return CeleryQueue(settings)


def create_app(settings: Settings | None = None, run_migrations: bool = True) -> FastAPI:
    settings = settings or get_settings()
    # The state and job directories are the owner's alone, whatever the umask (db.private_dirs).
    private_dirs(settings)
    if run_migrations:
        migrate(settings.database_url)

    @asynccontextmanager
    async def lifespan(app):
        # Every API process reaps the jobs of dead workers (and old jobs), whichever queue runs them.
        reaper = Every("nimbus-reaper", settings.job_heartbeat_interval, app.state.runner.reap)
        reaper.start()
        try:
            yield
        finally:
            reaper.stop(wait=30)

    app = FastAPI(title="nimbus.cloud API", version="0.1.0", lifespan=lifespan,
                  description="Identity, RBAC, job templates that run nimbus.cloud playbooks, live job events.")
    app.router.route_class = PolicyRoute
    app.state.settings = settings
    app.state.engine = make_engine(settings.database_url)
    app.state.sessions = make_sessionmaker(app.state.engine)
    app.state.runner = JobRunner(settings, app.state.sessions)
    app.state.queue = make_queue(settings, app.state.runner)

    # The views ask when the jobs of a kind last ended through an engine of their own: a request that holds a
    # connection (and its project's lock) while it reads a view never waits for a second one from the pool
    # its peers hold, waiting for that lock.
    view_sessions = make_sessionmaker(make_engine(settings.database_url))

    def last_change(resources) -> float:
        with view_sessions() as db:
            return operations.last_ended(db, resources)

    app.state.resources = ResourceViews(settings, last_change)
    for module in (auth, identity, catalog, credentials, jobs, resources, dashboard, keystone, nova, nova_volumes,
                   glance, neutron, neutron_ports, neutron_security, neutron_routers, cinder):
        app.include_router(module.router)
    openstack_errors.install(app, http_exception_handler, request_validation_exception_handler)
    app.mount("/ui/static", StaticFiles(directory=str(dashboard.STATIC)), name="static")
    # The last added runs first: the headers go on every answer, the guard's refusals included.
    app.add_middleware(nova.Microversions)
    app.add_middleware(nova.Microversions, **cinder.MICROVERSIONS)
    app.add_middleware(RequestGuard, max_body_bytes=settings.max_body_bytes,
                       streamed=[("PUT", glance.UPLOAD_PATH, settings.image_upload_max_bytes)])
    app.add_middleware(SecurityHeaders)

    @app.get("/healthz", tags=["health"])
    @policy("public")
    def healthz():
        return {"status": "ok"}

    return app
