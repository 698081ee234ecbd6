"""kubesalt's REST API: salt-api's rest_cherrypy, narrowed to what kubesalt serves.

Loaded by salt-api from `netapi_dirs` (master/controller/config.py writes the configuration
under the `kubesalt_api` key). It reuses rest_cherrypy's application (sessions, eauth login, token
handling, content negotiation, TLS) and changes this:

- only `/` (POST: run one or more runner calls), `/login`, `/logout`, `/installer/NAME/FILE`
  (an operator downloads a cluster's installer files) and `/console/` (the web console's
  static files, master/console/) are mounted; the event stream, jobs, keys, minions,
  webhook, stats and websocket endpoints are not;
- every request is checked against master/api/openapi.yaml before Salt sees it
  (master/api/model.py):
  a malformed body is a 400 with a message instead of whatever the runner would make of it
  (rest_cherrypy answers some malformed bodies with 500, e.g. a /login body that is a JSON
  list of strings), and a role that may not call a function gets 403 rather than Salt's 401
  (which would tell a client to log in again, uselessly);
- a runner's refusal (`errors: [{field, message}]`, non-zero retcode for salt-run) is a 400;
- bodies must be application/json (415 otherwise, decided before the body is read) and the
  CORS tool is off, so a web page of another site cannot drive the API with a logged-in
  browser's session cookie; errors are JSON `{status, return: message}`;
- limits, for clients that are not logged in too: bodies up to 1 MB (413), JSON nesting up to
  32 levels (400), up to 10 calls per request (400), failed logins throttled per user name and
  per address (429 with Retry-After; master/api/model.py LoginThrottle);
- connections that say nothing hold no thread: the TLS handshake runs in a worker once the
  client has sent its hello, not in the one thread that accepts connections, and a
  connection waits for its request in cheroot's selector, not in a worker (_Server).

Salt still enforces its own checks behind this: `netapi_enable_clients: [runner]` and the
`external_auth` ACLs, which name kubesalt's runner functions one by one.
"""

import html
import json
import logging
import re
import threading
from pathlib import Path

from kubesalt.master import tree
from kubesalt.master.api import model as api

try:
    import cheroot.server
    import cheroot.ssl.builtin
    import cherrypy
    import cherrypy.lib.static
    import salt.auth
    import salt.exceptions
    import salt.netapi.rest_cherrypy.app as rest_app
    import salt.runner
    import salt.utils.minions
    from cherrypy import _cpwsgi_server

    _IMPORT_ERROR = None
except ImportError as exc:  # CherryPy missing: salt-api logs why and skips this module
    _IMPORT_ERROR = exc

__virtualname__ = "kubesalt_api"
log = logging.getLogger(__name__)

MOUNTED = ("index", "login", "logout", "installer", "console")

# The console's pages load only what the controller serves: its own scripts and styles, no
# inline script, nothing from another site, and no framing (clickjacking).
CONSOLE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; "
                               "style-src 'self'; script-src 'self'; connect-src 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    # A controller upgrade brings new files: the browser asks again (a 304 when unchanged).
    "Cache-Control": "no-cache",
}
# A cluster name (spec.check_name) and the three files cluster.installer writes.
_CLUSTER_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
INSTALLER_FILES = ("{name}.pem", "{name}-passphrase.txt", "conjurer")

# A client gets this long for its part of the TLS handshake once it has started it; until it
# starts (and between requests) it waits in the selector, closed after server.socket_timeout.
HANDSHAKE_TIMEOUT = 5

# Shared by all of CherryPy's worker threads (the throttle locks its state).
THROTTLE = api.LoginThrottle()


def __virtual__():
    mod_opts = __opts__.get(__virtualname__, {})  # noqa: F821 - injected by the loader
    if not mod_opts or "port" not in mod_opts:
        return False, "kubesalt_api is not configured"
    if _IMPORT_ERROR is not None:
        return False, f"kubesalt_api needs CherryPy: {_IMPORT_ERROR}"
    return __virtualname__


def _http_error(exc):
    return cherrypy.HTTPError(exc.status, exc.message)


def _json_error_page(status, message, traceback, version):
    """Errors as JSON {status, return: message} (CherryPy's default is an HTML page; it hands
    the message over HTML-escaped)."""
    response = cherrypy.response
    response.headers["Content-Type"] = "application/json"
    retry_after = getattr(cherrypy.request, "kubesalt_retry_after", None)
    if retry_after:
        # Here, because CherryPy drops Retry-After from a response that becomes an error.
        response.headers["Retry-After"] = str(retry_after)
    code = str(status).split(" ", 1)[0]
    return json.dumps({"status": int(code) if code.isdigit() else status,
                       "return": html.unescape(message)})


def _require_json():
    """Bodies must be JSON: with the session cookie rest_cherrypy also sets, a form or
    text/plain POST from another web site (no CORS preflight) would otherwise run a call."""
    kind = cherrypy.request.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    if kind != "application/json":
        raise cherrypy.HTTPError(415, "send the body as Content-Type: application/json")


def _guard_body():
    """Decide on the body before CherryPy reads it.

    rest_cherrypy's hypermedia_in (just before this) installs processors for forms, YAML and
    text, and a 406 for any other type: a body without Content-Type or a multipart one got 406
    before the handlers' own 415 check could run. Here only JSON is read, anything else is a
    415 before a byte of it is read, and JSON goes through api.parse_json (UTF-8, nesting)."""
    request = cherrypy.request
    if "chunked" in request.headers.get("Transfer-Encoding", "").lower() \
            and request.method == "POST":
        # hypermedia_in only reads bodies with a Content-Length; a chunked one is read too
        # (request.body.maxbytes bounds it), or the call would run without its arguments.
        request.process_request_body = True
    if request.process_request_body:
        _require_json()
    request.body.processors = {"application/json": _read_json}
    request.body.default_proc = cherrypy.HTTPError(
        415, "send the body as Content-Type: application/json")


def _read_json(entity):
    try:
        raw = entity.fp.read()  # past request.body.maxbytes: 413
    except OSError as exc:
        # cheroot's chunked reader refuses a chunk that would pass server.max_request_body_size
        # with a bare OSError (not the MaxSizeExceeded CherryPy turns into 413).
        if exc.args[:1] == ("Request Entity Too Large",):
            raise cherrypy.HTTPError(413, f"the body is larger than {api.MAX_BODY_BYTES} "
                                          "bytes") from None
        raise
    try:
        cherrypy.serving.request.unserialized_data = api.parse_json(raw)
    except api.ApiError as exc:
        raise _http_error(exc) from None


def _refused(result):
    return isinstance(result, dict) and result.get("result") is False and "errors" in result


if _IMPORT_ERROR is None:
    # After rest_cherrypy's salt_auth (before_request_body, priority 51: no body is read for a
    # client without a session) and hypermedia_in (52), before CherryPy reads the body.
    cherrypy.tools.kubesalt_body_guard = cherrypy.Tool("before_request_body", _guard_body,
                                                       priority=60)

    class _DeferredHandshake(cheroot.ssl.builtin.BuiltinSSLAdapter):
        """cheroot's builtin adapter does the TLS handshake in wrap(), which runs in the
        single thread that accepts connections, with the socket timeout (10 s): each client
        that connected and said nothing stopped all accepting for that long. Here wrap() only
        wraps; _Connection does the handshake in a worker once the client has sent data."""

        def wrap(self, sock):
            return self.context.wrap_socket(sock, do_handshake_on_connect=False,
                                            server_side=True), {}

    class _Connection(cheroot.server.HTTPConnection):
        fresh = True  # not yet seen by a worker (_Server.process_conn)
        handshaken = False

        def communicate(self):
            if not self.handshaken:
                if not self._handshake():
                    return False
                self.handshaken = True
                if not self.socket.pending():
                    # Back to the selector until the request arrives: a client that does the
                    # handshake and then says nothing must not hold this worker.
                    return True
            return super().communicate()

        def _handshake(self):
            try:
                self.socket.settimeout(HANDSHAKE_TIMEOUT)
                self.socket.do_handshake()
                self.socket.settimeout(self.server.timeout)
                self.ssl_env = self.server.ssl_adapter.get_environ(self.socket)
            except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
                log.debug("TLS handshake with %s failed: %s", self.remote_addr, exc)
                return False
            return True

    class _Server(_cpwsgi_server.CPWSGIServer):
        """CherryPy's server, where a new connection waits in cheroot's selector (like one
        kept alive between requests) until the client sends something, instead of going
        straight to a worker thread that would wait for it there (up to socket_timeout): idle
        connections cost a file descriptor, not a thread."""

        ConnectionClass = _Connection

        def __init__(self, server_adapter):
            super().__init__(server_adapter)
            self.ssl_adapter = _DeferredHandshake(
                server_adapter.ssl_certificate, server_adapter.ssl_private_key,
                server_adapter.ssl_certificate_chain, server_adapter.ssl_ciphers)

        def process_conn(self, conn):
            if conn.fresh:
                conn.fresh = False
                self._connections.put(conn)  # to a worker once it is readable
                return
            super().process_conn(conn)

    class _Authorizer:
        """Whether a session's user may call a runner function: the check Salt makes, answered
        with the right status."""

        def __init__(self):
            self._auth = None
            self._ckminions = None

        def __call__(self, opts, token, fun):
            """401 for a token Salt does not hold, 403 unless the user's ACL allows runner
            function `fun`."""
            if self._auth is None:
                self._auth = salt.auth.LoadAuth(opts)
                self._ckminions = salt.utils.minions.CkMinions(opts)
            data = self._auth.get_tok(token) if token else {}
            if not data:
                raise cherrypy.HTTPError(401, "the session has expired; log in again")
            auth_list = self._auth.get_auth_list({"eauth": data.get("eauth")}, data) or []
            if not self._ckminions.runner_check(auth_list, fun, {}):
                raise cherrypy.HTTPError(
                    403, f"user {data.get('name')!r} may not call {fun}")
            return data

    _authorize = _Authorizer()

    class _ReadsInProcess:
        """Read-only runners (api.READS) run in this process, once _authorize has made Salt's
        own ACL check, each on a Salt RunnerClient of a small pool: a client's loader gives
        its modules one set of globals (the job's id and events), so two threads never use
        one client at once, and a warm client is reused rather than loaded again (its first
        call loads the runner modules, about 0.7 s).

        Through the master each runner call costs a new process and its module loading,
        about 0.6 s here, whatever the runner does: too slow for a console page that makes
        several (issue 14). Each call still gets a job id and its new/ret events under the
        caller's user name, but no job cache entry (`runnerclient_returns: False`): storing
        one makes Salt match the job's target against every key it holds, 0.65 s with 1,000
        nodes, for a record of a read that changed nothing. Calls that change something go
        through the master (exec_lowstate), where Salt checks the token again itself and
        keeps the job."""

        def __init__(self):
            self._idle = []
            self._lock = threading.Lock()

        def __call__(self, opts, user, chunk):
            with self._lock:
                client = self._idle.pop() if self._idle else None
            if client is None:
                client = salt.runner.RunnerClient(dict(opts, runnerclient_returns=False))
            try:
                low = {"fun": chunk["fun"], "arg": [], "__user__": user,
                       "kwarg": {k: v for k, v in chunk.items() if k not in api.ENVELOPE}}
                result = client.low(chunk["fun"], low, print_event=False)
            finally:
                with self._lock:
                    self._idle.append(client)
            if isinstance(result, str) and "Traceback" in result:
                # RunnerClient.low answers an exception the verb did not catch (a module
                # that failed to load) with its traceback: that goes to the log only.
                log.error("%s failed in salt-api: %s", chunk["fun"], result)
                return {"result": False, "retcode": 1, "errors": [{
                    "field": "controller",
                    "message": f"{chunk['fun']} failed; see the salt-api log"}]}
            return result

    _read_in_process = _ReadsInProcess()

    def _console_headers():
        cherrypy.response.headers.update(CONSOLE_HEADERS)

    cherrypy.tools.kubesalt_console_headers = cherrypy.Tool("before_finalize",
                                                            _console_headers)

    class KubesaltConsole:
        """/console: the web console's files come from the staticdir tool (configured in
        get_app); this answers what it does not serve."""

        exposed = True

        def GET(self, *vpath):
            if not vpath and not cherrypy.request.path_info.endswith("/"):
                raise cherrypy.HTTPRedirect("/console/")  # relative links need the slash
            raise cherrypy.HTTPError(404, "no such file in the console")

    class KubesaltInstaller:
        """GET /installer/NAME/FILE: the installer files `cluster.installer` last wrote for a
        cluster through the API, to an operator's browser. The token must come as the
        X-Auth-Token header (a session cookie alone does not do: a link on another site
        cannot start a download of the credentials)."""

        exposed = True
        _cp_config = {
            "tools.salt_token.on": True,
            "tools.sessions.on": True,
            "tools.sessions.storage_class": rest_app._NoEmptyRamSession,
            "tools.sessions.timeout": 60 * 10,
            "tools.salt_ip_verify.on": True,
        }

        def GET(self, *vpath):
            if not cherrypy.request.headers.get("X-Auth-Token"):
                raise cherrypy.HTTPError(401, "send the session token as X-Auth-Token")
            opts = cherrypy.config["saltopts"]
            _authorize(opts, cherrypy.session.get("token"), "cluster.installer")
            path = installer_file(cherrypy.config["apiopts"]["installers_dir"], vpath)
            cherrypy.response.headers["Cache-Control"] = "no-store"
            return cherrypy.lib.static.serve_file(
                str(path), content_type="application/octet-stream",
                disposition="attachment", name=path.name)

    class KubesaltLowData(rest_app.LowDataAdapter):
        """POST /: kubesalt's runner calls, checked before they reach Salt."""

        def _authorize(self, token, fun):
            return _authorize(self.opts, token, fun)

        def _prepare(self, fun, chunk):
            chunk = dict(chunk)
            if fun == "cluster.installer":
                # Through the API, credentials go to one directory on the controller, never to
                # a path the caller picks.
                chunk["dest"] = f"{self.apiopts['installers_dir']}/{chunk['name']}"
            return chunk

        @cherrypy.config(**{"tools.sessions.on": False})
        def GET(self):
            """What `kubesalt-controller start/status` ask to see that the API answers;
            rest_cherrypy's GET / lists every Salt client, served or not. A browser is sent
            to the console."""
            if "text/html" in cherrypy.request.headers.get("Accept", ""):
                raise cherrypy.HTTPRedirect("/console/")
            return {"return": "Welcome", "clients": ["runner"]}

        @cherrypy.tools.salt_token()
        @cherrypy.tools.salt_auth()
        def POST(self, **kwargs):
            _require_json()
            token = cherrypy.session.get("token")
            try:
                calls = api.check_chunks(cherrypy.request.lowstate)
                users = [self._authorize(token, fun).get("name") for fun, _ in calls]
            except api.ApiError as exc:
                raise _http_error(exc) from None
            try:
                for index, (fun, chunk) in enumerate(calls):
                    api.check_arguments(fun, chunk,
                                        f"request[{index}]" if len(calls) > 1 else "request")
            except api.ApiError as exc:
                # An argument the description refuses is answered like a runner's own
                # refusal (errors: [{field, message}]): one shape, whichever check refused.
                cherrypy.response.status = 400
                return {"return": [exc.as_refusal()]}
            chunks = [self._prepare(fun, chunk) for fun, chunk in calls]
            through_master = [c for (fun, _), c in zip(calls, chunks, strict=True)
                              if fun not in api.READS]
            cherrypy.request.lowstate = through_master
            from_master = iter(list(self.exec_lowstate(token=token)) if through_master
                               else [])
            results = [_read_in_process(self.opts, user, chunk) if fun in api.READS
                       else next(from_master)
                       for (fun, _), chunk, user in zip(calls, chunks, users, strict=True)]
            if any(_refused(r) for r in results):
                cherrypy.response.status = 400
            return {"return": results}

    _AUTH_ERRORS = (salt.exceptions.AuthenticationError, salt.exceptions.AuthorizationError,
                    salt.exceptions.EauthAuthenticationError,
                    salt.exceptions.TokenAuthenticationError)

    class KubesaltLogin(rest_app.Login):
        """POST /login with the body checked first (username, password, eauth), and failed
        logins throttled (THROTTLE): a refused attempt is answered 429 without checking the
        password."""

        def POST(self, **kwargs):
            _require_json()
            try:
                creds = api.check_login(cherrypy.serving.request.lowstate)
            except api.ApiError as exc:
                raise _http_error(exc) from None
            cherrypy.serving.request.lowstate = [creds]
            user, address = creds["username"], cherrypy.request.remote.ip
            wait = THROTTLE.admit(user, address)
            if wait:
                log.warning("API login of %r from %s refused for %ss: too many failed logins",
                            user, address, wait)
                cherrypy.request.kubesalt_retry_after = wait
                raise cherrypy.HTTPError(
                    429, f"too many failed logins; try again in {wait} seconds")
            failed = None
            try:
                result = super().POST(**kwargs)
                failed = False
                return result
            except cherrypy.HTTPError as exc:
                failed = exc.status == 401
                raise
            except _AUTH_ERRORS:  # rest_cherrypy's handler answers these with 401
                failed = True
                raise
            finally:
                if failed:
                    count = THROTTLE.failed(user, address)
                    log.warning("API: failed login of %r from %s (failure %d of this name "
                                "in the window)", user, address, count)
                elif failed is False:
                    THROTTLE.succeeded(user, address)
                else:
                    THROTTLE.abandoned(user, address)


def installer_file(installers_dir, vpath):
    """The path of installer file vpath = (cluster, file name) under `installers_dir`;
    HTTPError 404 for anything else (another name, a path, a file not written yet)."""
    if len(vpath) != 2 or not _CLUSTER_NAME.match(vpath[0]) \
            or vpath[1] not in [f.format(name=vpath[0]) for f in INSTALLER_FILES]:
        raise cherrypy.HTTPError(404, "no such installer file; the files are NAME.pem, "
                                      "NAME-passphrase.txt and conjurer")
    path = Path(installers_dir) / vpath[0] / vpath[1]
    if not path.is_file():
        raise cherrypy.HTTPError(404, f"no installer files for {vpath[0]} yet; issue them with "
                                      "cluster.installer first")
    return path


def get_app(opts):
    """(root, apiopts, cherrypy config) of kubesalt's API: rest_cherrypy's application with
    only /, /login, /logout, /installer and /console mounted."""
    apiopts = dict(opts.get(__virtualname__, {}))
    apiopts["debug"] = False  # never tracebacks in answers
    opts = dict(opts, rest_cherrypy=apiopts)
    root, apiopts, conf = rest_app.get_app(opts)
    for name in list(vars(root)):
        if name in rest_app.API.url_map or name in ("ws", "hook", "app"):
            delattr(root, name)
    root.index = KubesaltLowData()
    root.login = KubesaltLogin()
    root.logout = rest_app.Logout()
    root.installer = KubesaltInstaller()
    root.console = KubesaltConsole()
    conf["/console"] = {
        "tools.staticdir.on": True,
        "tools.staticdir.dir": str(tree.console_dir()),
        "tools.staticdir.index": "index.html",
        "tools.kubesalt_console_headers.on": True,
    }
    conf.setdefault("/", {})["error_page.default"] = _json_error_page
    # rest_cherrypy's CORS tool echoes any Origin with credentials allowed, and answers
    # preflights itself: no browser page elsewhere may drive this API.
    conf["/"]["tools.cors_tool.on"] = False
    conf["/"]["tools.kubesalt_body_guard.on"] = True
    # rest_cherrypy's `max_request_body_size` key is in no CherryPy namespace, so the limit
    # was CherryPy's default of 100 MB. The HTTP server refuses a larger Content-Length before
    # reading the body; the request body's maxbytes stops a chunked body while it is read.
    conf["global"]["server.max_request_body_size"] = api.MAX_BODY_BYTES
    conf["/"]["request.body.maxbytes"] = api.MAX_BODY_BYTES
    assert set(MOUNTED) <= set(vars(root))
    return root, apiopts, conf


def start():
    root, apiopts, conf = get_app(__opts__)  # noqa: F821 - injected by the loader
    cherrypy.server.ssl_module = "builtin"
    cherrypy.server.ssl_certificate = apiopts["ssl_crt"]
    cherrypy.server.ssl_private_key = apiopts["ssl_key"]
    # The server is built from cherrypy.server's settings, so they are applied first
    # (quickstart applies them again, unchanged).
    cherrypy.config.update(conf["global"])
    cherrypy.server.httpserver = _Server(cherrypy.server)
    log.info("kubesalt API listening on https://%s:%s", apiopts.get("host"), apiopts["port"])
    cherrypy.quickstart(root, "/", conf)
