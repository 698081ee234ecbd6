"""What every kubesalt runner needs from the master it runs on: the store, the settings, and a
uniform way to refuse a request (non-zero exit from salt-run, the errors as data)."""

import logging
import time

from kubesalt.master.verbs import args as runner_args
from kubesalt.master.verbs import salt_noise
from kubesalt.master.errors import Refused
from kubesalt.master.layout import Layout
from kubesalt.master.inventory.store import Store

log = logging.getLogger(__name__)
salt_noise.quiet()

# salt-run exits with a return dict's "retcode"; 2 marks a refused request (bad input).
REFUSED = 2


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


def verb(func):
    """Make `func` a kubesalt runner: its arguments are bound and checked by
    runner_args.bind (one set of rules for salt-run and the REST API), a Refused becomes a
    refusal (non-zero exit, errors as data), and an unexpected error becomes a one-line
    answer with the details in the master log, never a traceback in front of an operator.

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
        except Exception as exc:  # noqa: BLE001 - the operator gets one line, the log the rest
            log.debug("%s failed", fun_name, exc_info=True)
            log.error("%s failed: %s: %s", fun_name, type(exc).__name__, exc)
            context["retcode"] = 1
            return {"result": False, "retcode": 1,
                    "errors": [{"field": "controller",
                                "message": f"{fun_name} failed: {type(exc).__name__}: {exc}; "
                                           "see the master log"}]}

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


def strip_salt_kwargs(kwargs):
    """salt-run passes its own __pub_* keys along with the operator's arguments."""
    return {k: v for k, v in kwargs.items() if not k.startswith("__")}


def cached_grains(opts, node_id):
    """A node's grains from the master's minion data cache ({} before the first probe)."""
    import salt.utils.minions  # noqa: PLC0415 - keeps this module importable without Salt

    return salt.utils.minions.get_minion_data(node_id, opts)[1] or {}


def delete_keys(opts, ids):
    """Delete nodes' keys from Salt's key store (and so their minion data cache)."""
    import salt.wheel  # noqa: PLC0415 - keeps this module importable without Salt

    wheel = salt.wheel.WheelClient(opts)
    for node_id in ids:
        wheel.cmd("key.delete", [node_id], print_event=False)


def follow(store, op_id, timeout, progress):
    """Report stage changes through `progress(message)` until operation `op_id` ends; returns
    its status view. Polls the store: the executor is another process."""
    from kubesalt.master.ops import executor  # noqa: PLC0415 - keeps this module light for every runner

    deadline = time.monotonic() + timeout
    seen = {}
    while True:
        op = store.operation(op_id)
        for stage in op["stages"]:
            if seen.get(stage["name"]) != stage["state"]:
                seen[stage["name"]] = stage["state"]
                if stage["state"] in ("running", "done", "failed"):
                    nodes = ", ".join(stage["nodes"]) or "controller"
                    detail = f": {stage['error']}" if stage["error"] else ""
                    progress(f"[{op_id}] {stage['name']} {stage['state']} on {nodes}{detail}")
        if op["state"] in ("done", "failed"):
            return executor.status_view(op)
        if time.monotonic() > deadline:
            view = executor.status_view(op)
            view["error"] = f"still {op['state']} after {timeout}s; see cluster.status"
            return view
        time.sleep(1)


def started(context, store, op, wait, timeout, progress):
    """What a runner that starts an operation returns: at once the operation id and its
    stages, or with `wait` the final status (non-zero exit when it failed)."""
    if not wait:
        return {"operation": op["id"], "cluster": op["cluster"], "kind": op["kind"],
                "state": op["state"],
                "stages": [s["name"] for s in op["stages"] if s["state"] != "skipped"]}
    final = follow(store, op["id"], float(timeout), progress)
    if final["state"] != "done":
        context["retcode"] = 1
        final["retcode"] = 1
    return final


