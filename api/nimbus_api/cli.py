"""`nimbus-api`: run the service, its workers, the wait for their database and broker, migrations, the
admin bootstrap, the registration of other services (a role's own: Swift) and key rotation.

Each command prints one JSON line saying what it did and whether anything changed, so the `api` role
can report changed/ok truthfully. No secret is ever taken from argv: the admin password comes from
``NIMBUS_API_ADMIN_PASSWORD`` or, with ``--password-stdin``, from standard input, and a service user's
password from standard input only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from nimbus_api.settings import check_settings, get_settings


def _sessions(settings):
    from nimbus_api.db import make_engine, make_sessionmaker

    return make_sessionmaker(make_engine(settings.database_url))


def cmd_serve(args, settings):
    import uvicorn

    from nimbus_api.app import create_app

    uvicorn.run(create_app(settings), host=args.host or settings.host, port=args.port or settings.port,
                log_level=args.log_level, proxy_headers=True, timeout_keep_alive=settings.keep_alive_timeout)
    return None


def cmd_worker(args, settings):
    from nimbus_api.worker import app

    argv = ["worker", "--loglevel", args.log_level.upper(), "--concurrency", str(args.concurrency or settings.workers),
            "--queues", settings.celery_queue, "--without-gossip", "--without-mingle"]
    if args.hostname:
        argv += ["--hostname", args.hostname]
    app.worker_main(argv)
    return None


def cmd_wait(args, settings):
    from kombu import Connection
    from sqlalchemy.engine import make_url

    from nimbus_api.readiness import broker_probe, database_probe, wait_for

    peers = [database_probe(settings.database_url)]
    secrets = [make_url(settings.database_url).password or ""]
    if args.broker:
        peers.append(broker_probe(settings.broker_url, settings.broker_options))
        secrets.append(Connection(settings.broker_url).password or "")

    def say(line):
        print("nimbus-api wait: " + line, file=sys.stderr, flush=True)

    if not wait_for(peers, args.timeout, say, secrets=secrets):
        raise SystemExit(1)
    return {"changed": False, "ready": [peer[0] for peer in peers]}


def cmd_migrate(args, settings):
    from nimbus_api.db import current_revision, head_revision, migrate

    before = current_revision(settings.database_url)
    migrate(settings.database_url)
    return {"changed": before != head_revision(), "from": before, "to": head_revision()}


def cmd_bootstrap(args, settings):
    from nimbus_api import identity

    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else os.environ.get(
        "NIMBUS_API_ADMIN_PASSWORD", "")
    if len(password) < 8:
        raise SystemExit("nimbus-api bootstrap: give the admin password (8 characters or more) on stdin with "
                         "--password-stdin or in NIMBUS_API_ADMIN_PASSWORD")
    public_url = _endpoint_url(args.public_url) if args.public_url is not None else None
    result = {}
    if args.migrate:
        result["migration"] = cmd_migrate(args, settings)
    with _sessions(settings)() as db:
        user, changed = identity.bootstrap(db, settings, password)
        if public_url:
            for service in SERVICES:
                changed |= identity.register_endpoint(db, service["name"], service["type"], service["description"],
                                                      "public", public_url.rstrip("/") + service["path"],
                                                      replaces=service.get("replaces"))
    changed |= result.get("migration", {}).get("changed", False)
    return dict(result, changed=changed, user=user.name, user_id=user.id, project=settings.admin_project)


# What bootstrap --public-url registers: the OpenStack APIs as their clients look for them (the identity
# service was registered as "nimbus" at the API's root before the Keystone paths existed; that record is
# taken over).
SERVICES = (
    {"name": "keystone", "type": "identity", "replaces": "nimbus", "path": "/identity/v3",
     "description": "nimbus.cloud identity (Keystone v3)"},
    {"name": "nova", "type": "compute", "path": "/compute/v2.1", "description": "nimbus.cloud compute (Nova v2.1)"},
    {"name": "glance", "type": "image", "path": "/image", "description": "nimbus.cloud images (Glance v2)"},
    {"name": "neutron", "type": "network", "path": "/networking",
     "description": "nimbus.cloud networking (Neutron v2.0)"},
    {"name": "cinder", "type": "block-storage", "path": "/volume/v3",
     "description": "nimbus.cloud volumes (Cinder v3)"},
)


def cmd_demo(args, settings):
    from nimbus_api import demo

    password = sys.stdin.readline().rstrip("\n")
    if len(password) < 8:
        raise SystemExit("nimbus-api demo: give the demo user's password (8 characters or more) on stdin")
    with _sessions(settings)() as db:
        try:
            return demo.seed(db, settings, args.project, args.user, password)
        except ValueError as e:
            raise SystemExit("nimbus-api demo: %s" % e)


def cmd_runbooks(args, settings):
    import yaml

    from nimbus_api.openstack import runbooks

    try:
        inventory = args.inventory.read()
        extra_vars = yaml.safe_load(args.vars.read()) if args.vars else {}
    except (OSError, yaml.YAMLError) as e:
        raise SystemExit("nimbus-api runbooks: %s" % e)
    if not isinstance(extra_vars, dict):
        raise SystemExit("nimbus-api runbooks: --vars must hold a YAML mapping")
    # The image runbooks find the uploads where this service writes them.
    extra_vars = dict(extra_vars, image_uploads_dir=str(settings.image_uploads_dir))
    with _sessions(settings)() as db:
        try:
            changed = runbooks.register(db, inventory, extra_vars, settings.playbooks_dir)
        except runbooks.RunbookError as e:
            raise SystemExit("nimbus-api runbooks: %s" % e)
    return {"changed": bool(changed), "templates": changed}


def _endpoint_url(url):
    from nimbus_api.schemas import EndpointIn

    _checked("bootstrap", "--public-url", EndpointIn, interface="public", url=url)
    return url


def _checked(command, what, model, **fields):
    """The fields as the API's own request model takes them, or the command's refusal naming each field and
    what is wrong with it, never its value (one may be a password)."""
    from pydantic import ValidationError

    try:
        return model(**fields)
    except ValidationError as e:
        raise SystemExit("nimbus-api %s: %s" % (command, "; ".join(
            "%s %s: %s" % (what, ".".join(map(str, error["loc"])), error["msg"].removeprefix("Value error, "))
            for error in e.errors()))) from None


def cmd_service(args, settings):
    from nimbus_api import identity
    from nimbus_api.schemas import EndpointIn, ServiceIn, UserIn

    service = _checked("service", "service", ServiceIn, name=args.name, type=args.type)
    urls = {}
    for interface, url in args.url:
        if interface in urls:
            raise SystemExit("nimbus-api service: --url %s given twice" % interface)
        urls[interface] = _checked("service", "endpoint", EndpointIn, interface=interface, url=url,
                                   region=args.region).url
    if (args.user is not None) != args.password_stdin:
        raise SystemExit("nimbus-api service: --user and --password-stdin go together (the password on stdin)")
    if args.user is not None:
        user = _checked("service", "user", UserIn, name=args.user, password=sys.stdin.readline().rstrip("\n"))
    with _sessions(settings)() as db:
        try:
            registered, changed = identity.register_service(db, service.name, service.type, args.description, urls,
                                                            args.region)
            result = {"service": registered.name, "service_id": registered.id, "type": registered.type,
                      "region": args.region, "endpoints": urls}
            if args.user is not None:
                made, user_changed = identity.service_user(db, settings, user.name, user.password)
                changed |= user_changed
                result.update(user=made.name, user_id=made.id, role=identity.SERVICE_ROLE)
        except ValueError as e:
            raise SystemExit("nimbus-api service: %s" % e) from None
        # --check: the same work and answer, then nothing kept (a role's check mode asks this way).
        if args.check:
            db.rollback()
        else:
            db.commit()
    return dict(result, changed=changed)


def _interface_url(text):
    interface, equals, url = text.partition("=")
    if not equals:
        raise argparse.ArgumentTypeError("give INTERFACE=URL, such as public=https://swift.example/v1/AUTH_"
                                         "$(project_id)s")
    return interface, url


def cmd_keys(args, settings):
    from nimbus_api.security import active_keys, retire_keys, rotate_keys

    with _sessions(settings)() as db:
        if args.action == "rotate":
            key = rotate_keys(db, settings)
            db.commit()
            return {"changed": True, "primary": key.id, "active": [k.id for k in active_keys(db)]}
        if args.action == "retire":
            retired = retire_keys(db, keep=args.keep)
            db.commit()
            return {"changed": bool(retired), "retired": retired, "active": [k.id for k in active_keys(db)]}
        return {"changed": False, "active": [k.id for k in active_keys(db)]}


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="nimbus-api", description="The nimbus.cloud API service. Settings come "
                                  "from NIMBUS_API_* environment variables or a .env file.")
    sub = top.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the API (migrates first)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--log-level", default="info")
    serve.set_defaults(func=cmd_serve)
    worker = sub.add_parser("worker", help="run a Celery worker that takes jobs from the broker")
    worker.add_argument("--concurrency", type=int)
    worker.add_argument("--hostname", help="the worker's node name (default celery@<host>)")
    worker.add_argument("--log-level", default="info")
    worker.set_defaults(func=cmd_worker)
    wait = sub.add_parser("wait", help="wait until the database (and with --broker the broker) accept "
                          "connections; the units run it before the API or a worker starts")
    wait.add_argument("--broker", action="store_true", help="wait for the broker too (a worker needs it)")
    wait.add_argument("--timeout", type=float, default=60, help="seconds before giving up (exit status 1)")
    wait.set_defaults(func=cmd_wait)
    sub.add_parser("migrate", help="bring the database schema to the newest revision").set_defaults(func=cmd_migrate)
    boot = sub.add_parser("bootstrap", help="create or repair the default domain, admin project and admin user")
    boot.add_argument("--password-stdin", action="store_true", help="read the admin password from stdin")
    boot.add_argument("--migrate", action="store_true", help="bring the database schema to the newest revision "
                      "first (one process for what a converge does every run)")
    boot.add_argument("--public-url", help="register the identity service (keystone) in the catalog with its "
                      "public endpoint, URL/identity/v3")
    boot.set_defaults(func=cmd_bootstrap)
    service = sub.add_parser("service", help="register a service (a role's own, such as swift) with exactly these "
                             "endpoints in the region, and with --user its service user (password on stdin)")
    service.add_argument("--name", required=True, help="the service's name, such as swift")
    service.add_argument("--type", required=True, help="the service type clients look for, such as object-store")
    service.add_argument("--description", help="(default: a new service's is empty, a registered one's is kept)")
    service.add_argument("--url", type=_interface_url, action="append", required=True, metavar="INTERFACE=URL",
                         help="an endpoint (public, internal or admin), once per interface; the URL may hold "
                         "$(project_id)s, which each token's catalog fills in. The service's endpoints in the "
                         "region for interfaces not given are removed")
    service.add_argument("--region", default="RegionOne")
    service.add_argument("--user", help="the service's user (keystonemiddleware's), made in the default domain with "
                         "the reader role on the admin project, never the cloud admin's")
    service.add_argument("--password-stdin", action="store_true", help="read --user's password from stdin")
    service.add_argument("--check", action="store_true", help="say whether anything would change, and change "
                         "nothing")
    service.set_defaults(func=cmd_service)
    demo = sub.add_parser("demo", help="make the self-service demo project, its member user (password on stdin) "
                          "and small flavors, if missing")
    demo.add_argument("--project", default="demo")
    demo.add_argument("--user", default="demo")
    demo.set_defaults(func=cmd_demo)
    books = sub.add_parser("runbooks", help="register the runbooks' job templates (what the OpenStack APIs "
                           "launch) with the hosts they act on")
    books.add_argument("--inventory", type=argparse.FileType("r"), required=True,
                       help="YAML inventory of the cloud's hosts (groups compute and network)")
    books.add_argument("--vars", type=argparse.FileType("r"), help="YAML file of the templates' own variables")
    books.set_defaults(func=cmd_runbooks)
    check = sub.add_parser("check-settings", help="check a settings file read from stdin before it is "
                           "installed; prints each problem (never a value) and exits 1 if there is any")
    check.set_defaults(func=None)
    keys = sub.add_parser("keys", help="token signing keys")
    keys.add_argument("action", choices=["list", "rotate", "retire"])
    keys.add_argument("--keep", type=int, default=1, help="retire: the newest keys that stay active")
    keys.set_defaults(func=cmd_keys)
    return top


def server_main(argv=None) -> int:
    from nimbus_api.db import private_dirs

    args = parser().parse_args(argv)
    if args.command == "check-settings":
        # Before the file exists or while the old one is in use: nothing of this host's settings is read.
        problems = check_settings(sys.stdin.read())
        print(json.dumps({"changed": False, "problems": problems}))
        return 1 if problems else 0
    settings = get_settings()
    # Made owner-only here, whatever the umask of whoever runs the command first.
    private_dirs(settings)
    result = args.func(args, settings)
    if result is not None:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(server_main())
