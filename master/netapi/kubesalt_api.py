"""kubesalt's REST API: salt-api's rest_cherrypy, narrowed to what kubesalt serves.

Loaded by salt-api from `netapi_dirs` (master/config.py writes the configuration under the
`kubesalt_api` key). It reuses rest_cherrypy's application (sessions, eauth login, token
handling, content negotiation, TLS) and changes this:

- only `/` (POST: run one or more runner calls), `/login` and `/logout` are mounted; the
  event stream, jobs, keys, minions, webhook, stats and websocket endpoints are not;
- every request is checked against master/openapi.yaml before Salt sees it (master/api.py):
  a malformed body is a 400 with a message instead of whatever the runner would make of it
  (rest_cherrypy answers some malformed bodies with 500, e.g. a /login body that is a JSON
  list of strings), and a role that may not call a function gets 403 rather than Salt's 401
  (which would tell a client to log in again, uselessly);
- a runner's refusal (`errors: [{field, message}]`, non-zero retcode for salt-run) is a 400;
- bodies must be application/json (415 otherwise) and the CORS tool is off, so a web page
  of another site cannot drive the API with a logged-in browser's session cookie; errors
  are JSON `{status, return: message}`.

Salt still enforces its own checks behind this: `netapi_enable_clients: [runner]` and the
`external_auth` ACLs, which name kubesalt's runner functions one by one.
"""

import html
import json
import logging

from kubesalt.master import api

try:
    import cherrypy
    import salt.auth
    import salt.netapi.rest_cherrypy.app as rest_app
    import salt.utils.minions

    _IMPORT_ERROR = None
except ImportError as exc:  # CherryPy missing: salt-api logs why and skips this module
    _IMPORT_ERROR = exc

__virtualname__ = "kubesalt_api"
log = logging.getLogger(__name__)

MOUNTED = ("index", "login", "logout")


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
    cherrypy.response.headers["Content-Type"] = "application/json"
    code = str(status).split(" ", 1)[0]
    return json.dumps({"status": int(code) if code.isdigit() else status,
                       "return": html.unescape(message)})


def _require_json():
    """Bodies must be JSON: with the session cookie rest_cherrypy also sets, a form or
    text/plain POST from another web site (no CORS preflight) would otherwise run a call."""
    kind = cherrypy.request.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    if kind != "application/json":
        raise cherrypy.HTTPError(415, "send the body as Content-Type: application/json")


def _guard_body_processors():
    """A body the content-type processor cannot read (e.g. JSON that is not UTF-8: Salt's
    processor raises UnicodeDecodeError, which rest_cherrypy answers with 500) is a 400."""
    processors = cherrypy.request.body.processors
    for kind, processor in list(processors.items()):
        processors[kind] = _guarded(processor)


def _guarded(processor):
    def process(entity):
        try:
            return processor(entity)
        except cherrypy.HTTPError:
            raise
        except (UnicodeDecodeError, ValueError, TypeError) as exc:
            raise cherrypy.HTTPError(400, f"the body cannot be read as {entity.content_type}: "
                                          f"{type(exc).__name__}") from None
    return process


def _refused(result):
    return isinstance(result, dict) and result.get("result") is False and "errors" in result


if _IMPORT_ERROR is None:
    # After rest_cherrypy's hypermedia_in (before_request_body, priority 52) has chosen the
    # processors, before CherryPy reads the body with them.
    cherrypy.tools.kubesalt_body_guard = cherrypy.Tool("before_request_body",
                                                       _guard_body_processors, priority=60)

    class KubesaltLowData(rest_app.LowDataAdapter):
        """POST /: kubesalt's runner calls, checked before they reach Salt."""

        def __init__(self):
            super().__init__()
            self._auth = None
            self._ckminions = None

        def _authorize(self, token, fun):
            """403 unless the session user's ACL allows runner function `fun` (the same check
            Salt makes, answered with the right status)."""
            if self._auth is None:
                self._auth = salt.auth.LoadAuth(self.opts)
                self._ckminions = salt.utils.minions.CkMinions(self.opts)
            data = self._auth.get_tok(token) if token else {}
            if not data:
                raise cherrypy.HTTPError(401, "the session has expired; log in again")
            auth_list = self._auth.get_auth_list({"eauth": data.get("eauth")}, data) or []
            if not self._ckminions.runner_check(auth_list, fun, {}):
                raise cherrypy.HTTPError(
                    403, f"user {data.get('name')!r} may not call {fun}")

        def _prepare(self, fun, chunk):
            chunk = dict(chunk)
            if fun == "cluster.installer":
                # Through the API, credentials go to one directory on the controller, never to
                # a path the caller picks.
                chunk["dest"] = f"{self.apiopts['installers_dir']}/{chunk['name']}"
            return chunk

        @cherrypy.tools.salt_token()
        @cherrypy.tools.salt_auth()
        def POST(self, **kwargs):
            _require_json()
            token = cherrypy.session.get("token")
            try:
                calls = api.check_chunks(cherrypy.request.lowstate)
                for fun, _ in calls:
                    self._authorize(token, fun)
                for index, (fun, chunk) in enumerate(calls):
                    api.check_arguments(fun, chunk,
                                        f"request[{index}]" if len(calls) > 1 else "request")
            except api.ApiError as exc:
                raise _http_error(exc) from None
            cherrypy.request.lowstate = [self._prepare(fun, chunk) for fun, chunk in calls]
            results = list(self.exec_lowstate(token=token))
            if any(_refused(r) for r in results):
                cherrypy.response.status = 400
            return {"return": results}

    class KubesaltLogin(rest_app.Login):
        """POST /login with the body checked first (username, password, eauth)."""

        def POST(self, **kwargs):
            _require_json()
            try:
                creds = api.check_login(cherrypy.serving.request.lowstate)
            except api.ApiError as exc:
                raise _http_error(exc) from None
            cherrypy.serving.request.lowstate = [creds]
            return super().POST(**kwargs)


def get_app(opts):
    """(root, apiopts, cherrypy config) of kubesalt's API: rest_cherrypy's application with
    only /, /login and /logout mounted."""
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
    conf.setdefault("/", {})["error_page.default"] = _json_error_page
    # rest_cherrypy's CORS tool echoes any Origin with credentials allowed, and answers
    # preflights itself: no browser page elsewhere may drive this API.
    conf["/"]["tools.cors_tool.on"] = False
    conf["/"]["tools.kubesalt_body_guard.on"] = True
    assert set(MOUNTED) <= set(vars(root))
    return root, apiopts, conf


def start():
    root, apiopts, conf = get_app(__opts__)  # noqa: F821 - injected by the loader
    cherrypy.server.ssl_module = "builtin"
    cherrypy.server.ssl_certificate = apiopts["ssl_crt"]
    cherrypy.server.ssl_private_key = apiopts["ssl_key"]
    log.info("kubesalt API listening on https://%s:%s", apiopts.get("host"), apiopts["port"])
    cherrypy.quickstart(root, "/", conf)
