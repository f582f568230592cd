"""The one error path: what bad input raises, and what the command line prints.

Everything a user can get wrong raises :class:`InputError` (a ``ValueError``)
whose ``str()`` is one line that says what is wrong and what is allowed; a bad
configuration key or value raises its subclass :class:`ConfigError`, which also
carries the key, the value and the problem. The command line prints that line
after ``sim: error:`` and exits with 2.

A setting that will be ignored (a limiter poll without a limit, a partition
with round-robin partitioning) is not an error but a :class:`ConfigWarning`,
which the command line prints as one ``sim: warning:`` line.

This module imports nothing heavy, so ``sim --help`` stays instant.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ConfigError", "ConfigWarning", "InputError", "NO_VALUE", "TooMuchWork"]


class InputError(ValueError):
    """Bad input from the user; ``str(error)`` is one line that says what is wrong."""


class ConfigError(InputError):
    """A bad configuration key or value: the line names the key, the value and what is allowed."""

    def __init__(self, key: str, value: Any, problem: str):
        self.key, self.value, self.problem = key, value, problem
        if value is NO_VALUE:
            super().__init__(f"{key}: {problem}")
            return
        super().__init__(f"{key} = {show(value)}: {problem}")

    def __reduce__(self):  # picklable, so errors raised in worker processes come back whole
        return (type(self), (self.key, self.value, self.problem))


class TooMuchWork(ConfigError):
    """A valid configuration whose run would take absurdly long or need more memory than there is."""


class ConfigWarning(UserWarning):
    """A configuration key whose value will be ignored by this system."""


class _NoValue:
    """Marks a ConfigError about a key, not a value."""

    def __repr__(self) -> str:
        return "NO_VALUE"

    def __reduce__(self):
        return "NO_VALUE"


NO_VALUE = _NoValue()


def show(value: Any, limit: int = 60) -> str:
    """A value as the error line shows it: ``none``, a bare string, else its repr, cut to ``limit`` characters."""
    text = "none" if value is None else value if isinstance(value, str) else repr(value)
    text = " ".join(str(text).split())  # one line, whatever the value holds
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- output paths, checked before a long run starts ------------------------------------------------------


def check_output_file(path, option: str, create_parent: bool = False):
    """``path`` as a :class:`pathlib.Path` once it is sure a file can be written there, else :class:`InputError`.

    The file is opened for appending (which is what proves it writable, even for root or on a
    read-only mount) and removed again if it did not exist before.
    """
    from pathlib import Path

    if path is None or str(path).strip() == "":
        raise InputError(f"{option}: give a file name")
    target = Path(path)
    if target.is_dir():
        raise InputError(f"{option} = {path}: is a directory; give a file name")
    parent = target.parent
    if create_parent and not parent.exists():
        check_output_dir(parent, option)
    if not parent.exists():
        raise InputError(f"{option} = {path}: the directory {parent} does not exist")
    if not parent.is_dir():
        raise InputError(f"{option} = {path}: {parent} is not a directory")
    existed = target.exists()
    try:
        with open(target, "a"):
            pass
    except OSError as exc:
        raise InputError(f"{option} = {path}: cannot write there ({exc.strerror or exc})") from None
    if not existed:
        target.unlink(missing_ok=True)
    return target


def check_output_dir(path, option: str):
    """``path`` as a :class:`pathlib.Path`, created if missing, once it is sure files can be written in it."""
    import tempfile
    from pathlib import Path

    if path is None or str(path).strip() == "":
        raise InputError(f"{option}: give a directory")
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise InputError(f"{option} = {path}: is a file, not a directory")
    try:
        target.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=target):
            pass
    except OSError as exc:
        raise InputError(f"{option} = {path}: cannot write there ({exc.strerror or exc})") from None
    return target
