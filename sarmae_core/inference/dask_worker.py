"""What sarmae installs in the Dask workers of the local cluster it starts (``predict_many``)."""

from __future__ import annotations

import logging
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin


def not_teardown_noise(record: logging.LogRecord) -> bool:
    """False for the traceback a worker logs when its heartbeat races the cluster's own
    shutdown (after a cancel or SIGTERM, on a busy machine): a benign race that would print a
    page of Dask internals under "cancelled: ... nothing was written"."""
    exc = record.exc_info[1] if record.exc_info else None
    return not (
        record.getMessage().startswith("Failed to communicate with scheduler during heartbeat")
        and "closing" in str(exc)
    )


class QuietTeardown(WorkerPlugin):
    """Filters :func:`not_teardown_noise` out of each worker's log (``setup`` runs in every
    worker process, restarted ones too). Real worker errors still show."""

    def setup(self, worker: Any) -> None:
        logging.getLogger("distributed.worker").addFilter(not_teardown_noise)
