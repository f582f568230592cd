"""Imported only by the fork server of ``sim.parallel`` (its preload), never by ``sim``.

A worker forked from the server first reads its task from the process that owns
the pool. If that process is gone (Ctrl-C, a kill), the read fails and the dying
worker would print a traceback on the terminal the user just interrupted. This
hook keeps that one case quiet and passes every other exception on.
"""

from __future__ import annotations

import os
import sys

_previous = sys.excepthook


def _starting(traceback) -> bool:
    """Did this happen while the worker was still reading its task (in ``spawn._main``)?"""
    while traceback is not None:
        code = traceback.tb_frame.f_code
        if code.co_name == "_main" and code.co_filename.endswith(os.path.join("multiprocessing", "spawn.py")):
            return True
        traceback = traceback.tb_next
    return False


# what a start fails with when the owner has gone: its semaphores unlinked, its pipes closed
GONE = (FileNotFoundError, EOFError, ConnectionError, KeyboardInterrupt)


def _quiet_if_orphaned(kind, value, traceback) -> None:
    if issubclass(kind, GONE) and _starting(traceback):
        return  # (if the owner still runs, its pool reports the broken worker itself)
    _previous(kind, value, traceback)


sys.excepthook = _quiet_if_orphaned
