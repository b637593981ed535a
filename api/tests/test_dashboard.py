"""The dashboard end to end in headless Chromium (the distribution's), driven by Playwright: log in,
switch project, launch a template through the form made from its schema, watch the job's log arrive
live to its end, and list resources (real instance_info against libvirt's test driver)."""

from __future__ import annotations

import json
import os
import re
import shutil

import pytest
from conftest import settle, template

playwright = pytest.importorskip("playwright.sync_api")
CHROMIUM = os.environ.get("NIMBUS_CHROMIUM", "/usr/bin/chromium")
# Headless, as root in CI, and quiet on a closed network (no update, sync or metrics connections).
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"]

pytestmark = pytest.mark.skipif(not shutil.which(CHROMIUM), reason="chromium is not installed (tools/testbed installs it)")


@pytest.fixture
def settings(views_settings):  # the resource views' settings (conftest), with an inventory
    return views_settings


@pytest.fixture(scope="session")
def browser():
    """One Chromium for the session; each test gets a context of its own (cookies, storage), see page."""
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(120000)
    yield page
    context.close()


def log_in(page, url, user, project=None):
    page.goto(url + "/ui/login")
    page.fill("#user", user)
    page.fill("#password", "password-123")
    if project:
        page.fill("#project", project)
    page.click("#login-button")
    page.wait_for_url(url + "/ui/")


def test_log_in_switch_launch_watch_and_list(page, live_server, cloud, hypervisor):
    a, b = cloud.project("proj-a"), cloud.project("proj-b")
    cloud.user("dual", roles=[(a, "member"), (b, "reader")])
    hypervisor([("web-a", a), ("web-b", b)])
    template(cloud, name="chatty", description="Says things", schema={
        "type": "object", "additionalProperties": False, "required": ["count"],
        "properties": {"count": {"type": "integer", "minimum": 1, "maximum": 20, "title": "Lines"},
                       "colour": {"type": "string", "enum": ["red", "blue"]},
                       "loud": {"type": "boolean"}}})

    # A wrong password stays on the login page with the reason.
    page.goto(live_server + "/ui/login")
    page.fill("#user", "dual")
    page.fill("#password", "wrong")
    page.click("#login-button")
    page.wait_for_selector("#error:has-text('invalid credentials')")
    # The token is in an HttpOnly cookie: the page's scripts cannot read it.
    log_in(page, live_server, "dual", "proj-b")
    assert page.evaluate("document.cookie") == ""
    cookie = [c for c in page.context.cookies() if c["name"] == "nimbus_token"][0]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    page.wait_for_selector("#whoami:has-text('dual (reader)')")
    # A reader is not offered the template.
    page.wait_for_selector("#view :text('None.')")

    # Switch project: the session is rescoped to proj-a, where dual is a member.
    page.select_option("#project-switch", a)
    page.wait_for_selector("#whoami:has-text('dual (member)')")
    page.click("[data-launch=chatty]")

    # The form follows the schema: a required integer with bounds, an enum, a boolean.
    count = page.locator("#var-count")
    assert count.get_attribute("type") == "number" and count.get_attribute("max") == "20"
    assert count.get_attribute("required") is not None
    assert page.locator("#var-colour option").all_text_contents() == ["", "red", "blue"]
    assert page.locator("#var-loud").get_attribute("type") == "checkbox"
    count.fill("5")
    page.click("#launch-submit")

    # The log arrives live and ends with the recap; the status turns successful.
    page.wait_for_selector("#job-status:has-text('successful')", timeout=300000)
    log = page.inner_text("#job-log")
    assert all(re.search(r"msg\W+line %d\b" % n, log) for n in range(5)) and "PLAY RECAP" in log
    assert "project %s on node-1" % a in log

    # The job list has it; resources show this project's instance only.
    page.click("text=Jobs")
    page.wait_for_selector("#view .status.successful")
    page.click("text=Resources")
    page.wait_for_selector("#resources-instances")
    page.wait_for_selector("#resources-instances td:text('web-a')")
    assert "web-b" not in page.inner_text("#resources-instances")
    assert "Not available" in page.inner_text("#resources-volumes")

    # Log out: the token is revoked and the app sends the browser back to the login page.
    page.click("#logout")
    page.wait_for_url(live_server + "/ui/login")
    page.goto(live_server + "/ui/")
    page.wait_for_url(live_server + "/ui/login")


def test_a_slow_view_never_lands_over_the_one_clicked_after_it(page, live_server, cloud):
    """The first page's templates are held back while the user goes to Jobs: once they arrive, Jobs stays."""
    a = cloud.project("proj-a")
    cloud.user("member-a", roles=[(a, "member")])
    template(cloud, name="slow-to-list")
    held = []

    def hold(route):  # Playwright marks its handler, so a bound method such as held.append cannot be one
        held.append(route)

    page.route("**/v1/job_templates", hold)
    log_in(page, live_server, "member-a", "proj-a")
    while not held:
        page.wait_for_timeout(50)
    page.click("a[href='#/jobs']")
    with page.expect_response("**/v1/job_templates"):
        held[0].continue_()
    page.wait_for_selector("#view h2:text-is('Jobs')")
    # Whatever the held answer was going to render has had its turn: a stale view would now be shown.
    page.evaluate("() => new Promise((done) => setTimeout(done, 300))")
    assert page.inner_text("#view h2") == "Jobs"
    assert "slow-to-list" not in page.inner_text("#view")


def test_launch_errors_are_shown(page, live_server, cloud):
    a = cloud.project("proj-a")
    cloud.user("member-a", roles=[(a, "member")])
    strict = {"type": "object", "properties": {"count": {"type": "integer", "multipleOf": 7}}}
    template(cloud, name="strict", schema=strict)
    log_in(page, live_server, "member-a", "proj-a")
    page.click("[data-launch=strict]")
    page.fill("#var-count", "5")
    page.click("#launch-submit")
    page.wait_for_selector("#error:has-text('extra_vars.count')")


def test_instances_launch_watch_and_delete(page, live_server, cloud, app, hypervisor, tmp_path):
    """What a Horizon user looks for first: the project's instances, a Launch instance form (name, flavor, image,
    key pair) and delete, on the compute and image APIs. The server runbooks are test_nova_server_changes's
    stand-ins (they edit the test driver's file the instances view reads)."""
    from conftest import TINY_IMAGE, register_runbooks, with_views
    from test_nova_server_changes import STANDINS

    for name, text in STANDINS.items():
        (app.state.settings.playbooks_dir / name).write_text(text)
    xml = hypervisor([])
    register_runbooks(app, standin_xml=str(xml), standin_gate=str(tmp_path / "go"))
    networks = []
    with_views(app, images=lambda: [TINY_IMAGE], networks=lambda: networks)
    made = cloud.client.post("/compute/v2.1/flavors", headers={"X-Auth-Token": cloud.admin},
                             json={"flavor": {"name": "m1.nano", "id": "1", "vcpus": 1, "ram": 256, "disk": 1}})
    assert made.status_code == 200, made.text
    a = cloud.project("proj-a")
    cloud.user("member-a", roles=[(a, "member")])
    networks.append({"name": "net-a", "project": a, "type": "vxlan", "mtu": 1450, "shared": False,
                     "external": False, "port_count": 0,
                     "subnets": [{"name": "sub-a", "network": "net-a", "project": a, "cidr": "10.9.0.0/24"}]})
    log_in(page, live_server, "member-a", "proj-a")
    page.click("a[href='#/networks']")
    page.wait_for_selector("[data-network='net-a']:has-text('ACTIVE')")
    assert "10.9.0.0/24" in page.inner_text("#view")
    page.click("a[href='#/instances']")
    page.wait_for_selector("#launch-instance")
    assert page.inner_text("#view").count("None.") == 1
    # A name that is markup stays text; the server waits in BUILD until the test lets its runbook go on.
    hostile = "<img src=x onerror=alert(1)>"
    page.click("#launch-instance")
    page.fill("#instance-form [name=name]", hostile)
    page.select_option("#instance-form [name=flavor]", "1")
    page.select_option("#instance-form [name=image]", label="tiny.qcow2")
    page.select_option("#instance-form [name=network]", "net-a")
    page.click("#instance-submit")
    page.wait_for_selector("[data-server='%s']:has-text('BUILD')" % hostile)
    assert page.locator("#view img").count() == 0
    (tmp_path / "go").write_text("")
    page.wait_for_selector("[data-server='%s']:has-text('ACTIVE')" % hostile, timeout=300000)
    arrived = [json.loads(f.read_text()) for f in xml.parent.glob("arrived-*.json")]
    assert [(a["name"], a["networks"]) for a in arrived] == [(hostile, ["net-a"])]
    # A bad launch shows the API's message.
    page.click("#launch-instance")
    page.fill("#instance-form [name=name]", "x")
    page.evaluate("document.querySelector('#instance-form [name=image]').append(new Option('gone', 'gone.qcow2'))")
    page.select_option("#instance-form [name=image]", "gone.qcow2")
    page.click("#instance-submit")
    page.wait_for_selector("#error:has-text('Image gone.qcow2 could not be found')")
    page.click("a[href='#/instances']")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("[data-delete='%s']" % hostile)
    page.wait_for_selector("#view p.empty", timeout=300000)


def test_security_groups_create_rules_and_delete(page, live_server, cloud, app, tmp_path):
    """The project's security groups and their rules on the networking API: the default group made on first sight,
    a group created, a rule added and deleted, the group deleted; markup in a name stays text. The runbooks are
    test_neutron_ports_security's stand-ins (they edit the file the security groups view reads)."""
    from conftest import register_runbooks, with_views
    from test_neutron_ports_security import STANDINS

    for name, text in STANDINS.items():
        (app.state.settings.playbooks_dir / name).write_text(text)
    held = tmp_path / "groups.json"
    held.write_text("[]")
    register_runbooks(app, standin_groups=str(held), standin_ports=str(tmp_path / "ports.json"))
    with_views(app, security_groups=lambda: json.loads(held.read_text()), ports=lambda: [])
    a = cloud.project("proj-a")
    cloud.user("member-a", roles=[(a, "member")])
    log_in(page, live_server, "member-a", "proj-a")
    page.click("a[href='#/security-groups']")
    page.wait_for_selector("[data-group='default']")
    hostile = "<img src=x onerror=alert(1)>"
    page.fill("#group-form [name=name]", hostile)
    page.click("#group-submit")
    page.wait_for_selector("[data-group='%s']" % hostile)
    assert page.locator("#view img").count() == 0
    form = "[data-rule-form='%s']" % hostile
    page.select_option(form + " [name=protocol]", "tcp")
    page.fill(form + " [name=port_range_min]", "22")
    page.fill(form + " [name=remote_ip_prefix]", "192.0.2.0/24")
    page.click(form + " button[type=submit]")
    page.wait_for_selector("[data-group='%s'] td:has-text('192.0.2.0/24')" % hostile)
    settle(app)
    mine = [g for g in json.loads(held.read_text()) if g["project"] == a and g["name"] != default_id(a)]
    assert [(r["protocol"], r["port_range_min"]) for r in mine[0]["rules"] if r["direction"] == "ingress"] == [("tcp", 22)]
    # A rule the API refuses shows its message.
    page.select_option(form + " [name=protocol]", "icmp")
    page.fill(form + " [name=port_range_min]", "300")
    page.click(form + " button[type=submit]")
    page.wait_for_selector("#error:has-text('ICMP')")
    page.click("[data-group='%s'] tr:has-text('192.0.2.0/24') [data-delete-rule]" % hostile)
    page.wait_for_selector("[data-group='%s'] td:has-text('192.0.2.0/24')" % hostile, state="detached")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("[data-delete-group='%s']" % hostile)
    page.wait_for_selector("[data-group='%s']" % hostile, state="detached")
    settle(app)
    assert [g["name"] for g in json.loads(held.read_text())] == [default_id(a)]


def default_id(project_id):
    from nimbus_api.openstack.neutron_security import default_id as made

    return made(project_id)
