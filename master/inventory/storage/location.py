"""Which database holds a controller's records: a file in its state directory.

The file names a PostgreSQL server by URL, and that URL may carry the database password, so
the file is the controller's only copy of it: 0600 in the 0700 state directory, never in the
master's configuration (which Salt's processes read and `init` prints). Without the file the
records are in SQLite. Every other place shows the URL through `shown`.
"""

import json
import os
import urllib.parse
from pathlib import Path

FILE = "database.json"
SCHEMES = ("postgresql", "postgres")
EXAMPLE = "postgresql://USER:PASSWORD@HOST[:PORT]/DATABASE"


class BadURL(ValueError):
    """A --database value that is not a PostgreSQL URL; the message says what to give."""


def configured(state_dir):
    """The PostgreSQL URL this controller's records are in, or None (SQLite)."""
    try:
        with open(Path(state_dir) / FILE, encoding="utf-8") as handle:
            return json.load(handle)["url"]
    except FileNotFoundError:
        return None


def choose(state_dir, url):
    """Keep the records in PostgreSQL at `url` from now on (written whole or not at all)."""
    path = Path(state_dir) / FILE
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump({"url": url}, handle)
        handle.write("\n")
    os.replace(tmp, path)


def check_url(url):
    """Refuse anything but a postgresql:// URL (BadURL says what is wrong and the form)."""
    parsed = urllib.parse.urlsplit(url or "")
    if parsed.scheme not in SCHEMES:
        raise BadURL(f"{shown(url)!r} is not a PostgreSQL URL; give {EXAMPLE} (SQLite is the "
                     "default and needs no --database)")
    if not parsed.path.strip("/") and "dbname=" not in parsed.query:
        raise BadURL(f"{shown(url)} names no database; give {EXAMPLE}")
    return url


def with_password(url, secret):
    """`url` with the password `secret` in its user part: how a password read from a file (kept off
    the command line, where every user of the host sees it) joins the URL."""
    parsed = urllib.parse.urlsplit(url or "")
    if not secret:
        raise BadURL("the password file is empty; its first line is the password")
    if password(url) is not None:
        raise BadURL("the URL has a password already; give it in the URL or in the file, "
                     "not both")
    if not parsed.username:
        raise BadURL(f"{shown(url)} names no user for the password; give {EXAMPLE}")
    host = parsed.netloc.rpartition("@")[2]
    netloc = f"{parsed.username}:{urllib.parse.quote(secret, safe='')}@{host}"
    return urllib.parse.urlunsplit(parsed._replace(netloc=netloc))


def password(url):
    """The password `url` carries (in its user part or as ?password=), or None."""
    parsed = urllib.parse.urlsplit(url or "")
    if parsed.password:
        return urllib.parse.unquote(parsed.password)
    values = urllib.parse.parse_qs(parsed.query).get("password")
    return values[0] if values else None


def shown(url):
    """`url` fit to print or log: its password is ***."""
    parsed = urllib.parse.urlsplit(url or "")
    netloc = parsed.netloc
    if parsed.password is not None:
        userinfo, _, host = netloc.rpartition("@")
        netloc = f"{userinfo.partition(':')[0]}:***@{host}"
    query = "&".join("password=***" if part.startswith("password=") else part
                     for part in parsed.query.split("&")) if parsed.query else ""
    return urllib.parse.urlunsplit(parsed._replace(netloc=netloc, query=query))


def hide(text, url):
    """`text` (an error message, say) with `url`'s password, in any spelling, as ***."""
    secret = password(url)
    if not secret:
        return text
    raw = urllib.parse.urlsplit(url).password
    for spelling in {secret, raw, urllib.parse.quote(secret, safe="")} - {None, ""}:
        text = text.replace(spelling, "***")
    return text
