"""sim: a discrete-event simulator of message producers sending to a broker.

    >>> from sim import build_config, run
    >>> result = run(build_config({"producer.mode": "nonblocking", "link.rtt": "10ms"}))
    >>> result.summary["throughput_msgs_per_s"]  # doctest: +SKIP

Names are imported on first use, so ``sim --help`` does not load numpy.
"""

from importlib import import_module

__version__ = "0.1.0"  # the only place the version is written (pyproject.toml reads it)

_EXPORTS = {
    "ConfigError": "sim.errors",
    "ConfigWarning": "sim.errors",
    "InputError": "sim.errors",
    "TooMuchWork": "sim.errors",
    "SimConfig": "sim.config",
    "build_config": "sim.config",
    "Result": "sim.results",
    "run": "sim.results",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'sim' has no attribute {name!r}")
