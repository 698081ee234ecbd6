"""A small check framework in the spirit of kubeadm's preflight: named checks, each giving
pass / warn / fail with a message and how to fix it; every check runs, so all problems are
reported at once."""

import collections

PASS, WARN, FAIL = "pass", "warn", "fail"


class Result(collections.namedtuple("Result", "name status message fix")):
    __slots__ = ()

    @property
    def failed(self):
        return self.status == FAIL


def ok(name, message=""):
    return Result(name, PASS, message, "")


def warn(name, message, fix=""):
    return Result(name, WARN, message, fix)


def fail(name, message, fix=""):
    return Result(name, FAIL, message, fix)


def run(checks, ctx):
    """Run every check; a check that crashes is a failure of that check, not of the run."""
    results = []
    for check in checks:
        try:
            outcome = check(ctx)
        except Exception as exc:  # noqa: BLE001 - report, never abort the other checks
            outcome = fail(getattr(check, "__name__", "check").lstrip("_").replace("_", "-"),
                           "the check itself failed: %s" % exc)
        results.extend(outcome if isinstance(outcome, list) else [outcome])
    return results


def format_table(results):
    width = max([len(r.name) for r in results] + [5])
    lines = ["%-*s  %-6s  %s" % (width, "CHECK", "RESULT", "DETAILS")]
    for result in results:
        detail = result.message
        if result.status != PASS and result.fix:
            detail += " (fix: %s)" % result.fix
        lines.append("%-*s  %-6s  %s" % (width, result.name, result.status.upper(), detail))
    return "\n".join(lines)


def format_failures(results):
    failures = [r for r in results if r.failed]
    lines = ["[-] %d precheck(s) failed:" % len(failures)]
    for result in failures:
        lines.append("    [%s] %s" % (result.name, result.message))
        if result.fix:
            lines.append("        fix: %s" % result.fix)
    return "\n".join(lines)
