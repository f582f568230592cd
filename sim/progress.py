"""Progress bars that show where a person is watching: a terminal or Jupyter.

``progress_bar(total, desc, progress)`` is a ``tqdm.auto`` bar: a widget in
Jupyter, text on a terminal. ``progress=None`` (the default everywhere) shows
it on a terminal and in a Jupyter kernel, and hides it when standard error is
a log file or a pipe; True and False force it. Without ipywidgets, Jupyter
gets the text bar instead of an error.
"""

from __future__ import annotations

import sys


def in_jupyter() -> bool:
    """True inside a Jupyter (ipykernel) kernel."""
    shell = sys.modules.get("IPython")
    if shell is None or "ipykernel" not in sys.modules:
        return False
    try:
        ip = shell.get_ipython()
    except AttributeError:
        return False
    return ip is not None and "IPKernelApp" in getattr(ip, "config", {})


def _widgets_available() -> bool:
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def progress_bar(total: int | None = None, desc: str = "", progress: bool | None = None, **kwargs):
    """A tqdm bar over ``total`` steps (see the module docstring for ``progress``);
    other keywords (``iterable``, ``unit`` ...) go to tqdm."""
    jupyter = in_jupyter()
    if progress is None:
        stream = sys.stderr
        show = jupyter or bool(stream is not None and hasattr(stream, "isatty") and stream.isatty())
    else:
        show = progress
    if jupyter and _widgets_available():
        from tqdm.auto import tqdm
    else:
        from tqdm.std import tqdm
    kwargs.setdefault("leave", False)
    return tqdm(total=total, desc=desc, disable=not show, **kwargs)
