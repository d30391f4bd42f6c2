"""Each log message once: Lightning's own console handler beside Hydra's.

The ``lightning`` package gives its logger a console handler of its own and still lets messages
propagate to the root logger, where Hydra's job logging writes them to the console and to the
run's log file: every Lightning message (the model summary, "`Trainer.fit` stopped") came out
twice. Where the root logger has handlers, Lightning's are removed, so its messages go through
the root's alone: once on the console, once in the run's log file.
"""

from __future__ import annotations

import logging

LIGHTNING_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric")


def one_copy_of_lightning_logs() -> None:
    """Drop Lightning's own handlers where its messages reach the root logger's."""
    if not logging.getLogger().handlers:
        return  # no root handler (e.g. outside Hydra): Lightning's handlers are the only ones
    for name in LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True
