"""Reaching the controller through a site's HTTP proxy: HTTP CONNECT, standard library only.

Every connection conjurer (and the agent's tunnel) makes to the controller goes through
`open_connection`: direct when no proxy applies, else a CONNECT tunnel through the proxy, over
TLS when the proxy URL is https://. The proxy's root CA is trusted for the proxy's own TLS and
nothing else: what runs inside the tunnel is verified against the controller CA by the caller,
so a proxy that intercepts TLS cannot pass itself off as the controller.

A proxy URL may hold a user and password (basic auth). They are secrets: every text made here
shows the URL through `redact`, and `Proxy` has no repr that includes them.
"""

import base64
import functools
import http.client
import ipaddress
import socket
import ssl
import urllib.parse
import urllib.request

# `-proxy direct`: reach the controller without the cluster's proxy, for this node.
DIRECT = "direct"
# A CONNECT answer's status line and headers; anything longer is not a proxy talking.
_MAX_ANSWER = 16384
_SINGLE_PORT_HINT = ("or use the single-port option (the controller's agent gateway: "
                     "kubesalt-controller init --gateway-port 443, then conjurer -gateway)")


class ProxyError(OSError):
    """The proxy would not carry a connection: `message` says what it did, `fix` what to do."""

    def __init__(self, message, fix):
        super().__init__("%s; %s" % (message, fix))
        self.message = message
        self.fix = fix


def redact(url):
    """The URL fit to print: a user and password become ***."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]))


class Proxy:
    """One proxy, parsed from its URL (http://[user:pass@]host:port or https://...)."""

    def __init__(self, url, root_ca=None, where="the proxy URL"):
        parts = urllib.parse.urlsplit(url)
        shown = redact(url)
        try:
            port = parts.port
        except ValueError:
            port = -1
        if parts.scheme not in ("http", "https") or not parts.hostname or port == -1 \
                or parts.path not in ("", "/"):
            raise ValueError("%s %r is not a proxy URL; give http://[user:password@]host:port "
                             "or https://..., or %s to go without one" % (where, shown, DIRECT))
        self.url = url
        self.shown = shown
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = port or (443 if self.tls else 80)
        self.root_ca = root_ca or None
        self._auth = None
        if parts.username is not None:
            user = urllib.parse.unquote(parts.username)
            password = urllib.parse.unquote(parts.password or "")
            self._auth = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()

    def __repr__(self):
        return "<Proxy %s>" % self.shown

    @property
    def has_credentials(self):
        return self._auth is not None

    def connect_request(self, host, port):
        target = "%s:%d" % ("[%s]" % host if ":" in host else host, int(port))
        lines = ["CONNECT %s HTTP/1.1" % target, "Host: %s" % target]
        if self._auth:
            lines.append("Proxy-Authorization: Basic " + self._auth)
        return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def _entry_matches(entry, host, address):
    if entry == "*":
        return True
    if "/" in entry:
        try:
            return address is not None and address in ipaddress.ip_network(entry, strict=False)
        except ValueError:
            return False
    entry = entry.strip("[]").lower()
    if address is not None:
        try:
            return address == ipaddress.ip_address(entry)
        except ValueError:
            return False
    # "example.com" and ".example.com" both cover example.com and every name below it.
    domain = entry.lstrip("*").lstrip(".")
    return host == domain or host.endswith("." + domain)


def bypassed(no_proxy, host):
    """Whether `host` is reached directly under `no_proxy` (comma-separated hosts, domains with
    or without a leading dot, addresses, CIDRs, or *)."""
    host = host.strip("[]").lower().rstrip(".")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    entries = [e.strip() for e in (no_proxy or "").split(",") if e.strip()]
    return any(_entry_matches(e, host, address) for e in entries)


def choose(settings, override, host):
    """The Proxy to reach `host` (the controller) through, or None for direct.

    `settings` are the cluster's (http, https, no_proxy, root_ca; None when it has none);
    `override` is conjurer's -proxy for this node: a URL, DIRECT, or None to keep the
    cluster's. The controller speaks TLS, so its proxy is the https one, else the http one."""
    settings = settings or {}
    if override == DIRECT:
        return None
    if override:
        return Proxy(override, settings.get("root_ca"), where="-proxy")
    url = settings.get("https") or settings.get("http")
    if not url or bypassed(settings.get("no_proxy"), host):
        return None
    return Proxy(url, settings.get("root_ca"), where="the cluster's proxy setting")


def _proxy_context(proxy):
    context = ssl.create_default_context()
    if proxy.root_ca:
        context = ssl.create_default_context(cadata=proxy.root_ca)
    return context


def _read_answer(sock, proxy):
    data = b""
    while b"\r\n\r\n" not in data:
        # One byte at a time: whatever follows the answer belongs to the tunnelled stream.
        chunk = sock.recv(1)
        if not chunk:
            raise ProxyError("the proxy %s closed the connection instead of answering CONNECT"
                             % proxy.shown, "check that %s:%d is an HTTP proxy"
                             % (proxy.host, proxy.port))
        data += chunk
        if len(data) > _MAX_ANSWER:
            break
    status_line = data.split(b"\r\n", 1)[0].decode("latin-1")
    fields = status_line.split(" ", 2)
    if len(fields) < 2 or not fields[0].startswith("HTTP/") or not fields[1].isdigit():
        raise ProxyError("the proxy %s answered CONNECT with %r, which is not HTTP"
                         % (proxy.shown, status_line[:80]),
                         "check that %s:%d is an HTTP proxy (not the controller or another "
                         "service)" % (proxy.host, proxy.port))
    return int(fields[1]), (fields[2] if len(fields) > 2 else "").strip()


def refusal(proxy, host, port, status, reason):
    """The ProxyError for a CONNECT answered `status`, in the site's words."""
    target = "%s:%s" % (host, port)
    answered = "HTTP %d %s" % (status, reason) if reason else "HTTP %d" % status
    # 407 is the standard answer; tinyproxy says 401 to a wrong user or password.
    if status in (401, 407):
        if proxy.has_credentials:
            return ProxyError("the proxy %s refuses the user and password given (%s)"
                              % (proxy.shown, answered),
                              "check them with the proxy's administrator and give -proxy "
                              "http://user:password@%s:%d" % (proxy.host, proxy.port))
        return ProxyError("the proxy %s asks for credentials (%s)" % (proxy.shown, answered),
                          "give -proxy http://user:password@%s:%d (or set them in the "
                          "cluster's proxy setting)" % (proxy.host, proxy.port))
    if status in (500, 502, 503, 504):
        return ProxyError("the proxy %s could not reach the controller at %s (%s)"
                          % (proxy.shown, target, answered),
                          "check that the proxy may connect to %s, and that the controller "
                          "runs (kubesalt-controller status)" % target)
    return ProxyError("the proxy %s refuses CONNECT to %s (%s)" % (proxy.shown, target, answered),
                      "allow it on the proxy (tinyproxy ConnectPort %s / squid SSL_ports and "
                      "http_access for %s), %s" % (port, host, _SINGLE_PORT_HINT))


def _reach_proxy(proxy, timeout):
    try:
        sock = socket.create_connection((proxy.host, proxy.port), timeout=timeout)
    except socket.gaierror as exc:
        raise ProxyError("the proxy's name %s does not resolve (%s)"
                         % (proxy.host, exc.strerror or exc),
                         "fix DNS or /etc/hosts on this node, or give -proxy with the proxy's "
                         "address") from None
    except (socket.timeout, TimeoutError):
        raise ProxyError("no answer from the proxy %s within %g s" % (proxy.shown, timeout),
                         "check that this node may reach %s:%d" % (proxy.host, proxy.port)) \
            from None
    except OSError as exc:
        raise ProxyError("cannot reach the proxy %s (%s)"
                         % (proxy.shown, exc.strerror or exc.__class__.__name__),
                         "check the proxy's address (-proxy, or the cluster's proxy setting) "
                         "and that it runs and this node may reach %s:%d"
                         % (proxy.host, proxy.port)) from None
    if not proxy.tls:
        return sock
    try:
        return _proxy_context(proxy).wrap_socket(sock, server_hostname=proxy.host)
    except ssl.SSLError as exc:
        sock.close()
        raise ProxyError("the TLS handshake with the proxy %s failed (%s)"
                         % (proxy.shown, getattr(exc, "verify_message", None) or exc.reason
                            or exc),
                         "give the proxy's root CA as the cluster's proxy root_ca, or use its "
                         "http:// URL") from None


def open_connection(host, port, proxy=None, timeout=10.0):
    """A socket connected to host:port, through `proxy`'s CONNECT when one is given."""
    if proxy is None:
        return socket.create_connection((host, int(port)), timeout=timeout)
    sock = _reach_proxy(proxy, timeout)
    try:
        sock.sendall(proxy.connect_request(host, port))
        status, reason = _read_answer(sock, proxy)
    except (socket.timeout, TimeoutError):
        sock.close()
        raise ProxyError("the proxy %s did not answer CONNECT to %s:%s within %g s"
                         % (proxy.shown, host, port, timeout),
                         "check that %s:%d is an HTTP proxy" % (proxy.host, proxy.port)) \
            from None
    except ProxyError:
        sock.close()
        raise
    except OSError as exc:
        sock.close()
        raise ProxyError("the proxy %s dropped the connection (%s)"
                         % (proxy.shown, exc.strerror or exc.__class__.__name__),
                         "check that %s:%d is an HTTP proxy" % (proxy.host, proxy.port)) \
            from None
    if not 200 <= status < 300:
        sock.close()
        raise refusal(proxy, host, port, status, reason)
    return sock


def connector(proxy=None):
    """connect(host, port, timeout) -> socket, through `proxy` (None: direct)."""
    return functools.partial(_connect_via, proxy)


def _connect_via(proxy, host, port, timeout):
    return open_connection(host, port, proxy, timeout)


class HTTPSConnection(http.client.HTTPSConnection):
    """http.client's HTTPS connection whose socket comes from `connect_with` (a connector:
    direct, through a proxy, or through the agent gateway); TLS is then set up on it as
    usual, with the caller's context and the controller's name."""

    def __init__(self, host, port=None, *, connect_with=None, **kwargs):
        super().__init__(host, port, **kwargs)
        self.connect_with = connect_with or connector()

    def connect(self):
        sock = self.connect_with(self.host, self.port, self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, context, connect_with):
        super().__init__(context=context)
        self._connect_with = connect_with

    def https_open(self, req):
        return self.do_open(functools.partial(HTTPSConnection, connect_with=self._connect_with),
                            req, context=self._context)


def opener(context, connect_with=None):
    """A urllib opener for https:// URLs over `connect_with` (a connector; None: direct). The
    environment's https_proxy is not read: the credentials and -proxy say how to reach the
    controller."""
    return urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                       _HTTPSHandler(context, connect_with))
