"""Shared Playwright helpers for the web console's browser tests (tests/console) and the lab
tests that drive the console: Debian's chromium (Playwright's own browser download is not
used), the API's TLS certificate pinned by its public key rather than every HTTPS error
ignored, login, and screenshots.

    with launch(ctl) as page:
        login(page, ctl, "olga", "op-Secret-4711")
        shot(page, "clusters")
"""

import base64
import contextlib
import hashlib
import os
import re
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from playwright.sync_api import expect, sync_playwright

CHROMIUM = os.environ.get("KUBESALT_CHROMIUM", "/usr/bin/chromium")
VIEWPORT = {"width": 1366, "height": 768}
# Playwright's auto-waiting limit for one expectation or action, in milliseconds: a first
# login on a freshly started controller alone can take several seconds on two cores.
TIMEOUT_MS = 20000
expect.set_options(timeout=TIMEOUT_MS)


def api_cert(ctl):
    return Path(ctl.root) / "var" / "lib" / "kubesalt" / "pki" / "api.crt"


def spki_pin(cert_path):
    """base64(sha256(SubjectPublicKeyInfo)) of a PEM certificate: what chromium's
    --ignore-certificate-errors-spki-list takes."""
    cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def console_url(ctl, route=""):
    """The console's address on the controller, with a hash route such as "#/clusters"."""
    return f"{ctl.api_url}/console/{route}"


@contextlib.contextmanager
def browser(ctl, headless=True):
    """Debian's chromium trusting exactly the controller's API certificate."""
    with sync_playwright() as p:
        # Playwright gives chromium its own --user-data-dir, which the SPKI list requires.
        instance = p.chromium.launch(
            executable_path=CHROMIUM, headless=headless,
            args=[f"--ignore-certificate-errors-spki-list={spki_pin(api_cert(ctl))}",
                  "--no-proxy-server"])
        try:
            yield instance
        finally:
            instance.close()


def new_page(instance):
    """A page in a fresh context (its own sessionStorage), laptop-sized, downloads on."""
    context = instance.new_context(viewport=VIEWPORT, accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.console_errors = []
    # A refused call (400, 401, 403) is part of the flows tested; chromium logs each as
    # "Failed to load resource". Anything else logged as an error is a fault of the page.
    page.on("console", lambda msg: msg.type == "error"
            and not msg.text.startswith("Failed to load resource")
            and page.console_errors.append(msg.text))
    page.on("pageerror", lambda exc: page.console_errors.append(str(exc)))
    return page


@contextlib.contextmanager
def launch(ctl, headless=True):
    """One logged-out page on the console of controller `ctl`."""
    with browser(ctl, headless=headless) as instance:
        page = new_page(instance)
        page.goto(console_url(ctl, "#/login"))
        yield page


def login(page, ctl, user, password, eauth="file"):
    """Log in through the login form and wait for the clusters page."""
    if "/console/" not in page.url:
        page.goto(console_url(ctl, "#/login"))
    elif not page.url.endswith("#/login"):
        page.goto(console_url(ctl, "#/login"))
    try:
        expect(page.get_by_test_id("login-user")).to_be_visible()
    except AssertionError:
        shot(page, "login-form-missing")
        raise AssertionError(f"no login form at {page.url}; the page holds: "
                             f"{page.content()[:3000]}; browser errors: "
                             f"{page.console_errors}") from None
    page.get_by_test_id("login-user").fill(user)
    page.get_by_test_id("login-password").fill(password)
    page.get_by_test_id("login-eauth").select_option(eauth)
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_role("heading", name="Clusters", exact=True)).to_be_visible()
    expect(page.get_by_test_id("whoami")).to_contain_text(user)


def token(page):
    """The session token the console holds (sessionStorage)."""
    return page.evaluate("JSON.parse(sessionStorage.getItem('kubesalt.session')).token")


def forced_call(page, fun, **kwargs):
    """The HTTP status of runner call `fun` made from the page with its session token, as a
    user could force it from the browser's console whatever buttons the page shows."""
    return page.evaluate("""async ([tok, body]) => (await fetch('/', {method: 'POST',
        credentials: 'omit', headers: {'Content-Type': 'application/json',
        'X-Auth-Token': tok}, body: JSON.stringify(body)})).status""",
                         [token(page), {"client": "runner", "fun": fun, **kwargs}])


def shots_dir():
    path = Path(os.environ.get("KUBESALT_SHOTS") or
                Path(tempfile.gettempdir()) / "kubesalt-console-shots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def shot(page, name, full_page=True):
    """A PNG of the page as it is now, as KUBESALT_SHOTS/NAME.png (or a tmp directory)."""
    path = shots_dir() / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path
