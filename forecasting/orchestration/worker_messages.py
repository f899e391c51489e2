"""Warnings and log records of the embedded Dask workers, sent to the client that started them.

A worker process writes straight to the terminal, through the middle of the client's progress
bar. With this plug-in registered, a worker's Python warnings and the records of the
``forecasting`` loggers become events on one topic; the client prints each distinct message
once, above its bar. Imported only where an embedded cluster is used.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

TOPIC = "forecasting-worker-messages"


class _EventHandler(logging.Handler):
    def __init__(self, worker: Any) -> None:
        super().__init__(logging.WARNING)
        self.worker = worker

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):  # a message that cannot be sent is not worth a failed task
            self.worker.log_event(TOPIC, f"{record.levelname} {record.name}: {record.getMessage()}")


class ForwardMessages(WorkerPlugin):
    """On each worker: warnings and ``forecasting`` log records (WARNING and up) go to the client."""

    name = "forecasting-forward-messages"

    def setup(self, worker: Any) -> None:
        def show(message: Any, category: type, filename: str, lineno: int, file: Any = None, line: str | None = None) -> None:
            with contextlib.suppress(Exception):
                worker.log_event(TOPIC, warnings.formatwarning(message, category, filename, lineno, line).rstrip())

        warnings.showwarning = show
        logger = logging.getLogger("forecasting")
        logger.addHandler(_EventHandler(worker))
        logger.propagate = False
