"""The dashboard end to end in headless Chromium (the distribution's), driven by Playwright: log in,
switch project, launch a template through the form made from its schema, watch the job's log arrive
live to its end, and list resources (real instance_info against libvirt's test driver)."""

from __future__ import annotations

import os
import re
import shutil

import pytest
from conftest import template

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
    page.set_default_timeout(30000)
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
    page.wait_for_selector("#job-status:has-text('successful')", timeout=60000)
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
