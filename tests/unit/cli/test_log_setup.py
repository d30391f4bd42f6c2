"""cli/log_setup.py: a Lightning message reaches a root handler once, and is not lost."""

import logging

import lightning  # noqa: F401  (installs Lightning's console handler)
import pytest

from srdistill.cli.log_setup import LIGHTNING_LOGGERS, one_copy_of_lightning_logs


class Collect(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture
def saved_logging():
    loggers = [logging.getLogger(n) for n in ("", *LIGHTNING_LOGGERS)]
    saved = [(lg, list(lg.handlers), lg.propagate) for lg in loggers]
    yield
    for logger, handlers, propagate in saved:
        logger.handlers[:] = handlers
        logger.propagate = propagate


def test_with_a_root_handler_lightning_messages_come_once_through_it(saved_logging):
    root, lightning_logger = logging.getLogger(), logging.getLogger("lightning.pytorch.trainer")
    collect = Collect()
    root.addHandler(collect)
    one_copy_of_lightning_logs()
    lightning_logger.info("fit stopped")
    assert collect.messages == ["fit stopped"]
    assert not any(logging.getLogger(n).handlers for n in LIGHTNING_LOGGERS)


def test_without_a_root_handler_lightning_keeps_its_own(saved_logging):
    logging.getLogger().handlers[:] = []
    before = list(logging.getLogger("lightning").handlers)
    one_copy_of_lightning_logs()
    assert logging.getLogger("lightning").handlers == before
