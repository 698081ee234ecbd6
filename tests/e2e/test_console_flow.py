"""The web console's whole flow on a lab node, in Debian's headless chromium against the lab's
controller: an operator creates a cluster through the form (a bad pod subnet first: the field
error, nothing created), downloads the installer files through the browser, conjurer runs
with them on a lab node, the node appears with the facts conjurer reported, is approved and
configured, the cluster is
provisioned and the stage list reaches READY; a viewer sees the cluster without a single
action and is refused a forced call; Reset appears only once reset_enabled is set. Then
`salt-run node.logs` on the same node: the tail, bounded, and refusals.

Synchronisation is Playwright's auto-waiting `expect` and tests.waiting only."""

import pytest
from playwright.sync_api import expect

from tests.console.browser import browser, console_url, forced_call, login, new_page, shot
from tests.labkit import artifacts as lab_artifacts
from tests.waiting import wait_for

pytestmark = pytest.mark.lab

OPERATOR = ("otto", "op-Secret-lab-1")
VIEWER = ("vera", "view-Secret-lab-2")
CLUSTER = "web1"
K8S = "1.29.14"
DEST = "/root/kubesalt-web"
AGENT_LOG = "/opt/kubesalt/salt/var/log/salt/minion"
# Provisioning one node takes about 4 minutes in the lab on two cores.
PROVISION_MS = 15 * 60 * 1000


@pytest.fixture(scope="module")
def ctl(lab_controller, tmp_path_factory):
    """The lab's controller with console users (adding them restarts it) and K8S's
    artifacts in its store."""
    for name, role, password in ((*OPERATOR[:1], "operator", OPERATOR[1]),
                                 (*VIEWER[:1], "viewer", VIEWER[1])):
        lab_controller.add_user(name, role, password)
    source = tmp_path_factory.mktemp("web-artifacts")
    lab_artifacts.build(source, K8S)
    lab_controller.run_ok("artifacts.sync", K8S, f"source={source}")
    return lab_controller


def create_through_the_form(page, ctl):
    page.get_by_test_id("nav-clusters").click()
    page.get_by_test_id("new-cluster").click()
    page.get_by_label("Name", exact=True).fill(CLUSTER)
    page.get_by_label("Kubernetes version").select_option(K8S)
    page.get_by_label("Operating system").select_option("debian-12")
    page.get_by_label("Blueprint", exact=True).select_option("minimal")
    page.get_by_test_id("advanced").locator("summary").click()
    pod = page.get_by_label("Pod subnet")
    pod.fill("127.0.0.0/16")
    page.get_by_test_id("create-submit").click()
    expect(page.get_by_test_id("error-pod_subnet")).to_contain_text("loopback")
    shot(page, "lab-new-cluster-refused")
    assert CLUSTER not in [c["name"] for c in ctl.run_ok("cluster.list")]
    pod.fill("10.244.0.0/16")
    page.get_by_test_id("create-submit").click()
    expect(page.get_by_test_id("cluster-name")).to_have_text(CLUSTER)
    shown = ctl.run_ok("cluster.show", CLUSTER)
    assert (shown["k8s_version"], shown["os"], shown["blueprint"]) == \
        (K8S, "debian-12", "minimal")


def download_installer(page, dest):
    page.get_by_test_id("tab-install").click()
    page.get_by_test_id("installer-issue").click()
    expect(page.get_by_test_id("installer-serial")).not_to_be_empty()
    expect(page.get_by_test_id("commands-amd64")).to_contain_text(
        f"-edge-name={CLUSTER}")
    for testid, name in (("download-pem", f"{CLUSTER}.pem"),
                         ("download-passphrase", f"{CLUSTER}-passphrase.txt"),
                         ("download-conjurer", "conjurer")):
        with page.expect_download() as download:
            page.get_by_test_id(testid).click()
        assert download.value.suggested_filename == name
        download.value.save_as(dest / name)
    shot(page, "lab-install")


def run_conjurer(node, dest):
    node.push(dest, DEST)
    proc = node.run(["python3", f"{DEST}/conjurer", f"-edge-name={CLUSTER}",
                     f"-passphrase-file={DEST}/{CLUSTER}-passphrase.txt",
                     f"-creds-file={DEST}/{CLUSTER}.pem"], timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def approve_and_configure(page, ctl, node):
    page.get_by_test_id("tab-nodes").click()
    [row_data] = wait_for(lambda: [r for r in ctl.run_ok("node.list", f"cluster={CLUSTER}")
                                   if r["address"] == node.address] or None,
                          120, "the node's enrollment record")
    node_id = row_data["id"]
    row = page.locator(f'[data-row="{node_id}"]')
    expect(row.get_by_test_id("node-status")).to_have_text("DISCOVERED", timeout=60000)
    shot(page, "lab-nodes-discovered")
    # Before approval: the facts conjurer reported when it enrolled the node.
    row.get_by_test_id("node-link").click()
    detail = page.get_by_test_id("node-detail")
    expect(detail.get_by_test_id("facts-source")).to_contain_text("Reported by conjurer")
    expect(detail.get_by_test_id("node-facts")).to_contain_text("host0")
    expect(detail.get_by_test_id("node-facts")).to_contain_text("debian 12")
    detail.get_by_test_id("node-detail-close").click()
    row.get_by_test_id("node-approve").click()
    expect(row.get_by_test_id("node-status")).to_have_text("APPROVED")
    wait_for(lambda: ctl.run_ok("node.show", node_id).get("facts", {})
             .get("kubesalt_interfaces"), 120, "the node's probed facts")
    row.get_by_test_id("node-configure").click()
    dialog = page.get_by_test_id("configure-dialog")
    dialog.get_by_label("master", exact=True).check()
    dialog.get_by_label("Network interface").select_option("host0")
    dialog.get_by_test_id("configure-dialog-confirm").click()
    expect(dialog).to_have_count(0)
    expect(row).to_contain_text("master, worker")
    return node_id


def provision_to_ready(page, ctl, node_id):
    page.get_by_test_id("action-provision").click()
    dialog = page.get_by_test_id("provision-dialog")
    expect(dialog).to_contain_text("It can take 5-10 mins")
    dialog.get_by_test_id("provision-dialog-confirm").click()
    page.get_by_test_id("tab-operation").click()
    state = page.get_by_test_id("operation-state")
    expect(state).to_have_text("running", timeout=60000)
    shot(page, "lab-operation-running")
    # The stage list updates by itself (no reload) until the operation ends.
    expect(state).to_have_text("done", timeout=PROVISION_MS)
    table = page.get_by_test_id("stage-table")
    expect(table.locator("[data-stage=ready]")).to_contain_text("done")
    expect(page.locator(f'[data-testid=timeline] [data-node="{node_id}"]').first) \
        .to_be_visible()
    shot(page, "lab-operation-done")
    assert ctl.run_ok("cluster.status", CLUSTER)["state"] == "READY"
    page.get_by_test_id("tab-nodes").click()
    row = page.locator(f'[data-row="{node_id}"]')
    expect(row.get_by_test_id("node-status")).to_have_text("READY")
    shot(page, "lab-nodes-ready")


def viewer_sees_no_action(instance, ctl):
    page = new_page(instance)
    login(page, ctl, *VIEWER)
    page.goto(console_url(ctl, f"#/clusters/{CLUSTER}/nodes"))
    expect(page.locator("[data-row]").first.get_by_test_id("node-status")).to_have_text(
        "READY")
    for testid in ("action-provision", "action-upgrade", "action-reset", "node-approve",
                   "node-configure", "node-remove", "new-cluster"):
        expect(page.get_by_test_id(testid)).to_have_count(0)
    shot(page, "lab-viewer")
    assert forced_call(page, "cluster.provision", name=CLUSTER) == 403
    assert page.console_errors == []
    page.context.close()


def reset_only_when_enabled(page, ctl):
    page.goto(console_url(ctl, f"#/clusters/{CLUSTER}/nodes"))
    expect(page.get_by_test_id("action-provision")).to_be_visible()
    expect(page.get_by_test_id("action-reset")).to_have_count(0)
    ctl.run_ok("cluster.update", CLUSTER, "reset_enabled=True")
    page.reload()
    expect(page.get_by_test_id("action-reset")).to_be_visible()


def node_logs(ctl, node, node_id):
    tail = ctl.run_ok("node.logs", node_id)
    assert tail["node"] == node_id and tail["path"] == AGENT_LOG
    assert 0 < tail["lines"] <= 200 and tail["log"].strip()
    written = node.run(["tail", "-n", "3", AGENT_LOG]).stdout
    assert written.splitlines()[0] in tail["log"]  # what the node's file holds
    assert len(ctl.run_ok("node.logs", node_id, "lines=5")["log"].splitlines()) <= 5
    # A log far past the cap: the answer stays within 64 KiB of whole lines.
    node.run(["sh", "-c", f"for i in $(seq 4000); do echo \"padding line $i "
                          f"{'x' * 80}\"; done >> {AGENT_LOG}"])
    big = ctl.run_ok("node.logs", node_id, "lines=1000")
    assert big["truncated"] is True
    assert len(big["log"].encode()) <= 64 * 1024
    assert big["log"].startswith("padding line ") and big["log"].endswith("\n")
    code, out = ctl.run("node.logs", "node-00000000-10-77-0-99-nope")
    assert code != 0 and out["errors"][0]["field"] == "node"
    code, out = ctl.run("node.logs", node_id, "lines=100000")
    assert code != 0 and out["errors"][0]["field"] == "lines"


@pytest.fixture
def node(lab):
    """A freshly booted node, booted afresh again after the test: conjurer renamed it and
    Kubernetes runs on it, and the lab's own tests that follow expect the node as booted."""
    node = lab.nodes[0]
    lab.renew([node])
    yield node
    lab.renew([node])


def test_console_takes_a_node_from_installer_to_ready(node, ctl, tmp_path):
    with browser(ctl) as instance:
        page = new_page(instance)
        login(page, ctl, *OPERATOR)
        create_through_the_form(page, ctl)
        download_installer(page, tmp_path)
        run_conjurer(node, tmp_path)
        node_id = approve_and_configure(page, ctl, node)
        provision_to_ready(page, ctl, node_id)
        viewer_sees_no_action(instance, ctl)
        reset_only_when_enabled(page, ctl)
        assert page.console_errors == []
    node_logs(ctl, node, node_id)
