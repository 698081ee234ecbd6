"""What every kubesalt runner needs from the master it runs on: the store, the settings, and a
uniform way to refuse a request (non-zero exit from salt-run, the errors as data)."""

from .layout import Layout
from .store import Store

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
