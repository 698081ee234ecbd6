"""What every kubesalt runner needs from the master it runs on: the store, the settings, the
paths, and a uniform way to refuse a request (non-zero exit from salt-run, the errors as data).
Pure: the calls into Salt are in saltcalls."""

import logging
import sys

from kubesalt.master.verbs import args as runner_args
from kubesalt.master.verbs import salt_noise
from kubesalt.master.errors import Refused
from kubesalt.master.layout import Layout
from kubesalt.master.inventory.store import Store
from kubesalt.master.ops import status as op_status

log = logging.getLogger(__name__)
salt_noise.quiet()

# salt-run exits with a return dict's "retcode"; 2 marks a refused request (bad input), 1 a
# request the controller could not carry out.
REFUSED = 2
FAILED = 1


class SaltCallFailed(RuntimeError):
    """A Salt call did not do what it was asked (Salt's key store did not accept, reject or
    delete a key): raised before anything is reported done or any event fired. The verb fails
    with this message (retcode 1) and no traceback; the request itself was fine."""


def kubesalt_opts(opts):
    try:
        return opts["kubesalt"]
    except KeyError:
        raise RuntimeError("this salt-master is not configured by kubesalt-controller init") \
            from None


def store(opts):
    return Store(kubesalt_opts(opts)["state_dir"])


def layout(opts):
    root = opts.get("root_dir", "/")
    return Layout.for_root(None if str(root) == "/" else root)


def controller_settings(opts):
    return dict(kubesalt_opts(opts)["controller"])


def conf_dir(opts):
    """The master's configuration directory, which the executor's salt-run is given."""
    return opts["conf_file"].rsplit("/", 1)[0]


def pki_dir(opts):
    """Salt's key store."""
    return layout(opts).pki_dir


def node_tag(node_id, status):
    """The master-bus tag of a node's status change."""
    return f"kubesalt/node/{node_id}/{status}"


def typed_back(opts, question, expected):
    """Whether the operator, asked `question` at a terminal, types `expected`. Only salt-run
    runs a runner in the operator's own process; elsewhere (the REST API) nobody is asked and
    the answer is False."""
    if not (opts.get("__role") == "master" and sys.stdin is not None and sys.stdin.isatty()):
        return False
    return input(question).strip() == expected


def verb(func):
    """Make `func` a kubesalt runner: its arguments are bound and checked by
    runner_args.bind (one set of rules for salt-run and the REST API), a Refused becomes a
    refusal (non-zero exit, errors as data), a SaltCallFailed a failure with its message, and
    an unexpected error a one-line answer with the details in the master log: never a
    traceback in front of an operator.

    Salt passes everything to the wrapper (it takes *args, **kwargs), so a misspelt keyword
    or a missing argument reaches the check instead of Salt's "Passed invalid arguments"."""
    module = func.__module__.rsplit(".", 1)[-1]
    module = func.__globals__.get("__virtualname__", module)
    fun_name = f"{module}.{func.__name__.rstrip('_')}"

    def runner(*args, **kwargs):
        context = func.__globals__["__context__"]
        opts = func.__globals__["__opts__"]
        try:
            values, options = runner_args.bind(func, fun_name, args,
                                               strip_salt_kwargs(kwargs),
                                               runner_args.raw_arguments(opts, fun_name))
            return func(**values, **options)
        except Refused as exc:
            return refused(context, exc.errors)
        except SaltCallFailed as exc:
            log.error("%s failed: %s", fun_name, exc)
            return failed(context, f"{fun_name} failed: {exc}")
        except Exception as exc:  # noqa: BLE001 - the operator gets one line, the log the rest
            log.debug("%s failed", fun_name, exc_info=True)
            log.error("%s failed: %s: %s", fun_name, type(exc).__name__, exc)
            return failed(context, f"{fun_name} failed: {type(exc).__name__}: {exc}; see the "
                                   "master log")

    runner.__name__ = func.__name__
    runner.__qualname__ = func.__qualname__
    runner.__doc__ = func.__doc__
    runner.__module__ = func.__module__
    # Not __wrapped__: Salt would read the inner signature and refuse calls itself.
    runner.kubesalt_verb = func
    return runner


def refused(context, errors):
    """The return value of a refused runner call. Sets the job's success to False too."""
    context["retcode"] = REFUSED
    return {"result": False, "errors": errors, "retcode": REFUSED}


def failed(context, message):
    """The return value of a runner call the controller could not carry out. Sets the job's
    success to False too."""
    context["retcode"] = FAILED
    return {"result": False, "retcode": FAILED,
            "errors": [{"field": "controller", "message": message}]}


def strip_salt_kwargs(kwargs):
    """salt-run passes its own __pub_* keys along with the operator's arguments."""
    return {k: v for k, v in kwargs.items() if not k.startswith("__")}


def started(context, store, op, wait, timeout, progress, warning=None):
    """What a runner that starts an operation returns: at once the operation id and its
    stages, or with `wait` the final status (non-zero exit when it failed); with the
    operator's `warning` when there is one."""
    result = op_status.started(store, op, wait, timeout, progress)
    if result.get("retcode"):
        context["retcode"] = result["retcode"]
    if warning:
        result["warning"] = warning
    return result
