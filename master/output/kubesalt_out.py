"""kubesalt's outputter, the controller's default for `salt-run` (`--out=json` or
`--out=yaml` keep the full data): an operation as its stage table, a progress message as its
line, and everything else as Salt's own `nested` outputter shows it.

Runs inside Salt's loader, which provides __opts__.
"""

from kubesalt.master.ops import status_text

__virtualname__ = "kubesalt"


def __virtual__():
    return __virtualname__


def output(data, **kwargs):
    shown = status_text.render(data)
    if shown is not None:
        return shown
    import salt.loader  # noqa: PLC0415 - only for what kubesalt does not draw itself

    return salt.loader.outputters(__opts__)["nested"](data, **kwargs)  # noqa: F821
