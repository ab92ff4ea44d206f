"""Stopping a run on request without losing its steps. Ctrl-C, or SIGTERM from a scheduler or `timeout`, only
asks: the run stops at the next step boundary all processes agree on, after writing a checkpoint there, and
`--resume latest` continues from that step. A second Ctrl-C stops at once (the last checkpoint written stays)."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Callable

from train.checkpoint import list_checkpoints

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequested(Exception):
    """Raised at the step boundary where a run stops on request, once its checkpoint is written."""

    def __init__(self, step: int, why: str, checkpoint):
        super().__init__(f"stopped at step {step} ({why})")
        self.step, self.why, self.checkpoint = step, why, checkpoint


class StopRequests:
    """This process's stop requests, taken from its signals while installed (main thread only)."""

    def __init__(self):
        self.why: str | None = None
        self._previous: dict = {}

    def install(self) -> "StopRequests":
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._asked) for s in SIGNALS}
        return self

    def restore(self) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}

    def _asked(self, signum, frame) -> None:
        if self.why is not None:  # asked twice: stop now
            self.restore()
            raise KeyboardInterrupt
        self.why = signal.Signals(signum).name
        print(f"\n{self.why}: stopping after this step, with a checkpoint (again to stop at once)", file=sys.stderr,
              flush=True)

    def agreed(self, accelerator) -> bool:
        """Whether any process was asked to stop (one small all-reduce a step when there are several)."""
        if accelerator.num_processes == 1:
            return self.why is not None
        if self.why is not None:
            accelerator.set_trigger()
        return accelerator.check_trigger()

    def stop_here(self, accelerator, step: int, checkpoint: Callable[[], Path]) -> None:
        """At a step boundary: when any process was asked, write the step's checkpoint and raise StopRequested."""
        if self.agreed(accelerator):
            raise StopRequested(step, self.why or "another process was asked", checkpoint())


def ignore_stop_signals(worker_id: int) -> None:
    """A data-loader worker leaves stopping to the run: Ctrl-C reaches every process of the terminal's group, and a
    worker that died of it would fail the batch the run still needs to reach its step boundary."""
    for s in SIGNALS:
        signal.signal(s, signal.SIG_IGN)


def stopped_line(e: BaseException, step: int, run_dir: Path) -> str:
    """What a run says when it stops early: at a step boundary with its checkpoint, or interrupted at once."""
    if isinstance(e, StopRequested):
        said = f"{e}; its checkpoint is {e.checkpoint}"
    else:
        found = list_checkpoints(run_dir)
        said = f"interrupted at step {step}; " + (f"the last checkpoint is {found[-1]}" if found
                                                  else "no checkpoint was written yet")
    return said + ". Continue with the same command and --resume latest."
