"""sim: a discrete-event simulator of message producers sending to a broker.

    >>> from sim import build_config, run
    >>> result = run(build_config({"producer.mode": "nonblocking", "link.rtt": "10ms"}))
    >>> result.summary["throughput_msgs_per_s"]  # doctest: +SKIP
"""

from .config import ConfigError, SimConfig, build_config
from .results import Result, run

__all__ = ["ConfigError", "Result", "SimConfig", "build_config", "run"]
__version__ = "0.1.0"
