"""Stopping a run cleanly: Ctrl-C, the notebook's stop button or SIGTERM ask the loop to stop after the current
step (``StopSignals``), and the run then says where it stopped and how to go on (``interrupted_message``)."""
from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

__all__ = ["StopSignals", "interrupted_message"]


class StopSignals:
    """``with StopSignals() as stop:`` turns SIGINT / SIGTERM (Ctrl-C, the notebook's stop button) into
    ``stop.requested = True``; a second signal stops at once (KeyboardInterrupt). The previous handlers are
    restored on exit. Outside the main thread (where handlers cannot be installed) it does nothing."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handler(self, signum, frame) -> None:
        if self.requested:  # second press: give up immediately
            self._restore()
            raise KeyboardInterrupt
        self.requested = True

    def _restore(self) -> None:
        for sig, old in self._previous.items():
            signal.signal(sig, old)
        self._previous = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                try:
                    self._previous[sig] = signal.signal(sig, self._handler)
                except (ValueError, OSError):  # not allowed here
                    pass
        return self

    def __exit__(self, *exc: Any) -> None:
        self._restore()


def interrupted_message(step: int, checkpoint: Path | None) -> str:
    """What a run stopped by Ctrl-C / SIGTERM prints: where it stopped and how to go on."""
    where = f"; checkpoint saved to {checkpoint}" if checkpoint is not None else ""
    return (f"[course_lib] interrupted after step {step}{where}. Call fit() again, or run "
            f"`python -m course_lib train --resume <checkpoint>`, to continue the same run.")
