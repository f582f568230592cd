import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim.units import format_bandwidth, format_duration, parse_bandwidth, parse_duration, parse_size


@pytest.mark.parametrize(
    "text,seconds",
    [("7.3ms", 7.3e-3), ("250us", 250e-6), ("250µs", 250e-6), ("1.5s", 1.5), ("2", 2.0), (0.1, 0.1),
     ("10 ms", 0.01), ("100ns", 1e-7), ("2min", 120.0), ("1h", 3600.0), ("1e-3s", 1e-3)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds, rel=1e-15)


@pytest.mark.parametrize(
    "text,bytes_per_s",
    [("100Mbit/s", 12.5e6), ("100Mb/s", 12.5e6), ("100Mbps", 12.5e6), ("12.5MB/s", 12.5e6), ("1Gbit/s", 125e6),
     ("64KiB/s", 65536.0), ("8kbit/s", 1000.0), ("1e6", 1e6), (5e6, 5e6)],
)
def test_bandwidths(text, bytes_per_s):
    assert parse_bandwidth(text) == pytest.approx(bytes_per_s, rel=1e-15)


def test_infinite_bandwidth():
    assert math.isinf(parse_bandwidth("inf"))


@pytest.mark.parametrize("text,size", [("512B", 512), ("4MiB", 4 * 2**20), ("64KiB", 65536), (660, 660), ("1.5KB", 1500)])
def test_sizes(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", ["fast", "10 parsecs", "nan", "inf", "", True, None, [1]])
def test_bad_durations(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


@pytest.mark.parametrize("bad", ["10 Mbit", "fast", "nan", "1 Xb/s", False])
def test_bad_bandwidths(bad):
    with pytest.raises(ValueError):
        parse_bandwidth(bad)


@given(st.floats(min_value=1e-9, max_value=1e4, allow_nan=False))
def test_duration_format_round_trips(seconds):
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds, rel=1e-5)


@given(st.floats(min_value=1.0, max_value=1e12, allow_nan=False))
def test_bandwidth_format_round_trips(bytes_per_s):
    assert parse_bandwidth(format_bandwidth(bytes_per_s)) == pytest.approx(bytes_per_s, rel=1e-5)
