"""Salt 3008.3 logs "unclosed <Client> ...; call destroy()" at WARNING whenever one of its
client objects is garbage-collected without destroy(): salt-run itself does that on every
call, so an operator saw it after every command and read it as an error. Exactly those
records are dropped; everything else these loggers say (and every other warning) stays.

A filter on the emitting loggers, not a level: a level would also hide their real warnings
("Failed to fire args event", deserialisation errors) and their INFO lines in the master log.
Installed when kubesalt's runners are loaded, i.e. in every salt-run of a kubesalt verb and
in the operation executor.
"""

import logging

LOGGERS = ("salt.runner", "salt.minion", "salt.utils.event", "salt.wheel",
           "salt.utils.asynchronous", "salt.utils.resource_warnings")


class UnclosedClientFilter(logging.Filter):
    def filter(self, record):
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a filter must never break logging
            return True
        return not (message.startswith("unclosed ") and "destroy()" in message
                    or message.startswith("unclosed ") and "close()" in message)


_FILTER = UnclosedClientFilter()


def quiet():
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
