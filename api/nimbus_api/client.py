"""`nimbus`: the command-line client of the API.

    nimbus login --url http://controller:8080 --user alice --project demo
    nimbus templates
    nimbus launch deploy-demo -e count=3 --follow
    nimbus events <job id> --host web1

``login`` keeps the token (never the password) in ``~/.config/nimbus/auth.json``, mode 0600;
``NIMBUS_URL`` and ``NIMBUS_TOKEN`` override it, for scripts. The password is read from
``NIMBUS_PASSWORD``, from stdin with ``--password-stdin``, or from a prompt: never from argv.
``launch --follow`` prints the job's output live from the SSE stream, reconnecting with the last event
id if the connection drops (so nothing is lost or repeated), and exits 0 only if the job succeeded.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
from pathlib import Path

import httpx

CONFIG = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "nimbus" / "auth.json"


class ClientError(Exception):
    pass


class Client:
    def __init__(self, url: str, token: str | None, project_id: str | None = None, transport=None):
        self.url = url.rstrip("/")
        self.token = token
        self.project_id = project_id
        self.http = httpx.Client(base_url=self.url, timeout=30, transport=transport)

    @classmethod
    def from_config(cls, transport=None) -> "Client":
        saved = json.loads(CONFIG.read_text()) if CONFIG.exists() else {}
        url = os.environ.get("NIMBUS_URL") or saved.get("url")
        token = os.environ.get("NIMBUS_TOKEN") or saved.get("token")
        if not url or not token:
            raise ClientError("not logged in: run `nimbus login` (or set NIMBUS_URL and NIMBUS_TOKEN)")
        client = cls(url, token, saved.get("project_id"), transport)
        if os.environ.get("NIMBUS_TOKEN"):
            client.project_id = client.call("GET", "/v1/auth/tokens")["project_id"]
        return client

    def call(self, method, path, **kw):
        headers = {"Authorization": "Bearer " + self.token} if self.token else {}
        response = self.http.request(method, path, headers=headers, **kw)
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail")
            except ValueError:
                detail = response.text
            raise ClientError("%s %s: %s %s" % (method, path, response.status_code, detail))
        return response.json() if response.content else None

    def project_path(self, suffix):
        if not self.project_id:
            raise ClientError("the token is not scoped to a project: log in with --project")
        return "/v1/projects/%s%s" % (self.project_id, suffix)

    def template(self, ref):
        for t in self.call("GET", "/v1/job_templates"):
            if ref in (t["id"], t["name"]):
                return t
        raise ClientError("no job template %s that this token may see" % ref)

    def stream(self, job_id, after=0, retries=5):
        """Yield (kind, data) from the job's SSE stream until its end, resuming after a dropped connection."""
        last, failures = after, 0
        while True:
            headers = {"Authorization": "Bearer " + self.token, "Last-Event-ID": str(last)}
            try:
                with self.http.stream("GET", self.project_path("/jobs/%s/stream" % job_id), headers=headers,
                                      timeout=httpx.Timeout(30, read=None)) as response:
                    if response.status_code >= 400:
                        response.read()
                        raise ClientError("stream: %s %s" % (response.status_code, response.text))
                    kind, data, event_id = "message", [], None
                    for line in response.iter_lines():
                        if line.startswith("id:"):
                            event_id = int(line[3:].strip())
                        elif line.startswith("event:"):
                            kind = line[6:].strip()
                        elif line.startswith("data:"):
                            data.append(line[5:].strip())
                        elif line == "" and data:
                            yield kind, json.loads("\n".join(data))
                            if kind == "end":
                                return
                            if event_id is not None:
                                last = event_id
                            kind, data, event_id = "message", [], None
                            failures = 0
            except httpx.TransportError as e:
                failures += 1
                if failures > retries:
                    raise ClientError("stream lost: %s" % e)
                time.sleep(min(2 ** failures * 0.1, 5))


def parse_var(text: str) -> dict:
    """``-e key=value`` (the value read as JSON when it parses, else a string) or ``-e @file.json``."""
    if text.startswith("@"):
        loaded = json.loads(Path(text[1:]).read_text())
        if not isinstance(loaded, dict):
            raise ClientError("%s: extra vars must be a JSON object" % text[1:])
        return loaded
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ClientError("extra var %r: write key=value or @file.json" % text)
    try:
        return {key: json.loads(value)}
    except ValueError:
        return {key: value}


def table(rows, columns):
    if not rows:
        print("(none)")
        return
    widths = [max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)))
    for r in rows:
        print("  ".join(str(r.get(c, "") if r.get(c) is not None else "").ljust(w) for c, w in zip(columns, widths)))


def show(args, rows, columns):
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
    elif isinstance(rows, list):
        table(rows, columns)
    else:
        for c in columns:
            print("%-12s %s" % (c + ":", rows.get(c)))


# --- commands -----------------------------------------------------------------------

def cmd_login(args, transport=None):
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = os.environ.get("NIMBUS_PASSWORD") or getpass.getpass("Password for %s: " % args.user)
    client = Client(args.url, None, transport=transport)
    body = {"auth": {"password": {"user": args.user, "password": password, "domain": args.domain}}}
    if args.project:
        body["project"] = args.project
    token = client.call("POST", "/v1/auth/tokens", json=body)
    CONFIG.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(str(CONFIG), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"url": client.url, "token": token["token"], "project_id": token["project_id"],
                   "user": token["user"], "expires_at": token["expires_at"]}, f)
    print("logged in as %s%s, token valid until %s" % (
        token["user"], " on project %s (%s)" % (args.project, token["role"]) if args.project else "",
        token["expires_at"]))
    return 0


def cmd_logout(args, client):
    client.call("DELETE", "/v1/auth/tokens")
    if CONFIG.exists():
        CONFIG.unlink()
    print("logged out")
    return 0


def cmd_templates(args, client):
    show(args, client.call("GET", "/v1/job_templates"), ["id", "name", "playbook", "launch_role", "description"])
    return 0


def cmd_launch(args, client):
    template = client.template(args.template)
    extra = {}
    for text in args.extra_vars or []:
        extra.update(parse_var(text))
    body = {"extra_vars": extra, "credentials": args.credential or []}
    if args.idempotency_key:
        body["idempotency_key"] = args.idempotency_key
    job = client.call("POST", client.project_path("/job_templates/%s/launch" % template["id"]), json=body)
    if not args.follow:
        show(args, job, ["id", "status", "template_id", "created_at"])
        return 0
    print("job %s launched" % job["id"], file=sys.stderr)
    return follow(args, client, job["id"])


def follow(args, client, job_id, after=0):
    status = "unknown"
    for kind, data in client.stream(job_id, after):
        if kind == "end":
            status = data["status"]
        elif args.json:
            print(json.dumps(data))
        elif data.get("stdout"):
            print(data["stdout"])
        sys.stdout.flush()
    print("job %s %s" % (job_id, status), file=sys.stderr)
    return 0 if status == "successful" else 1


def cmd_jobs(args, client):
    params = {"status": args.status} if args.status else {}
    show(args, client.call("GET", client.project_path("/jobs"), params=params),
         ["id", "status", "template_id", "rc", "created_at"])
    return 0


def cmd_job(args, client):
    show(args, client.call("GET", client.project_path("/jobs/%s" % args.job)),
         ["id", "status", "template_id", "launched_by", "rc", "created_at", "started_at", "finished_at"])
    return 0


def cmd_cancel(args, client):
    job = client.call("POST", client.project_path("/jobs/%s/cancel" % args.job))
    show(args, job, ["id", "status"])
    return 0


def cmd_events(args, client):
    if args.follow:
        return follow(args, client, args.job, args.after)
    params = {"after": args.after, "limit": 1000}
    for name in ("host", "task"):
        if getattr(args, name):
            params[name] = getattr(args, name)
    while True:
        page = client.call("GET", client.project_path("/jobs/%s/events" % args.job), params=params)
        for e in page:
            print(json.dumps(e) if args.json else "%6d  %-18s %-12s %s" % (
                e["seq"], e["event"], e["host"] or "", (e["stdout"] or "").strip().replace("\n", " | ")))
        if len(page) < params["limit"]:
            return 0
        params["after"] = page[-1]["seq"]


RESOURCE_COLUMNS = {
    "instances": ["name", "uuid", "state", "vcpus", "ram_mb", "host"],
    "networks": ["name", "id", "type", "segmentation_id", "shared", "external"],
}


def cmd_resources(args, client):
    view = client.call("GET", client.project_path("/resources/%s" % args.kind))
    if not view["available"] and not args.json:
        print("(the cloud cannot list %s yet)" % args.kind)
        return 0
    show(args, view["items"], RESOURCE_COLUMNS.get(args.kind, ["name", "id", "status", "host"]))
    for error in view["errors"]:
        print("nimbus: %s: %s" % (error["host"], error["msg"]), file=sys.stderr)
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="nimbus", description="The nimbus.cloud command-line client.")
    top.add_argument("--json", action="store_true", help="print JSON instead of tables")
    sub = top.add_subparsers(dest="command", required=True)
    login = sub.add_parser("login", help="get a token and keep it in %s" % CONFIG)
    login.add_argument("--url", default=os.environ.get("NIMBUS_URL", "http://127.0.0.1:8080"))
    login.add_argument("--user", required=True)
    login.add_argument("--project", help="scope the token to this project (name or id)")
    login.add_argument("--domain", default="Default")
    login.add_argument("--password-stdin", action="store_true")
    login.set_defaults(func=cmd_login)
    sub.add_parser("logout", help="revoke the token and forget it").set_defaults(func=cmd_logout)
    sub.add_parser("templates", help="job templates this token may see").set_defaults(func=cmd_templates)
    launch = sub.add_parser("launch", help="launch a job template (name or id)")
    launch.add_argument("template")
    launch.add_argument("-e", "--extra-vars", action="append", metavar="KEY=VALUE|@FILE")
    launch.add_argument("--credential", action="append", metavar="ID")
    launch.add_argument("--idempotency-key")
    launch.add_argument("-f", "--follow", action="store_true", help="print the job's output live; exit 0 on success")
    launch.set_defaults(func=cmd_launch)
    jobs = sub.add_parser("jobs", help="the project's jobs, newest first")
    jobs.add_argument("--status")
    jobs.set_defaults(func=cmd_jobs)
    for name, func, text in (("job", cmd_job, "one job"), ("cancel", cmd_cancel, "cancel a job")):
        p = sub.add_parser(name, help=text)
        p.add_argument("job")
        p.set_defaults(func=func)
    events = sub.add_parser("events", help="a job's events, in order")
    events.add_argument("job")
    events.add_argument("--host")
    events.add_argument("--task")
    events.add_argument("--after", type=int, default=0)
    events.add_argument("-f", "--follow", action="store_true")
    events.set_defaults(func=cmd_events)
    resources = sub.add_parser("resources", help="the project's instances, networks, volumes or images")
    resources.add_argument("kind", choices=["instances", "networks", "volumes", "images"])
    resources.set_defaults(func=cmd_resources)
    return top


def main(argv=None, transport=None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.func is cmd_login:
            return cmd_login(args, transport)
        return args.func(args, Client.from_config(transport))
    except ClientError as e:
        print("nimbus: %s" % e, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
