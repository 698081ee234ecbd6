"""How a kubesalt runner's arguments are checked before the runner sees them.

salt-run and the REST API hand runners their arguments in different shapes: salt-run
YAML-parses every `key=value` (so `1.30` arrives as the float 1.3 and `maybe` as a string),
calls a function whose signature does not fit with a "Passed invalid arguments" text and exit
code 0, and the API sends JSON values. Binding every call here against the runner's own
signature gives both front doors one set of rules: unknown keywords and missing arguments are
field errors, a parameter whose default is a bool takes only a boolean, one whose default is a
number only a number in its range, versions keep the text the operator typed, and every other
named parameter takes one line of text.
"""

import inspect
import math

from kubesalt.master.errors import Refused

# Parameters that hold versions: "1.30" must never become 1.3.
VERSION_PARAMETERS = frozenset({"version", "k8s_version", "blueprint_version"})
# Parameters that count things (node.logs lines=200, node.list limit=50): whole numbers of at
# least 1, never "seconds"; and positions (node.list offset=100): whole numbers from 0.
COUNT_PARAMETERS = frozenset({"lines", "limit"})
POSITION_PARAMETERS = frozenset({"offset"})
TRUE = ("true", "yes", "1")
FALSE = ("false", "no", "0")
MAX_TEXT = 1024
# Waiting longer than a day is never what an operator meant.
MAX_TIMEOUT = 86400


def as_bool(field, value):
    """True/False from a bool or its spelling; anything else is a field error."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in TRUE + FALSE:
        return value.strip().lower() in TRUE
    raise Refused.one(field, f"{_shown(value)} is not a boolean; use True or False")


def as_seconds(field, value):
    if isinstance(value, bool):
        raise Refused.one(field, f"{value!r} is not a number of seconds")
    try:
        seconds = float(str(value).strip())
    except ValueError:
        raise Refused.one(field, f"{_shown(value)} is not a number of seconds") from None
    if not math.isfinite(seconds) or not 0 < seconds <= MAX_TIMEOUT:
        raise Refused.one(field, f"{_shown(value)} is out of range; use 1 to {MAX_TIMEOUT} "
                                 "seconds")
    return seconds


def as_count(field, value, least=1):
    """A whole number of at least `least` from an int or its spelling; the caller bounds it."""
    if isinstance(value, bool):
        raise Refused.one(field, f"{value!r} is not a whole number")
    try:
        count = int(str(value).strip())
    except ValueError:
        raise Refused.one(field, f"{_shown(value)} is not a whole number") from None
    if count < least:
        raise Refused.one(field, f"{count} is too small; give at least {least}")
    return count


def as_text(field, value, raw=None):
    """One line of text. Numbers are taken as the operator typed them (`raw`, from salt-run's
    command line) or as Python prints them; mappings and lists are refused."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise Refused.one(field, f"{_shown(value)} is not a text value")
    text = raw if raw is not None and not isinstance(value, str) else str(value)
    if len(text) > MAX_TEXT or "\x00" in text or "\n" in text:
        raise Refused.one(field, f"must be one line of at most {MAX_TEXT} characters")
    return text


def _shown(value):
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def raw_arguments(opts, fun):
    """The command-line words salt-run got for `fun`, before its YAML parsing:
    ([positional words], {keyword: word}), or None when the call did not come from salt-run's
    command line (the REST API, an orchestration)."""
    if opts.get("fun") != fun or not isinstance(opts.get("arg"), list):
        return None
    positional, keywords = [], {}
    for word in map(str, opts["arg"]):
        key, sep, value = word.partition("=")
        if sep and key.isidentifier():
            keywords[key] = value
        else:
            positional.append(word)
    return positional, keywords


def bind(func, fun_name, args, kwargs, raw=None):
    """(args, kwargs) to call `func` with, checked and coerced; Refused with every problem.

    `kwargs` must already be free of Salt's own `__pub_*` keys. A runner that takes **options
    gets the keywords its signature does not name as they are: it validates them itself
    (cluster.create refuses unknown options with the list of valid ones)."""
    signature = inspect.signature(func)
    params = [p for p in signature.parameters.values()
              if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    takes_options = any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values())
    raw_positional, raw_keywords = raw or ([], {})
    errors = []
    values, raw_words = {}, {}
    positional_params = [p for p in params if p.kind == p.POSITIONAL_OR_KEYWORD]
    if len(args) > len(positional_params):
        extra = ", ".join(_shown(a) for a in args[len(positional_params):])
        errors.append({"field": "arguments",
                       "message": f"{fun_name} takes {_usage(fun_name, params)}; "
                                  f"unexpected {extra}"})
    for index, (param, value) in enumerate(zip(positional_params, args, strict=False)):
        values[param.name] = value
        if index < len(raw_positional):
            raw_words[param.name] = raw_positional[index]
    options = {}
    named = {p.name for p in params}
    for key, value in kwargs.items():
        if key in named:
            if key in values:
                errors.append({"field": key, "message": "given twice"})
            values[key] = value
            if key in raw_keywords:
                raw_words[key] = raw_keywords[key]
        elif takes_options:
            options[key] = _keep_version_text(key, value, raw_keywords.get(key))
        else:
            errors.append({"field": key,
                           "message": f"unknown argument; {fun_name} takes "
                                      f"{_usage(fun_name, params)}"})
    for param in params:
        if param.name not in values:
            if param.default is param.empty:
                errors.append({"field": param.name,
                               "message": f"missing; usage: salt-run {fun_name} "
                                          f"{_usage(fun_name, params)}"})
            continue
        try:
            values[param.name] = _coerce(param, values[param.name], raw_words.get(param.name))
        except Refused as exc:
            errors.extend(exc.errors)
    if errors:
        raise Refused(errors)
    return values, options


def _coerce(param, value, raw):
    default = param.default
    if value is None and (default is None or param.default is param.empty):
        if default is param.empty:
            raise Refused.one(param.name, "must not be empty")
        return None
    if isinstance(default, bool):
        return as_bool(param.name, value)
    if param.name in COUNT_PARAMETERS:
        return as_count(param.name, value)
    if param.name in POSITION_PARAMETERS:
        return as_count(param.name, value, least=0)
    if isinstance(default, (int, float)):
        return as_seconds(param.name, value)
    return as_text(param.name, value, raw)


def _keep_version_text(key, value, raw):
    if key in VERSION_PARAMETERS and isinstance(value, (int, float)) \
            and not isinstance(value, bool):
        return raw if raw is not None else str(value)
    return value


def _usage(fun_name, params):
    words = []
    for param in params:
        if param.default is param.empty:
            words.append(param.name.upper())
        else:
            words.append(f"[{param.name}=...]")
    return " ".join(words) or "no arguments"
