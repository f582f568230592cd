"""Run independent simulations side by side on local processes.

``parallel_map(fn, items)`` is ``[fn(item) for item in items]``, computed by a
pool of worker processes (one per core by default), in input order, with a
progress bar (``tqdm.auto``: a widget in Jupyter, text on a terminal, none in
logs). ``fn`` must be a module-level function so it can be sent to the workers.

Workers are started with ``forkserver`` where the platform has it, else
``spawn``: never a bare ``fork`` of a parent that may hold threads (Jupyter,
Dask, tqdm's monitor), which can deadlock. The forkserver preloads the
simulator, so a worker starts in milliseconds.

Workers never outlive the process that started them: each asks the kernel to
kill it when its parent dies (``prctl(PR_SET_PDEATHSIG)`` on Linux) and also
watches its parent itself, so a ``kill -9`` of ``sim sweep`` leaves no
process computing on. Workers ignore Ctrl-C; the parent receives it, stops
the pool and raises ``KeyboardInterrupt`` once.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Callable, Iterable, TypeVar

T = TypeVar("T")
R = TypeVar("R")

PRELOAD = ["sim._quiet_start", "sim.sweep", "sim.results", "sim.engine"]
PARENT_CHECK_S = 0.5


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def start_method() -> str:
    """``forkserver`` where available (Linux, macOS), else ``spawn``."""
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


def _context():
    method = start_method()
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload(PRELOAD)
        _start_forkserver()
    return context


def _start_forkserver() -> None:
    """Start the fork server with Ctrl-C ignored: it would otherwise take the terminal's
    SIGINT (it is in our process group) while it imports its preload, before it protects
    itself, and print a traceback. An ignored signal stays ignored across exec (a blocked
    one does not stay blocked), and the server ignores SIGINT from then on anyway; here it
    is ignored only while the server is started."""
    import threading
    from multiprocessing import forkserver

    if threading.current_thread() is not threading.main_thread():  # (only the main thread may change it)
        forkserver.ensure_running()
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        forkserver.ensure_running()
    finally:
        signal.signal(signal.SIGINT, previous)


def _die_with_parent(parent: int) -> None:
    """Worker initializer: end this process when ``parent`` ends; leave Ctrl-C to the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG: the kernel kills us with the parent
        except (OSError, AttributeError):
            pass

    def watch() -> None:  # everywhere (and for the forkserver case, where our parent is the server)
        import time

        while True:
            time.sleep(PARENT_CHECK_S)
            if not _alive(parent):
                os._exit(1)

    threading.Thread(target=watch, name="sim-parent-watch", daemon=True).start()
    import warnings

    from .errors import ConfigWarning

    warnings.simplefilter("ignore", ConfigWarning)  # the parent warns once, not every worker


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie, killed but not yet reaped, counts as ended)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except (OSError, IndexError):
        return True


def parallel_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    workers: int | None = None,
    progress: bool | None = None,
    desc: str = "",
    on_result: Callable[[int, R], None] | None = None,
) -> list[R]:
    """``[fn(x) for x in items]`` on ``workers`` processes (1 = in this process).

    ``progress``: True shows a bar, False hides it, None shows it only where it can be seen
    (a terminal or Jupyter).
    ``on_result(i, result)`` is called in this process as each item finishes (in completion order),
    so a caller can store results as they come.
    """
    from .progress import progress_bar

    items = list(items)
    workers = default_workers() if workers is None else workers
    workers = max(1, min(workers, len(items)))
    bar = progress_bar(len(items), desc, progress)
    try:
        if workers == 1:
            results = []
            for i, item in enumerate(items):
                results.append(fn(item))
                if on_result is not None:
                    on_result(i, results[-1])
                bar.update()
            return results
        return _pool_map(fn, items, workers, bar, on_result)
    finally:
        bar.close()


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes started the safe way (forkserver or spawn), that
    die with this process and leave Ctrl-C to it."""
    return ProcessPoolExecutor(max_workers=workers, mp_context=_context(), initializer=_die_with_parent,
                               initargs=(os.getpid(),))


def _pool_map(fn, items, workers, bar, on_result):
    pool = process_pool(workers)
    try:
        futures = [pool.submit(fn, item) for item in items]
        position = {future: i for i, future in enumerate(futures)}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
            for future in sorted(done, key=position.get):
                result = future.result()  # a worker's exception is raised here, in order of completion
                if on_result is not None:
                    on_result(position[future], result)
                bar.update()
        pool.shutdown(wait=True)
        return [future.result() for future in futures]
    except BaseException:
        _stop(pool)
        raise


def _stop(pool: ProcessPoolExecutor) -> None:
    """Cancel what has not started and end the workers now (not after their current run)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        try:
            process.kill()
        except (OSError, AttributeError, ValueError):
            pass
    for process in processes:
        try:
            process.join(timeout=2)
        except (OSError, AttributeError, ValueError, AssertionError):
            pass
