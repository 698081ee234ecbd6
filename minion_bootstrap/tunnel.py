"""The node's side of the agent gateway: carries the salt-minion's connections to the
controller over one TLS port, through the site's proxy when there is one.

Salt's ZeroMQ transport cannot cross an HTTP proxy, and some sites allow one outbound port
only. So the minion talks to this tunnel on 127.0.0.1 (one local port per channel: publish,
return), and for each connection the tunnel opens a TLS connection to the controller's agent
gateway (through the proxy's CONNECT when configured), verified against the controller CA
and never the proxy's, sends one preface line naming the channel and the node, and then
relays bytes both ways. The master key stays pinned by the minion itself (master_finger), so
even a gateway impostor that got past TLS could not pose as the master.

Runs as kubesalt-tunnel.service beside kubesalt-minion.service (`python -m ... -c FILE`, the
file written by conjurer, 0600: it may hold the proxy's password). Standard library only.
"""

import argparse
import json
import logging
import re
import select
import socket
import ssl
import sys
import threading

from . import proxy_connect

PREFACE = "KUBESALT-GATEWAY/1"
CHANNELS = ("publish", "return", "https")
MAX_PREFACE = 300
_NODE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 30.0

log = logging.getLogger("kubesalt-tunnel")


def preface(channel, node_id):
    if channel not in CHANNELS or not _NODE_ID.match(node_id):
        raise ValueError("no gateway channel %r for node %r" % (channel, node_id))
    return ("%s %s %s\n" % (PREFACE, channel, node_id)).encode("ascii")


def parse_preface(line):
    """(channel, node_id) from a preface line, or ValueError."""
    fields = line.decode("ascii", "replace").strip().split(" ")
    if len(fields) != 3 or fields[0] != PREFACE or fields[1] not in CHANNELS \
            or not _NODE_ID.match(fields[2]):
        raise ValueError("not a kubesalt gateway preface: %r" % line[:60])
    return fields[1], fields[2]


def gateway_context(ca_cert_pem):
    """TLS to the gateway trusts the controller CA only: a proxy's root CA never enters."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=ca_cert_pem)
    return context


def open_channel(address, gateway_port, channel, node_id, context, proxy=None, timeout=10.0):
    """A TLS socket to the gateway at address:gateway_port, the preface sent: from here on it
    carries `channel`'s bytes."""
    raw = proxy_connect.open_connection(address, gateway_port, proxy, timeout)
    try:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        tls = context.wrap_socket(raw, server_hostname=address)
        tls.sendall(preface(channel, node_id))
        tls.settimeout(None)
        return tls
    except BaseException:
        raw.close()
        raise


def pump(a, b):
    """Relay bytes between two connected sockets until both directions end, then close both.
    One thread and select(), not a thread per direction: an SSL socket must not be read and
    written from two threads at once. A plain socket whose peer ended is half-closed and
    drained rather than closed: closing it with bytes unread resets the connection, and the
    answer still waiting on the other side of it is lost."""
    other = {a: b, b: a}
    reading = [a, b]
    try:
        while reading:
            ready = [s for s in reading if isinstance(s, ssl.SSLSocket) and s.pending()]
            if not ready:
                ready, _, _ = select.select(reading, [], [])
            for sock in ready:
                data = _recv(sock)
                if data is None:
                    continue
                peer = other[sock]
                if data:
                    peer.sendall(data)
                    continue
                reading.remove(sock)
                if isinstance(peer, ssl.SSLSocket) or peer not in reading:
                    return  # TLS cannot be half-closed: the whole relay ends
                peer.shutdown(socket.SHUT_WR)
    except (OSError, ValueError):
        return
    finally:
        for sock in (a, b):
            try:
                sock.close()
            except OSError:
                pass


def _recv(sock):
    """What `sock` has (b"" at its end), or None when a readable SSL socket held only TLS
    records with no data (a TLS 1.3 session ticket): a blocking read would then wait for data
    that may come only once the other direction has been relayed."""
    if not isinstance(sock, ssl.SSLSocket):
        return sock.recv(65536)
    sock.settimeout(0.0)
    try:
        return sock.recv(65536)
    except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
        return None
    finally:
        sock.settimeout(None)


def https_connector(address, gateway_port, node_id, ca_cert_pem, proxy=None):
    """A proxy_connect connector for conjurer's HTTPS through the gateway's https channel.
    The endpoint's own TLS runs inside the gateway's, and Python cannot wrap an SSL socket
    in another: the inner TLS gets one end of a socket pair, a thread relays the other."""
    context = gateway_context(ca_cert_pem)

    def connect(host, port, timeout):
        upstream = open_channel(address, gateway_port, "https", node_id, context, proxy,
                                timeout)
        near, far = socket.socketpair()
        threading.Thread(target=pump, args=(far, upstream), daemon=True).start()
        near.settimeout(timeout)
        return near

    return connect


class Backoff:
    """How long to wait before the next attempt after `failures` failed ones in a row."""

    def __init__(self):
        self.failures = 0

    def delay(self):
        if not self.failures:
            return 0.0
        return min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (self.failures - 1))


class Tunnel:
    """Listens on 127.0.0.1:<local port> per channel in `listen` ({channel: port}) and
    carries each connection to the gateway."""

    def __init__(self, address, gateway_port, node_id, ca_cert_pem, listen, proxy=None,
                 bind="127.0.0.1"):
        self.address = address
        self.gateway_port = int(gateway_port)
        self.node_id = node_id
        self.context = gateway_context(ca_cert_pem)
        self.proxy = proxy
        self.backoff = {channel: Backoff() for channel in listen}
        self.listeners = {}
        for channel, port in listen.items():
            preface(channel, node_id)  # refuses an unknown channel before anything listens
            sock = socket.create_server((bind, int(port)))
            self.listeners[channel] = sock
        self._stopped = threading.Event()

    @property
    def ports(self):
        return {channel: sock.getsockname()[1] for channel, sock in self.listeners.items()}

    def where(self):
        via = " through the proxy %s" % self.proxy.shown if self.proxy else ""
        return "the controller's agent gateway %s:%d%s" % (self.address, self.gateway_port, via)

    def serve_forever(self):
        threads = [threading.Thread(target=self._accept, args=(channel,), daemon=True)
                   for channel in self.listeners]
        for thread in threads:
            thread.start()
        self._stopped.wait()

    def stop(self):
        self._stopped.set()
        for sock in self.listeners.values():
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
            except OSError:
                pass
            sock.close()

    def _accept(self, channel):
        listener = self.listeners[channel]
        while not self._stopped.is_set():
            try:
                local, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=self._carry, args=(channel, local), daemon=True).start()

    def _carry(self, channel, local):
        backoff = self.backoff[channel]
        # A down gateway or proxy is not hammered: the minion's own reconnects wait here.
        if self._stopped.wait(backoff.delay()):
            local.close()
            return
        try:
            upstream = open_channel(self.address, self.gateway_port, channel, self.node_id,
                                    self.context, self.proxy)
        except (OSError, ValueError) as exc:
            backoff.failures += 1
            log.warning("%s: cannot reach %s (%s); retrying in %.1f s", channel, self.where(),
                        exc, backoff.delay())
            local.close()
            return
        if backoff.failures:
            log.info("%s: reached %s again", channel, self.where())
        backoff.failures = 0
        pump(local, upstream)


def load_config(path):
    """The tunnel's settings file as conjurer wrote it (tunnel_config)."""
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def tunnel_config(controller, node_id, ca_cert_pem, listen, proxy=None):
    """The text of the tunnel's settings file: JSON; holds the proxy URL with any password."""
    return json.dumps({
        "address": controller["address"], "gateway_port": int(controller["gateway_port"]),
        "node_id": node_id, "ca_cert_pem": ca_cert_pem, "listen": dict(listen),
        "proxy": proxy.url if proxy else None,
        "proxy_root_ca": proxy.root_ca if proxy else None,
    }, indent=2, sort_keys=True) + "\n"


def from_config(config):
    proxy = None
    if config.get("proxy"):
        proxy = proxy_connect.Proxy(config["proxy"], config.get("proxy_root_ca"))
    return Tunnel(config["address"], config["gateway_port"], config["node_id"],
                  config["ca_cert_pem"], config["listen"], proxy)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="kubesalt-tunnel", description=__doc__.split("\n")[0])
    parser.add_argument("-c", "--config", required=True, help="the tunnel's settings file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        tunnel = from_config(load_config(args.config))
    except (OSError, ValueError, KeyError) as exc:
        print("kubesalt-tunnel: cannot start: %s" % exc, file=sys.stderr)
        return 2
    log.info("carrying %s to %s", ", ".join("%s on 127.0.0.1:%d" % item
                                            for item in sorted(tunnel.ports.items())),
             tunnel.where())
    try:
        tunnel.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
