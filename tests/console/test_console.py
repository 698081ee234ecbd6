"""The web console in a real headless chromium against a real controller (no lab nodes): login
and roles, the new-cluster form with its field errors, the clusters and nodes tables, the
cluster tabs and actions, the operation view, session expiry and logout. Each page is
screenshotted (KUBESALT_SHOTS, or a tmp directory).

Synchronisation is Playwright's auto-waiting `expect` only; where the controller itself has to
reach a state (a loopback node's facts), tests.waiting polls salt-run."""

import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests
from playwright.sync_api import expect

from kubesalt.master.inventory.store import Store
from kubesalt.minion_bootstrap import facts, prechecks
from tests.integration.controller import running
from tests.integration.node import LoopbackNode
from tests.waiting import wait_for

from .browser import browser, console_url, forced_call, login, new_page, shot, token

pytestmark = pytest.mark.integration

OPERATOR = ("olga", "op-Secret-4711")
VIEWER = ("victor", "view-Secret-0815")
EXPIRED = "Your session has expired; log in again."


@pytest.fixture(scope="module")
def ctl():
    with running("kscon-", [(OPERATOR[0], "operator", OPERATOR[1]),
                            (VIEWER[0], "viewer", VIEWER[1])]) as controller:
        yield controller


@pytest.fixture(scope="module")
def chromium(ctl):
    with browser(ctl) as instance:
        yield instance


@pytest.fixture(scope="module")
def op_page(ctl, chromium):
    """One operator's page, logged in once for the module."""
    page = new_page(chromium)
    page.goto(console_url(ctl, "#/login"))
    shot(page, "login")
    login(page, ctl, *OPERATOR)
    yield page
    assert page.console_errors == []
    page.context.close()


def goto(page, ctl, route):
    page.goto(console_url(ctl, route))


def names(ctl):
    return [c["name"] for c in ctl.run_ok("cluster.list")]


def http(ctl):
    session = requests.Session()
    session.trust_env = False
    session.verify = str(ctl.ca_file)
    return session


def test_browser_is_sent_to_the_console(ctl):
    resp = http(ctl).get(f"{ctl.api_url}/", headers={"Accept": "text/html"},
                         allow_redirects=False, timeout=30)
    assert resp.status_code in (301, 302, 303) and resp.headers["Location"].endswith("/console/")


def test_create_cluster_refused_then_created(ctl, op_page):
    page = op_page
    page.get_by_test_id("nav-clusters").click()
    page.get_by_test_id("new-cluster").click()
    page.get_by_label("Name", exact=True).fill("shop1")
    # Pre-filled from cluster.options' defaults.
    defaults = ctl.run_ok("cluster.options")["defaults"]
    expect(page.get_by_label("Kubernetes version")).to_have_value(defaults["k8s_version"])
    expect(page.get_by_label("Service subnet")).to_have_value(defaults["service_subnet"])
    page.get_by_test_id("advanced").locator("summary").click()
    pod = page.get_by_label("Pod subnet")
    pod.fill("127.0.0.0/16")
    page.get_by_test_id("create-submit").click()

    error = page.get_by_test_id("error-pod_subnet")
    expect(error).to_contain_text("loopback")
    expect(pod).to_have_attribute("aria-invalid", "true")
    assert error.get_attribute("id") in pod.get_attribute("aria-describedby").split()
    shot(page, "new-cluster-error")
    assert "shop1" not in names(ctl)

    pod.fill("10.244.0.0/16")
    page.get_by_test_id("nc-type-dedicated-multi-master").check()
    page.get_by_label("Location").fill("store-42")
    page.get_by_label("Labels").fill("env=prod\nteam=retail")
    page.get_by_test_id("create-submit").click()
    expect(page.get_by_test_id("cluster-name")).to_have_text("shop1")
    expect(page.get_by_test_id("tab-install")).to_have_attribute("aria-selected", "true")
    shown = ctl.run_ok("cluster.show", "shop1")
    assert shown["type"] == "dedicated-multi-master"
    assert shown["labels"] == {"env": "prod", "team": "retail"}
    assert (shown["location"], shown["pod_subnet"]) == ("store-42", "10.244.0.0/16")

    page.get_by_test_id("nav-clusters").click()
    row = page.locator('[data-row="shop1"]')
    expect(row).to_contain_text("dedicated-multi-master")
    expect(row).to_contain_text("0/0")
    expect(row).to_contain_text("env=prod")
    # no node to check yet: the health says so, and why
    expect(row.get_by_test_id("cluster-health")).to_have_text("unknown")
    expect(row.get_by_test_id("cluster-health")).to_have_attribute(
        "title", re.compile("not checked yet|no node of the cluster has an accepted key"))


def test_clusters_search_and_sort(ctl, op_page):
    ctl.run_ok("cluster.create", "alpha", "location=north")
    ctl.run_ok("cluster.create", "beta", "labels={tier: gold}")
    every = names(ctl)
    page = op_page
    page.get_by_test_id("nav-clusters").click()
    page.get_by_test_id("refresh").click()
    rows = page.locator("[data-testid=clusters-table] tbody tr")
    expect(rows).to_have_count(len(every))
    first = rows.first
    expect(first).to_have_attribute("data-row", "alpha")

    page.get_by_label("Search clusters").fill("gold")
    expect(rows).to_have_count(1)
    expect(first).to_have_attribute("data-row", "beta")
    page.get_by_label("Search clusters").fill("")
    expect(rows).to_have_count(len(every))

    page.get_by_test_id("sort-name").click()  # already ascending: now descending
    expect(page.locator("th[aria-sort=descending]")).to_contain_text("Name")
    expect(first).to_have_attribute("data-row", max(every))
    page.get_by_test_id("sort-location").click()
    expect(first).to_have_attribute("data-row", "alpha")  # "north" before "store-42"
    shot(page, "clusters")


def _fake_rows(route, fun, result):
    """Answer the console's calls of `fun` with `result`; let every other call through."""
    body = route.request.post_data_json
    calls = body if isinstance(body, list) else [body]
    if any(c.get("fun") == fun for c in calls):
        route.fulfill(json={"return": [result for _ in calls]})
    else:
        route.continue_()


def test_a_thousand_nodes_are_paged(ctl, op_page):
    page = op_page
    rows = [{"id": f"node-{i:08x}-10-0-{i // 250}-{i % 250}-shop1", "hostname": "",
             "cluster": "shop1", "status": "READY" if i % 3 else "DISCOVERED",
             "address": f"10.0.{i // 250}.{i % 250}", "enrolled_at": 1795800000 + i,
             "config": None, "connected": True} for i in range(1000)]
    page.route(f"{ctl.api_url}/", lambda route: _fake_rows(route, "node.list", rows))
    try:
        goto(page, ctl, "#/clusters/shop1/nodes")
        summary = page.get_by_test_id("nodes-table-summary")
        expect(summary).to_have_text("1–50 of 1000; page 1 of 20")
        body_rows = page.locator("[data-testid=nodes-table] tbody tr")
        expect(body_rows).to_have_count(50)
        page.get_by_test_id("nodes-table-next").click()
        expect(summary).to_have_text("51–100 of 1000; page 2 of 20")
        page.get_by_label("Sort by").select_option("-created")
        expect(body_rows.first).to_have_attribute("data-row", rows[-1]["id"])
        page.get_by_label("Search nodes").fill("discovered")
        expect(summary).to_contain_text("of 334 (1000 in all)")
        expect(page.get_by_test_id("node-approve")).to_have_count(50)
        expect(body_rows.first.get_by_test_id("node-status")).to_have_class(
            "badge status-discovered")
    finally:
        page.unroute(f"{ctl.api_url}/")


def test_tabs_and_keyboard(ctl, op_page):
    page = op_page
    goto(page, ctl, "#/clusters/shop1/nodes")
    nodes = page.get_by_role("tab", name="Nodes")
    expect(nodes).to_have_attribute("aria-selected", "true")
    nodes.focus()
    page.keyboard.press("ArrowRight")
    install = page.get_by_role("tab", name="Install")
    expect(install).to_be_focused()
    expect(install).to_have_attribute("aria-selected", "true")
    expect(page.get_by_test_id("commands-amd64")).to_contain_text(
        "sudo ./conjurer -preflight -edge-name=shop1 -passphrase-file=shop1-passphrase.txt "
        "-creds-file=shop1.pem")
    expect(page.get_by_test_id("commands-arm64")).to_contain_text("sudo ./conjurer -m -d")
    page.keyboard.press("End")
    expect(page.get_by_role("tab", name="Configuration")).to_be_focused()
    expect(page.get_by_test_id("config-list")).to_contain_text("store-42")
    shot(page, "cluster-config")


def test_provision_and_upgrade_dialogs(ctl, op_page):
    page = op_page
    goto(page, ctl, "#/clusters/shop1/operation")
    expect(page.get_by_test_id("no-operation")).to_be_visible()
    page.get_by_test_id("action-provision").click()
    dialog = page.get_by_test_id("provision-dialog")
    expect(dialog).to_contain_text("It can take 5-10 mins")
    dialog.get_by_test_id("provision-dialog-confirm").click()
    # No nodes: refused, and the refusal stays in the dialog.
    expect(dialog.get_by_test_id("provision-dialog-error")).to_contain_text("master")
    shot(page, "provision-refused")
    dialog.get_by_test_id("provision-dialog-cancel").click()
    expect(dialog).to_have_count(0)

    ctl.run_ok("cluster.create", "old1", "k8s_version=1.30")
    goto(page, ctl, "#/clusters/old1/nodes")
    page.get_by_test_id("action-upgrade").click()
    dialog = page.get_by_test_id("upgrade-dialog")
    target = ctl.run_ok("cluster.upgrades", "old1")["targets"][0]
    expect(dialog.get_by_label("Upgrade to")).to_have_value(target["version"])
    expect(dialog.get_by_test_id("upgrade-missing")).to_contain_text(target["sync_command"])
    shot(page, "upgrade-dialog")
    dialog.get_by_test_id("upgrade-dialog-cancel").click()
    assert ctl.run_ok("cluster.show", "old1")["k8s_version"].startswith("1.30")


def test_reset_button_only_when_enabled_and_edit(ctl, op_page):
    page = op_page
    goto(page, ctl, "#/clusters/shop1/config")
    expect(page.get_by_test_id("action-provision")).to_be_visible()
    expect(page.get_by_test_id("action-reset")).to_have_count(0)
    ctl.run_ok("cluster.update", "shop1", "reset_enabled=True")
    page.reload()
    reset = page.get_by_test_id("action-reset")
    expect(reset).to_be_visible()
    reset.click()
    dialog = page.get_by_test_id("reset-dialog")
    confirm = dialog.get_by_test_id("reset-dialog-confirm")
    expect(confirm).to_be_disabled()
    dialog.get_by_label("Type the cluster's name").fill("shop")
    expect(confirm).to_be_disabled()
    dialog.get_by_label("Type the cluster's name").fill("shop1")
    expect(confirm).to_be_enabled()
    shot(page, "reset-dialog")
    dialog.get_by_test_id("reset-dialog-cancel").click()

    # Edit: a refused value beside its field, then a saved change.
    page.get_by_test_id("config-edit").click()
    ttl = page.get_by_label("Installer credentials valid (days)")
    ttl.fill("0")
    page.get_by_label("Location").fill("store-43")
    page.get_by_label("Labels").fill("env=prod\ntier=gold")
    page.get_by_test_id("edit-save").click()
    expect(page.get_by_test_id("error-installer_ttl_days")).to_be_visible()
    shot(page, "cluster-edit-error")
    ttl.fill("30")
    page.get_by_label("Allow reset of this cluster").uncheck()
    page.get_by_test_id("edit-save").click()
    expect(page.get_by_test_id("config-list")).to_contain_text("store-43")
    expect(page.get_by_test_id("action-reset")).to_have_count(0)
    shown = ctl.run_ok("cluster.show", "shop1")
    assert shown["labels"] == {"env": "prod", "tier": "gold"}
    assert (shown["installer_ttl_days"], shown["reset_enabled"]) == (30, False)


def test_delete_with_nodes_is_refused_unless_they_are_reset_first(ctl, op_page):
    """Delete refuses a cluster with a node, naming force; with the dialog's reset option the
    nodes are reset first, as an operation, and the cluster is gone."""
    page = op_page
    ctl.run_ok("cluster.create", "gone1")
    store = Store(ctl.root / "var" / "lib" / "kubesalt")
    store.enroll_node("node-dddd0001-10-0-0-9-gone1", "gone1", "0" * 64, "s1", "10.0.0.9")
    goto(page, ctl, "#/clusters/gone1/config")
    page.get_by_test_id("action-delete").click()
    dialog = page.get_by_test_id("delete-dialog")
    dialog.get_by_label("Type the cluster's name").fill("gone1")
    dialog.get_by_test_id("delete-dialog-confirm").click()
    expect(dialog.get_by_test_id("delete-dialog-error")).to_contain_text("force=True")
    assert "gone1" in names(ctl)
    dialog.get_by_label("Reset its 1 node first").check()
    shot(page, "delete-dialog-force")
    dialog.get_by_test_id("delete-dialog-confirm").click()
    expect(page.get_by_test_id("delete-dialog")).to_have_count(0)
    wait_for(lambda: "gone1" not in names(ctl), 120, "the forced delete to end")


def test_operation_follows_a_running_operation_and_cancels_it(ctl, op_page):
    """An operation recorded in the controller's store as its executor would (a stand-in
    process that never progresses holds it): the page follows it by polling, each node's
    own bar in the timeline, and the operator's Cancel reaches the store."""
    ctl.run_ok("cluster.create", "ops1")
    store = Store(ctl.root / "var" / "lib" / "kubesalt")
    stages = [{"name": "prechecks", "title": "Prechecks", "nodes": ["n1", "n2"], "skip": ""},
              {"name": "containerd", "title": "containerd", "nodes": ["n1", "n2"], "skip": ""},
              {"name": "ready", "title": "Ready", "nodes": [], "skip": ""}]
    executor = subprocess.Popen(["sleep", "600"], start_new_session=True)
    try:
        store.create_operation("op-early", "ops1", "provision", stages[:1], lambda pid: True)
        store.finish_operation("op-early", False, error="n1: unreachable",
                               failed_stage="prechecks", failed_node="n1")
        store.create_operation("op-now", "ops1", "provision", stages, lambda pid: True)
        store.start_operation("op-now", executor.pid)
        now = time.time()
        store.record_stage("op-now", "prechecks", "done", now - 30, now - 26, None,
                           {n: {"state": "done", "started_at": now - 30,
                                "finished_at": now - 26} for n in ("n1", "n2")})
        store.record_stage("op-now", "containerd", "running", now - 26, None, None,
                           {"n1": {"state": "done", "started_at": now - 26,
                                   "finished_at": now - 12},
                            "n2": {"state": "running", "started_at": now - 20}})
        page = op_page
        goto(page, ctl, "#/clusters/ops1/operation")
        expect(page.get_by_test_id("operation-state")).to_have_text("running")
        timeline = page.get_by_test_id("timeline")
        expect(timeline.locator('.tl-done[data-stage=containerd][data-node="n1"]')).to_have_count(1)
        expect(timeline.locator('.tl-running[data-stage=containerd][data-node="n2"]')) \
            .to_have_count(1)
        page.get_by_test_id("action-cancel").click()
        page.get_by_test_id("cancel-dialog-confirm").click()
        wait_for(lambda: store.cancel_requested("op-now"), 30, "the cancel request")
        # what the executor records once the node's job ended
        store.record_stage("op-now", "containerd", "failed", now - 26, time.time(),
                           "containerd did not start",
                           {"n1": {"state": "done", "started_at": now - 26,
                                   "finished_at": now - 12},
                            "n2": {"state": "failed", "started_at": now - 20,
                                   "finished_at": time.time(),
                                   "error": "containerd did not start"}})
        store.finish_operation("op-now", False, error="containerd did not start",
                               failed_stage="containerd", failed_node="n2")
        expect(page.get_by_test_id("operation-state")).to_have_text("failed")  # by polling
        expect(page.get_by_test_id("action-cancel")).to_have_count(0)
        table = page.get_by_test_id("stage-table")
        expect(table.locator("[data-stage=containerd]")).to_contain_text(
            "containerd did not start")
        failed = timeline.locator('.tl-failed[data-node="n2"]')
        expect(failed.locator("title")).to_contain_text("containerd did not start")
        expect(timeline.locator('.tl-failed[data-node="n1"]')).to_have_count(0)
        link = page.get_by_test_id("timeline-failed-link")
        expect(link).to_have_attribute("href", "#/clusters/ops1/nodes?node=n2&log=1")
        expect(page.get_by_test_id("history-op")).to_have_count(1)
        shot(page, "cluster-operation")
    finally:
        executor.kill()
        executor.wait()


def test_node_enrolls_from_downloaded_files_and_is_approved(ctl, op_page, tmp_path):
    """Credentials issued and downloaded in the browser enroll a loopback node, which the
    operator approves and configures on the Nodes tab and whose agent log the console shows."""
    ctl.run_ok("cluster.create", "loop1")
    page = op_page
    goto(page, ctl, "#/clusters/loop1/install")
    page.get_by_test_id("installer-issue").click()
    expect(page.get_by_test_id("installer-serial")).not_to_be_empty()
    written = ctl.root / "var" / "lib" / "kubesalt" / "installers" / "loop1"
    for testid, name in (("download-pem", "loop1.pem"),
                         ("download-passphrase", "loop1-passphrase.txt"),
                         ("download-conjurer", "conjurer")):
        with page.expect_download() as download:
            page.get_by_test_id(testid).click()
        assert download.value.suggested_filename == name
        download.value.save_as(tmp_path / name)
        assert (tmp_path / name).read_bytes() == (written / name).read_bytes()
    shot(page, "cluster-install")

    base = Path(tempfile.mkdtemp(prefix="kscn-"))  # short: Salt's socket paths
    node = LoopbackNode.from_installer(base / "n", tmp_path, "loop1", "c0de0001")
    try:
        reported = facts.gather(prechecks.Context())
        assert node.enroll(facts=reported)[0] == 200
        node.start_minion()
        page.get_by_test_id("tab-nodes").click()
        row = page.locator(f'[data-row="{node.id}"]')
        # The tab refreshes itself every 5 s.
        expect(row.get_by_test_id("node-status")).to_have_text("DISCOVERED", timeout=60000)
        shot(page, "cluster-nodes-discovered")
        # Before approval: what conjurer reported when the node enrolled.
        row.get_by_test_id("node-link").click()
        detail = page.get_by_test_id("node-detail")
        expect(detail.get_by_test_id("facts-source")).to_contain_text("Reported by conjurer")
        expect(detail.get_by_test_id("node-facts")).to_contain_text(reported["kernelrelease"])
        shot(page, "node-detail-discovered")
        detail.get_by_test_id("node-detail-close").click()
        row.get_by_test_id("node-approve").click()
        expect(row.get_by_test_id("node-status")).to_have_text("APPROVED")

        wait_for(lambda: ctl.run_ok("node.show", node.id).get("facts", {})
                 .get("kubesalt_interfaces"), 90, "the node's probed facts")
        row.get_by_test_id("node-configure").click()
        dialog = page.get_by_test_id("configure-dialog")
        dialog.get_by_label("storage", exact=True).check()
        dialog.get_by_test_id("configure-dialog-confirm").click()
        # Refused (no interface, no disk): beside the fields, nothing stored.
        expect(dialog.get_by_test_id("error-interface")).to_be_visible()
        expect(dialog.get_by_test_id("error-storage_devices")).to_be_visible()
        shot(page, "node-configure-refused")
        assert ctl.run_ok("node.show", node.id)["config"] is None
        dialog.get_by_label("storage", exact=True).uncheck()
        dialog.get_by_label("master", exact=True).check()
        nic = dialog.get_by_label("Network interface")
        nic.select_option(index=1 + next(
            i for i, n in enumerate(ctl.run_ok("node.show", node.id)["facts"]
                                    ["kubesalt_interfaces"]) if n["ipv4"]))
        dialog.get_by_test_id("configure-dialog-confirm").click()
        expect(dialog).to_have_count(0)
        expect(row).to_contain_text("master, worker")
        assert ctl.run_ok("node.show", node.id)["config"]["roles"] == ["master", "worker"]

        row.get_by_test_id("node-link").click()
        detail = page.get_by_test_id("node-detail")
        expect(detail.get_by_test_id("node-facts")).to_contain_text("Kernel")
        detail.get_by_test_id("node-log-button").click()
        expect(detail.get_by_test_id("node-log").or_(
            detail.get_by_test_id("node-log-error"))).to_be_visible(timeout=60000)
        expect(detail.get_by_test_id("node-log")).not_to_be_empty()
        shot(page, "node-detail")
    finally:
        node.stop_minion()
        shutil.rmtree(base, ignore_errors=True)


def test_artifacts_page(ctl, op_page):
    page = op_page
    page.get_by_test_id("nav-artifacts").click()
    versions = ctl.run_ok("artifacts.list")["versions"]
    rows = page.locator("[data-testid=artifacts-table] tbody tr")
    expect(rows).to_have_count(len(versions))
    expect(page.get_by_test_id("artifact-sync")).to_have_count(len(versions))
    expect(rows.first.get_by_test_id("artifact-complete")).to_have_text(
        "complete" if versions[0]["complete"] else "incomplete")
    shot(page, "artifacts")


# The viewer's pages: only these buttons (navigation, never an action).
HARMLESS = {"Refresh", "Previous", "Next", "Nodes", "Install", "Operation", "Configuration",
            "Log out"}


def test_viewer_sees_everything_and_can_do_nothing(ctl, chromium):
    page = new_page(chromium)
    try:
        login(page, ctl, *VIEWER)
        expect(page.locator('[data-row="shop1"]')).to_be_visible()
        expect(page.get_by_test_id("new-cluster")).to_have_count(0)
        page.locator('[data-row="shop1"]').get_by_test_id("cluster-link").click()
        expect(page.get_by_test_id("cluster-state")).to_be_visible()
        expect(page.get_by_test_id("cluster-actions").locator("button")).to_have_count(0)
        checks = (("Nodes", "nodes-table"), ("Install", "commands-amd64"),
                  ("Operation", "no-operation"), ("Configuration", "config-list"))
        for tab, visible in checks:
            page.get_by_role("tab", name=tab).click()
            expect(page.get_by_test_id(visible)).to_be_visible()
            assert set(page.locator("body button:not(.sort)").all_inner_texts()) <= HARMLESS, tab
            if tab == "Nodes":
                shot(page, "viewer-cluster")
        page.get_by_test_id("nav-artifacts").click()
        expect(page.locator("[data-testid=artifacts-table] tbody tr").first).to_be_visible()
        expect(page.get_by_test_id("artifact-sync")).to_have_count(0)
        assert set(page.locator("body button:not(.sort)").all_inner_texts()) <= HARMLESS

        assert forced_call(page, "cluster.create", name="sneaky") == 403
        assert "sneaky" not in names(ctl)
        assert page.console_errors == []
    finally:
        page.context.close()


def test_session_expiry_returns_to_login(ctl, chromium):
    page = new_page(chromium)
    try:
        login(page, ctl, *OPERATOR)
        resp = http(ctl).post(f"{ctl.api_url}/logout", json={}, timeout=30,
                              headers={"X-Auth-Token": token(page)})
        assert resp.status_code == 200
        page.get_by_test_id("refresh").click()
        expect(page.get_by_test_id("login-message")).to_have_text(EXPIRED)
        expect(page.get_by_test_id("login-user")).to_be_visible()
        shot(page, "session-expired")

        # The expiry time the login answered passes in the browser.
        login(page, ctl, *OPERATOR)
        page.evaluate("""() => { const s = JSON.parse(sessionStorage.getItem('kubesalt.session'));
            s.expire = Date.now() / 1000 - 1;
            sessionStorage.setItem('kubesalt.session', JSON.stringify(s)); }""")
        page.get_by_test_id("nav-artifacts").click()
        expect(page.get_by_test_id("login-message")).to_have_text(EXPIRED)
    finally:
        page.context.close()


def test_logout(ctl, chromium):
    page = new_page(chromium)
    try:
        login(page, ctl, *OPERATOR)
        old = token(page)
        page.get_by_test_id("logout").click()
        expect(page.get_by_test_id("login-message")).to_have_text("You have logged out.")
        assert page.evaluate("sessionStorage.getItem('kubesalt.session')") is None
        resp = http(ctl).post(f"{ctl.api_url}/", timeout=30, headers={"X-Auth-Token": old},
                              json={"client": "runner", "fun": "cluster.list"})
        assert resp.status_code == 401
        goto(page, ctl, "#/clusters")
        expect(page.get_by_test_id("login-user")).to_be_visible()
        expect(page.locator("#topbar")).to_be_hidden()
        # A wrong password says so and stays on the login page.
        page.get_by_test_id("login-user").fill(OPERATOR[0])
        page.get_by_test_id("login-password").fill("not-it")
        page.get_by_test_id("login-submit").click()
        expect(page.get_by_test_id("login-error")).to_have_text("Wrong user name or password.")
    finally:
        page.context.close()
