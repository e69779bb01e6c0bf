"""Stopping a training run on request without losing its last steps.

``kill PID`` (SIGTERM, what schedulers and ``timeout`` send) or Ctrl-C (SIGINT) ask the loop to stop after
the step it is in; the loop then saves ``last.pt`` as usual and ``colorize-train`` exits with
``128 + signal``. A second Ctrl-C interrupts at once (``KeyboardInterrupt``; the last periodic checkpoint
stays). Loader workers ignore both signals, so a Ctrl-C in a terminal (sent to the whole process group)
reaches only the main process, and the workers are shut down by the loader as at any other stop.
"""

from __future__ import annotations

import logging
import signal
import threading

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """A context manager that turns SIGINT and SIGTERM into a flag the training loop polls.

    Handlers are installed only in the main thread, and not for a signal that is ignored on entry (a job
    that a script started with ``&`` ignores SIGINT, and keeps doing so). The previous handlers come back
    on exit.
    """

    def __init__(self) -> None:
        self.received: signal.Signals | None = None
        self._previous: dict[signal.Signals, object] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                previous = signal.getsignal(sig)
                if previous is not signal.SIG_IGN:
                    self._previous[sig] = previous
                    signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc_info) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    def _handle(self, signum: int, frame) -> None:
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if self.received is None:
            self.received = signal.Signals(signum)
            log.warning("%s: stopping after this step and saving last.pt (Ctrl-C again to stop now)", self.received.name)


def ignore_stop_signals(worker_id: int = 0) -> None:
    """``DataLoader`` ``worker_init_fn``: loader workers leave SIGINT and SIGTERM to the main process.

    Args:
        worker_id: the loader's worker index (unused).
    """
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
