"""Bad input, through every command and the Python API: one clear line, exit code 2, no traceback.

The table below is the suite's record of what users can get wrong. Each case
names the line's key and a word it must contain. Every ``--set`` case runs
through ``sim simulate`` and ``sim plan`` and through ``build_config``; then
come config files, sweep files, output paths, the other commands, absurd work
and wrong Python types. Warnings (keys that will be ignored) and edge cases
that must run and give sane numbers close the file.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from sim import ConfigError, ConfigWarning, InputError, TooMuchWork, build_config, run
from sim.cli import main
from sim.config import parse_assignments

NB = ["producer.mode=nonblocking"]

# (assignments, the key the message must name, a word the message must contain)
SET_CASES = [
    # producer
    (NB + ["producer.window=-5"], "producer.window", ">= 1"),
    (NB + ["producer.window=0"], "producer.window", ">= 1"),
    (NB + ["producer.window=2.5"], "producer.window", "whole number"),
    (NB + ["producer.window=-0"], "producer.window", "negative zero"),
    (NB + ["producer.window=five"], "producer.window", "number"),
    (NB + ["producer.window=nan"], "producer.window", "NaN"),
    (NB + ["producer.window=true"], "producer.window", "number"),
    (NB + ["producer.concurrent_task_limit=0"], "producer.concurrent_task_limit", ">= 1"),
    (NB + ["producer.concurrent_task_limit=-3"], "producer.concurrent_task_limit", ">= 1"),
    (NB + ["producer.concurrent_task_limit=1.5"], "producer.concurrent_task_limit", "whole number"),
    (["producer.messages=0"], "producer.messages", ">= 1"),
    (["producer.messages=-1"], "producer.messages", ">= 1"),
    (["producer.messages=1.5"], "producer.messages", "whole number"),
    (["producer.messages=abc"], "producer.messages", "number"),
    (["producer.messages=-0"], "producer.messages", "negative zero"),
    (["producer.messages="], "producer.messages", "number"),
    (["producer.messages=1e400"], "producer.messages", "whole number"),
    (["producer.rate=0"], "producer.rate", "> 0"),
    (["producer.rate=-10"], "producer.rate", "> 0"),
    (["producer.rate=nan"], "producer.rate", "NaN"),
    (["producer.rate=inf"], "producer.rate", "finite"),
    (["producer.rate=-inf"], "producer.rate", "finite"),
    (["producer.rate=fast"], "producer.rate", "number"),
    (["producer.rate=-0"], "producer.rate", "negative zero"),
    (["producer.rate=10/s"], "producer.rate", "number"),
    (["producer.ack_wait=0"], "producer.ack_wait", "> 0"),
    (["producer.ack_wait=-1s"], "producer.ack_wait", "> 0"),
    (["producer.ack_wait=10parsecs"], "producer.ack_wait", "unit"),
    (["producer.ack_wait=inf"], "producer.ack_wait", "finite"),
    (["producer.ack_wait=nan"], "producer.ack_wait", "finite"),
    (["producer.ack_wait=-0s"], "producer.ack_wait", "negative zero"),
    (["producer.ack_wait=1e999"], "producer.ack_wait", "finite"),
    (["producer.ack_wait=ten seconds"], "producer.ack_wait", "duration"),
    (["producer.limiter_poll=-0.1"], "producer.limiter_poll", ">= 0"),
    (["producer.limiter_poll=-0"], "producer.limiter_poll", "negative zero"),
    (["producer.limiter_poll=1 fortnight"], "producer.limiter_poll", "unit"),
    (["producer.mode=fast"], "producer.mode", "sync"),
    (["producer.mode="], "producer.mode", "sync"),
    (["producer.mode=SYNC"], "producer.mode", "sync"),
    (["producer.mode=1"], "producer.mode", "nonblocking"),
    (["producer.partitioning=random"], "producer.partitioning", "round_robin"),
    (["producer.partitioning=round-robin"], "producer.partitioning", "round_robin"),
    (["producer.arrivals=uniform"], "producer.arrivals", "poisson"),
    (["producer.payload_bytes=-1"], "producer.payload_bytes", ">= 0"),
    (["producer.payload_bytes=12apples"], "producer.payload_bytes", "unit"),
    (["producer.payload_bytes=0.5B"], "producer.payload_bytes", "whole number"),
    (["producer.payload_bytes=inf"], "producer.payload_bytes", "finite"),
    (["producer.payload_bytes=nan"], "producer.payload_bytes", "finite"),
    (["producer.payload_bytes=-0"], "producer.payload_bytes", "negative zero"),
    (["producer.payload_bytes=1.5KiBB"], "producer.payload_bytes", "unit"),
    (["producer.overhead_bytes=-5"], "producer.overhead_bytes", ">= 0"),
    (["producer.overhead_bytes=lots"], "producer.overhead_bytes", "size"),
    (["producer.partitioning=fixed", "producer.partition=3", "broker.partitions=2"], "producer.partition", "at most"),
    (["producer.partition=0"], "producer.partition", ">= 1"),
    (["producer.partition=-1"], "producer.partition", ">= 1"),
    (["producer.key_space=0"], "producer.key_space", ">= 1"),
    (["producer.key_space=1e30"], "producer.key_space", "<="),
    (["producer.start_jitter=-1ms"], "producer.start_jitter", ">= 0"),
    (["producer.start_jitter=inf"], "producer.start_jitter", "finite"),
    (["producer.start_jitter=-0"], "producer.start_jitter", "negative zero"),
    (["producer.window=5"], "producer.window", "nonblocking"),
    (["producer.concurrent_task_limit=5"], "producer.concurrent_task_limit", "nonblocking"),
    (NB + ["producer.window=5", "producer.concurrent_task_limit=10"], "producer.concurrent_task_limit", "not both"),
    (["producer.messages=none"], "producer.messages", "run.duration"),
    # counts
    (["clients=0"], "clients", ">= 1"),
    (["clients=two"], "clients", "number"),
    (["clients=-1"], "clients", ">= 1"),
    (["clients=1.5"], "clients", "whole number"),
    (["clients=1e30"], "clients", "<="),
    (["clients=-0"], "clients", "negative zero"),
    (["clients=none"], "clients", "integer"),
    (["producers_per_client=-1"], "producers_per_client", ">= 1"),
    (["producers_per_client=0"], "producers_per_client", ">= 1"),
    (["producers_per_client=100001"], "producers_per_client", "<="),
    (["clients=1000", "producers_per_client=1001"], "producers_per_client", "1,000,000"),
    # client
    (["client.send_cpu=-5us"], "client.send_cpu", ">= 0"),
    (["client.send_cpu=nan"], "client.send_cpu", "finite"),
    (["client.send_cpu=-0us"], "client.send_cpu", "negative zero"),
    (["client.send_cpu=5 microseconds"], "client.send_cpu", "duration"),
    (["client.ack_cpu=nan"], "client.ack_cpu", "finite"),
    (["client.ack_cpu=-1"], "client.ack_cpu", ">= 0"),
    (["client.ack_cpu=inf"], "client.ack_cpu", "finite"),
    (["client.loop=per_iteration"], "client.loop", "per_message or iterations"),
    (["client.loop="], "client.loop", "per_message or iterations"),
    (["client.wakeup_cpu=-1us", "client.loop=iterations"], "client.wakeup_cpu", ">= 0"),
    (["client.wakeup_cpu=nan"], "client.wakeup_cpu", "finite"),
    (["client.wakeup_cpu=117 microseconds"], "client.wakeup_cpu", "duration"),
    (["client.cpu_cv=-0.5"], "client.cpu_cv", ">= 0"),
    (["client.cpu_cv=nan"], "client.cpu_cv", "NaN"),
    (["client.cpu_cv=inf"], "client.cpu_cv", "finite"),
    (["client.cpu_cv=101"], "client.cpu_cv", "<= 100"),
    (["client.cpu_cv=yes"], "client.cpu_cv", "number"),
    (["client.wakeup_growth=-0.1", "client.loop=iterations"], "client.wakeup_growth", ">= 0"),
    (["client.wakeup_growth=2"], "client.wakeup_growth", "<= 1"),
    (["client.wakeup_growth=nan"], "client.wakeup_growth", "NaN"),
    (["client.wakeup_growth=fast"], "client.wakeup_growth", "number"),
    (["client.wakeup_max=-1ms"], "client.wakeup_max", ">= 0"),
    (["client.wakeup_max=1 millisecond"], "client.wakeup_max", "duration"),
    (["client.loop=iterations", "client.wakeup_cpu=100us", "client.wakeup_growth=0.02", "client.wakeup_max=50us"],
     "client.wakeup_max", "at least client.wakeup_cpu"),
    (["client.host_slice=-1ms", "client.host_cores=1"], "client.host_slice", ">= 0"),
    (["client.host_slice=inf", "client.host_cores=1"], "client.host_slice", "finite"),
    (["client.host_slice=nan"], "client.host_slice", "finite"),
    (["client.host_slice=1.5 milliseconds"], "client.host_slice", "duration"),
    (["client.iteration_cpu=-1us", "client.loop=iterations"], "client.iteration_cpu", ">= 0"),
    (["client.iteration_cpu=fast"], "client.iteration_cpu", "duration"),
    (["client.gc_messages=0"], "client.gc_messages", ">= 1"),
    (["client.gc_messages=2.5"], "client.gc_messages", "whole number"),
    (["client.gc_messages=lots"], "client.gc_messages", "whole number"),
    (["client.gc_full_every=0", "client.gc_messages=25"], "client.gc_full_every", ">= 1"),
    (["client.gc_full_every=none", "client.gc_messages=25"], "client.gc_full_every", "whole number"),
    (["client.gc_pause=-1ms", "client.gc_messages=25"], "client.gc_pause", ">= 0"),
    (["client.gc_pause=inf", "client.gc_messages=25"], "client.gc_pause", "finite"),
    (["client.gc_pause=8 milliseconds"], "client.gc_pause", "duration"),
    (["client.gc_message_cpu=-1us", "client.gc_messages=25"], "client.gc_message_cpu", ">= 0"),
    (["producer.mode=burst", "producer.messages=none", "run.duration=1s"], "producer.messages", "burst"),
    (["producer.mode=burst", "producer.window=10"], "producer.window", "burst"),
    (["producer.mode=burst", "producer.concurrent_task_limit=10"], "producer.concurrent_task_limit", "burst"),
    (["producer.mode=burst", "producer.rate=100"], "producer.rate", "burst"),
    # link
    (["link.rtt=-1ms"], "link.rtt", ">= 0"),
    (["link.rtt=10 parsecs"], "link.rtt", "unit"),
    (["link.rtt=-0"], "link.rtt", "negative zero"),
    (["link.rtt=-0.0ms"], "link.rtt", "negative zero"),
    (["link.rtt=inf"], "link.rtt", "finite"),
    (["link.rtt=nan"], "link.rtt", "finite"),
    (["link.rtt=10 ms s"], "link.rtt", "duration"),
    (["link.rtt=ms"], "link.rtt", "duration"),
    (["link.rtt=1e999ms"], "link.rtt", "finite"),
    (["link.bandwidth=0"], "link.bandwidth", "> 0"),
    (["link.bandwidth=-5MB/s"], "link.bandwidth", "> 0"),
    (["link.bandwidth=100furlongs/s"], "link.bandwidth", "unit"),
    (["link.bandwidth=nan"], "link.bandwidth", "bandwidth"),
    (["link.bandwidth=-inf"], "link.bandwidth", "> 0"),
    (["link.bandwidth=-0"], "link.bandwidth", "negative zero"),
    (["link.bandwidth=100 Mbit"], "link.bandwidth", "unit"),
    (["link.downlink_bandwidth=0"], "link.downlink_bandwidth", "> 0"),
    (["link.downlink_bandwidth=slow"], "link.downlink_bandwidth", "bandwidth"),
    (["link.loss=1"], "link.loss", "< 1"),
    (["link.loss=1.5"], "link.loss", "< 1"),
    (["link.loss=-0.1"], "link.loss", ">= 0"),
    (["link.loss=nan"], "link.loss", "NaN"),
    (["link.loss=-0"], "link.loss", "negative zero"),
    (["link.loss=2%"], "link.loss", "number"),
    (["link.window_bytes=0"], "link.window_bytes", ">= 1"),
    (["link.window_bytes=1"], "link.window_bytes", "segment"),
    (["link.window_bytes=1000"], "link.window_bytes", "segment"),
    (["link.mss_bytes=9000", "link.window_bytes=8KiB"], "link.window_bytes", "segment"),
    (["link.window_bytes=-0"], "link.window_bytes", "negative zero"),
    (["link.window_bytes=-1"], "link.window_bytes", ">= 1"),
    (["link.window_bytes=big"], "link.window_bytes", "size"),
    (["link.mss_bytes=0"], "link.mss_bytes", ">= 88"),
    (["link.mss_bytes=1"], "link.mss_bytes", ">= 88"),
    (["link.mss_bytes=1", "link.loss=0.5"], "link.mss_bytes", ">= 88"),
    (["link.mss_bytes=87"], "link.mss_bytes", ">= 88"),
    (["link.mss_bytes=inf"], "link.mss_bytes", "finite"),
    (["link.jitter=-1ms"], "link.jitter", ">= 0"),
    (["link.jitter=inf"], "link.jitter", "finite"),
    (["link.jitter=nan"], "link.jitter", "finite"),
    (["link.jitter=-0"], "link.jitter", "negative zero"),
    (["link.jitter=3 parsecs"], "link.jitter", "unit"),
    (["link.jitter=1ms", "link.jitter_cv=0"], "link.jitter_cv", "> 0"),
    (["link.jitter=1ms", "link.jitter_cv=-1"], "link.jitter_cv", "> 0"),
    (["link.jitter=1ms", "link.jitter_cv=101"], "link.jitter_cv", "<= 100"),
    (["link.jitter=1ms", "link.jitter_cv=inf"], "link.jitter_cv", "finite"),
    (["link.jitter=1ms", "link.jitter_cv=nan"], "link.jitter_cv", "NaN"),
    (["link.jitter=1ms", "link.jitter_cv=wide"], "link.jitter_cv", "number"),
    (["link.relay=maybe"], "link.relay", "boolean"),
    (["link.relay=2"], "link.relay", "boolean"),
    (["link.relay=true", "link.relay_cpu=-1us"], "link.relay_cpu", ">= 0"),
    (["link.relay=true", "link.relay_cpu=-0"], "link.relay_cpu", "negative zero"),
    (["link.relay=true", "link.relay_cpu=inf"], "link.relay_cpu", "finite"),
    (["link.relay=true", "link.relay_cpu=nan"], "link.relay_cpu", "finite"),
    (["link.relay=true", "link.relay_cpu=12 microseconds"], "link.relay_cpu", "duration"),
    (["link.relay=true", "link.relay_wakeup_cpu=-1us"], "link.relay_wakeup_cpu", ">= 0"),
    (["link.relay=true", "link.relay_wakeup_cpu=inf"], "link.relay_wakeup_cpu", "finite"),
    (["link.relay=true", "link.relay_wakeup_cpu=8 microseconds"], "link.relay_wakeup_cpu", "duration"),
    # broker
    (["broker.partitions=0"], "broker.partitions", ">= 1"),
    (["broker.partitions=1e9"], "broker.partitions", "<="),
    (["broker.partitions=-0"], "broker.partitions", "negative zero"),
    (["broker.partitions=2.5"], "broker.partitions", "whole number"),
    (["broker.read_cpu=-1us"], "broker.read_cpu", ">= 0"),
    (["broker.read_cpu=nan"], "broker.read_cpu", "finite"),
    (["broker.service_time=-1us"], "broker.service_time", ">= 0"),
    (["broker.service_time=inf"], "broker.service_time", "finite"),
    (["broker.service_time=-0"], "broker.service_time", "negative zero"),
    (["broker.service_dist=gamma"], "broker.service_dist", "lognormal"),
    (["broker.service_dist=lognormal", "broker.service_cv=0"], "broker.service_cv", "> 0"),
    (["broker.service_dist=lognormal", "broker.service_cv=-1"], "broker.service_cv", "> 0"),
    (["broker.service_dist=lognormal", "broker.service_cv=1e200"], "broker.service_cv", "<= 100"),
    (["broker.service_dist=lognormal", "broker.service_cv=inf"], "broker.service_cv", "finite"),
    (["broker.service_dist=lognormal", "broker.service_cv=nan"], "broker.service_cv", "NaN"),
    (["broker.ack_bytes=-1"], "broker.ack_bytes", ">= 0"),
    (["broker.ack_bytes=1.5"], "broker.ack_bytes", "whole number"),
    (["broker.read_mode=batch"], "broker.read_mode", "batched"),
    (["broker.read_mode=true"], "broker.read_mode", "per_message"),
    (["broker.read_bytes=63"], "broker.read_bytes", ">= 64"),
    (["broker.read_bytes=0"], "broker.read_bytes", ">= 64"),
    (["broker.read_bytes=-64KiB"], "broker.read_bytes", ">= 64"),
    (["broker.read_bytes=1.5KiBB"], "broker.read_bytes", "unit"),
    (["broker.read_bytes=inf"], "broker.read_bytes", "finite"),
    (["broker.wakeup_cpu=-1us"], "broker.wakeup_cpu", ">= 0"),
    (["broker.wakeup_cpu=nan"], "broker.wakeup_cpu", "finite"),
    (["broker.wakeup_cpu=-0"], "broker.wakeup_cpu", "negative zero"),
    (["broker.wakeup_cpu=97 furlongs"], "broker.wakeup_cpu", "unit"),
    (["broker.read_cv=-0.5"], "broker.read_cv", ">= 0"),
    (["broker.read_cv=101"], "broker.read_cv", "<= 100"),
    (["broker.read_cv=nan"], "broker.read_cv", "NaN"),
    (["broker.read_cv=inf"], "broker.read_cv", "finite"),
    (["broker.read_cv=high"], "broker.read_cv", "number"),
    # hosts: shared cores
    (["client.host_cores=0"], "client.host_cores", ">= 1"),
    (["client.host_cores=1.5"], "client.host_cores", "whole number"),
    (["client.host_cores=-0"], "client.host_cores", "negative zero"),
    (["client.host_cores=many"], "client.host_cores", "number"),
    (["client.host_cores=1e9"], "client.host_cores", "<="),
    (["client.hosts=0"], "client.hosts", ">= 1"),
    (["client.hosts=none"], "client.hosts", "integer"),
    (["client.hosts=2.5"], "client.hosts", "whole number"),
    (["broker.cores=0"], "broker.cores", ">= 1"),
    (["broker.cores=-2"], "broker.cores", ">= 1"),
    (["broker.cores=inf"], "broker.cores", "whole number"),
    (["broker.colocated=maybe"], "broker.colocated", "boolean"),
    (["broker.colocated=2"], "broker.colocated", "boolean"),
    (["client.host_cores=2", "broker.colocated=true", "broker.cores=4"], "broker.cores", "not both"),
    # run
    (["run.seed=-1"], "run.seed", ">= 0"),
    (["run.seed=true"], "run.seed", "number"),
    (["run.seed=1.5"], "run.seed", "whole number"),
    (["run.seed=lucky"], "run.seed", "number"),
    (["run.duration=0"], "run.duration", "> 0"),
    (["run.duration=-1s"], "run.duration", "> 0"),
    (["run.duration=inf"], "run.duration", "finite"),
    (["run.duration=-0"], "run.duration", "negative zero"),
    (["run.bin=0"], "run.bin", "> 0"),
    (["run.bin=-1ms"], "run.bin", "> 0"),
    (["run.bin=nan"], "run.bin", "finite"),
    (["run.records=some"], "run.records", "summary"),
    # keys
    (["producer.windw=5"], "producer.windw", "did you mean producer.window"),
    (["link.rttt=5ms"], "link.rttt", "did you mean link.rtt"),
    (["foo.bar=1"], "foo.bar", "unknown key"),
    (["producer=1"], "producer", "unknown key"),
    (["producer.mode.extra=1"], "producer.mode.extra", "unknown key"),
    (["=5"], "=5", "KEY=VALUE"),
    (["link.rtt"], "link.rtt", "KEY=VALUE"),
    (["Link.RTT=5ms"], "Link.RTT", "unknown key"),
]

# keys whose error comes from a consistency rule rather than the key's own value: the plan command may
# override them itself, so only simulate and the API see them in the plain form
ABSURD_CASES = [
    # (assignments, key, word): valid values whose run would never end or never fit
    (["producer.rate=1e-300"], "producer.rate", "years"),
    (["producer.payload_bytes=1e30"], "producer.payload_bytes", "years"),
    (["producer.start_jitter=1e300"], "producer.start_jitter", "years"),
    (["client.send_cpu=1e300"], "client.send_cpu", "years"),
    (["broker.service_time=1e20"], "broker.service_time", "years"),
    (["link.bandwidth=1e-20"], "producer.payload_bytes", "years"),
    (["producer.messages=100000000000000000000"], "producer.messages", "years"),
    (["run.bin=1ns", "run.records=summary"], "run.bin", "bins"),
    (["producer.messages=none", "run.duration=1e8", "producer.mode=nonblocking"], "run.duration", "CPU"),
    (["producer.mode=nonblocking", "producer.messages=10000000000"], "producer.messages", "memory"),
    (["broker.read_mode=batched", "broker.read_bytes=64", "producer.payload_bytes=1GiB", "producer.messages=100000",
      "link.bandwidth=inf"], "producer.messages", "CPU"),
    (["producer.messages=none", "run.duration=1s", "producer.mode=nonblocking", "link.rtt=0", "client.send_cpu=0",
      "client.ack_cpu=0", "broker.read_cpu=0", "broker.service_time=0", "link.bandwidth=inf"],
     "producer.messages", "endless"),
]


def _argv(command: list[str], assignments: list[str]) -> list[str]:
    argv = list(command)
    for item in assignments:
        argv += ["--set", item]
    return argv


def one_error_line(capsys, code: int) -> str:
    out, err = capsys.readouterr()
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if not line.startswith("sim: warning:")]
    assert len(lines) == 1, err
    assert lines[0].startswith("sim: error: "), err
    return lines[0]


def test_every_config_key_has_bad_values_in_the_table():
    """A key added to the config without bad-input cases here fails this test."""
    from sim import build_config

    covered = {key for _, key, _ in SET_CASES}
    assert set(build_config({}).flat()) <= covered, sorted(set(build_config({}).flat()) - covered)


@pytest.mark.parametrize("assignments,key,word", SET_CASES, ids=[" ".join(c[0]) for c in SET_CASES])
def test_simulate_rejects_with_one_clear_line(assignments, key, word, capsys):
    line = one_error_line(capsys, main(_argv(["simulate"], assignments)))
    assert key in line and word in line, line


@pytest.mark.parametrize("assignments,key,word", SET_CASES, ids=[" ".join(c[0]) for c in SET_CASES])
def test_plan_rejects_with_one_clear_line(assignments, key, word, capsys):
    line = one_error_line(capsys, main(_argv(["plan", "--rate", "100"], assignments)))
    assert key in line and word in line, line


@pytest.mark.parametrize("assignments,key,word", SET_CASES, ids=[" ".join(c[0]) for c in SET_CASES])
def test_python_api_raises_config_error(assignments, key, word):
    try:
        overrides = parse_assignments(assignments)
    except ConfigError as exc:  # the malformed KEY=VALUE cases fail here already
        assert exc.key == key
        return
    with pytest.raises(ConfigError) as info:
        build_config(overrides)
    assert info.value.key == key
    assert isinstance(info.value, ValueError)
    assert word in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("assignments,key,word", ABSURD_CASES, ids=[" ".join(c[0]) for c in ABSURD_CASES])
def test_absurd_work_is_refused_up_front(assignments, key, word, capsys):
    line = one_error_line(capsys, main(_argv(["simulate"], assignments)))
    assert key in line and word in line, line


@pytest.mark.parametrize("assignments,key,word", ABSURD_CASES, ids=[" ".join(c[0]) for c in ABSURD_CASES])
def test_absurd_work_is_refused_by_run(assignments, key, word):
    config = build_config(parse_assignments(assignments))  # valid key by key
    with pytest.raises(TooMuchWork) as info:
        run(config)
    assert info.value.key == key and word in str(info.value)


# -- config files --------------------------------------------------------------------------------------------

CONFIG_FILES = [
    # (file bytes, a word the line must contain)
    (b"link = [\n", "not valid TOML"),
    (b'[link]\nrtt = "fast"\n', "link.rtt = fast"),
    (b"\xff\xfe[link]\n", "not UTF-8"),
    (b"a = " + b"[" * 3000 + b"]" * 3000 + b"\n", "nested too deeply"),
    (b"a" + b".a" * 40 + b" = 1\n", "nested more than"),
    (b"[link]\nrttt = 1\n", "did you mean link.rtt"),
    (b"[producer]\nwindow = [1, 2]\n", "producer.window"),
    (b"[producer]\nmessages = 99999999999999999999999999\n", "years"),
    (b"[producer]\nmessages = 1e999\n", "whole number"),
    (b"[producer]\nmode = 3\n", "producer.mode"),
    (b'[link]\nrtt = {value = "1ms"}\n', "link.rtt.value"),
    (b"clients = 0\n", "clients"),
    (b"[run]\nseed = -1\n", "run.seed"),
    (b'[run]\nduration = "forever"\n', "run.duration"),
    (b"[link]\nrtt = -0.0\n", "negative zero"),
    (b"[link]\nrtt = nan\n", "link.rtt"),
    (b"[link]\nbandwidth = -inf\n", "link.bandwidth"),
    (b"[broker]\npartitions = true\n", "broker.partitions"),
    (b"[broker.partitions]\nx = 1\n", "broker.partitions.x"),
    (b"link.rtt = 1\nlink.rtt = 2\n", "not valid TOML"),
]


@pytest.mark.parametrize("content,word", CONFIG_FILES, ids=[c[1] + str(i) for i, c in enumerate(CONFIG_FILES)])
def test_bad_config_files(tmp_path, capsys, content, word):
    path = tmp_path / "config.toml"
    path.write_bytes(content)
    line = one_error_line(capsys, main(["simulate", "--config", str(path)]))
    assert word in line, line


def test_missing_and_empty_config_file_names(tmp_path, capsys):
    assert "cannot read" in one_error_line(capsys, main(["simulate", "--config", str(tmp_path / "nope.toml")]))
    assert "file name is empty" in one_error_line(capsys, main(["simulate", "--config", ""]))
    assert "cannot read" in one_error_line(capsys, main(["simulate", "--config", str(tmp_path)]))


# -- sweep files --------------------------------------------------------------------------------------------

SWEEP_FILES = [
    ("replications = 0\n[factors]\nclients = [1]\n", "replications"),
    ("replications = -3\n[factors]\nclients = [1]\n", "replications"),
    ("replications = 1e8\n[factors]\nclients = [1]\n", "replications"),
    ("replications = 2.5\n[factors]\nclients = [1]\n", "replications"),
    ('replications = "3"\n[factors]\nclients = [1]\n', "replications"),
    ("replications = true\n[factors]\nclients = [1]\n", "replications"),
    ("replications = 100000000\n[factors]\nclients = [1]\n", "at most"),
    ("seed = -1\n[factors]\nclients = [1]\n", "seed"),
    ('seed = "x"\n[factors]\nclients = [1]\n', "seed"),
    ("seed = 1.5\n[factors]\nclients = [1]\n", "seed"),
    ("seed = inf\n[factors]\nclients = [1]\n", "seed"),
    ("seed = true\n[factors]\nclients = [1]\n", "seed"),
    ("base = 5\n[factors]\nclients = [1]\n", "base"),
    ('base = "link.rtt=1ms"\n[factors]\nclients = [1]\n', "base"),
    ("factors = [1, 2]\n", "factors"),
    ("factors = 3\n", "factors"),
    ("[factors]\nclients = 3\n", "factors.clients"),
    ("[factors]\nclients = []\n", "factors.clients"),
    ('[factors]\n"link.rttt" = ["1ms"]\n', "link.rttt"),
    ('[factors]\n"link.rtt" = ["1ms", "soon"]\n', "link.rtt"),
    ('[base]\n"link.rtt" = "soon"\n', "link.rtt"),
    ('colour = "blue"\n', "colour"),
    ('[factors]\n"run.seed" = [1, 2]\n', "run.seed"),
    ("output = 5\n[factors]\nclients = [1]\n", "output"),
    ('output = ""\n[factors]\nclients = [1]\n', "output"),
    ("[factors]\n" + "\n".join(f'"f{i}" = [{", ".join(str(j) for j in range(10))}]' for i in range(10)), "at most"),
    ("[factors]\nclients = [" + ", ".join(str(i) for i in range(1, 11)) + "]\n"
     + '"producer.messages" = [1000000000000]\n', "years"),
    ('[factors]\n"producer.mode" = ["nonblocking"]\n"producer.window" = [0, 1]\n', "producer.window"),
    ("[factors\n", "not valid TOML"),
    ('[base]\n"producer.rate" = 1e-300\n[factors]\nclients = [1]\n', "years"),
    ('replications = 100\n[base]\n"producer.mode" = "nonblocking"\n"run.records" = "summary"\n'
     '"producer.messages" = 10000000000\n[factors]\n"link.rtt" = ["1ms", "2ms"]\n', "of CPU"),
]


@pytest.mark.parametrize("text,word", SWEEP_FILES, ids=[f"{i}-{c[1]}" for i, c in enumerate(SWEEP_FILES)])
def test_bad_sweep_files(tmp_path, capsys, text, word):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    line = one_error_line(capsys, main(["sweep", str(path), "--out", str(tmp_path / "x.csv"), "--no-cache"]))
    assert word in line, line
    assert not (tmp_path / "x.csv").exists()


# -- output paths, checked before anything runs ---------------------------------------------------------------

PATHS = [
    # (argv with {d} = a temporary directory, {f} = a file in it, a word the line must contain)
    (["simulate", "--messages-csv", "{d}"], "is a directory"),
    (["simulate", "--messages-csv", "{d}/missing/x.csv"], "does not exist"),
    (["simulate", "--messages-csv", "{f}/x.csv"], "not a directory"),
    (["simulate", "--messages-csv", ""], "file name"),
    (["simulate", "--timeseries-csv", "{d}"], "is a directory"),
    (["simulate", "--timeseries-csv", "{d}/missing/x.csv"], "does not exist"),
    (["simulate", "--timeseries-csv", "/proc/sim-cannot-write.csv"], "cannot write"),
    (["simulate", "--messages-csv", "/proc/sim-cannot-write.csv"], "cannot write"),
    (["simulate", "--set", "run.records=summary", "--messages-csv", "{d}/m.csv"], "run.records"),
    (["sweep", "{sweep}", "--out", "{d}"], "is a directory"),
    (["sweep", "{sweep}", "--out", "{d}/missing/x.csv"], "does not exist"),
    (["sweep", "{sweep}", "--out", "/proc/sim-cannot-write.csv"], "cannot write"),
    (["sweep", "{sweep}", "--out", "{d}/x.csv", "--cache-dir", "{f}"], "is a file"),
    (["sweep", "{sweep}", "--out", "{d}/x.csv", "--cache-dir", "/proc/sim-cache"], "cannot write"),
    (["sweep", "{d}/missing.toml"], "cannot read"),
    (["sweep", "{d}"], "cannot read"),
    (["scenario", "sequential", "--quick", "--out", "{f}"], "is a file"),
    (["scenario", "sequential", "--quick", "--out", "/proc/sim-out"], "cannot write"),
    (["scenario", "sequential", "--from-csv", "{d}/missing.csv", "--out", "{d}"], "cannot read"),
    (["scenario", "partitions", "--from-csv", "{headline}", "--out", "{d}"], "not a table of scenario"),
    (["scenario", "sequential", "--from-csv", "{f}", "--out", "{d}"], "--from-csv"),
    (["figures", "--quick", "--out", "{f}"], "is a file"),
    (["figures", "--quick", "--out", "/proc/sim-figures"], "cannot write"),
    (["cache", "--cache-dir", "{f}"], "is a file"),
    (["calibrate", "{d}/m.csv", "--out", "{d}"], "is a directory"),
    (["calibrate", "{d}/m.csv", "--out", "/proc/sim-calibrated.toml"], "cannot write"),
    (["calibrate", "{d}/m.csv", "--out", "{d}/missing/c.toml"], "does not exist"),
    (["validate", "{d}/m.csv", "--config", "{d}/c.toml", "--figure", "{d}"], "is a directory"),
    (["validate", "{d}/m.csv", "--config", "{d}/c.toml", "--figure", "/proc/sim-v.png"], "cannot write"),
    (["measure", "--out", "{d}"], "is a directory"),
    (["measure", "--out", "{f}/x.csv"], "not a directory"),
]


@pytest.mark.parametrize("argv,word", PATHS, ids=[f"{i}-{c[1]}" for i, c in enumerate(PATHS)])
def test_output_paths_are_checked_first(tmp_path, capsys, argv, word):
    afile = tmp_path / "a-file"
    afile.write_text("not a directory\n")
    sweep = tmp_path / "s.toml"
    sweep.write_text('[base]\n"producer.messages" = 5\n[factors]\nclients = [1, 2]\n')
    headline = tmp_path / "headline.csv"
    headline.write_text("case,throughput_msgs_per_s\nsync,30\n")
    values = {"d": str(tmp_path), "f": str(afile), "sweep": str(sweep), "headline": str(headline)}
    line = one_error_line(capsys, main([a.format(**values) for a in argv]))
    assert word in line, line


FIGURES = Path(__file__).resolve().parent.parent / "figures"
WRONG_TABLES = [(scenario, table) for scenario in ("partitions", "headline", "saturation", "concurrent", "sequential")
                for table in ("headline", "partitions", "saturation") if scenario != table]


@pytest.mark.parametrize("scenario,table", WRONG_TABLES, ids=[f"{s}<-{t}" for s, t in WRONG_TABLES])
def test_another_scenarios_table_is_one_line_and_writes_nothing(tmp_path, capsys, scenario, table):
    line = one_error_line(capsys, main(["scenario", scenario, "--from-csv", str(FIGURES / f"{table}.csv"),
                                        "--out", str(tmp_path / "out")]))
    assert f"not a table of scenario {scenario}" in line, line
    assert list((tmp_path / "out").iterdir()) == []


# -- the other commands ---------------------------------------------------------------------------------------

COMMANDS = [
    (["frobnicate"], "invalid choice"),
    (["simulate", "--sett", "x=1"], "unrecognized"),
    ([], "required"),
    (["scenario", "nonesuch"], "unknown"),
    (["scenario"], "required"),
    (["scenario", "sequential", "--workers", "0"], "--workers"),
    (["scenario", "sequential", "--workers", "-2"], "--workers"),
    (["scenario", "sequential", "--workers", "two"], "invalid int"),
    (["figures", "--workers", "0"], "--workers"),
    (["sweep"], "required"),
    (["sweep", "x.toml", "--backend", "ray"], "invalid choice"),
    (["sweep", "x.toml", "--scheduler", "tcp://127.0.0.1:1"], "--backend dask"),
    (["sweep", "x.toml", "--workers", "0"], "--workers"),
    (["plan"], "--rate"),
    (["plan", "--rate", "0"], "--rate"),
    (["plan", "--rate", "-5"], "--rate"),
    (["plan", "--rate", "lots"], "invalid float"),
    (["plan", "--rate", "100", "--rtt", "far"], "link.rtt"),
    (["plan", "--rate", "100", "--rtt", "-0"], "negative zero"),
    (["plan", "--rate", "100", "--p99", "soon"], "--p99"),
    (["plan", "--rate", "100", "--p99", "0"], "--p99"),
    (["plan", "--rate", "100", "--loss", "1"], "link.loss"),
    (["plan", "--rate", "100", "--bandwidth", "0"], "link.bandwidth"),
    (["plan", "--rate", "100", "--payload", "-1"], "producer.payload_bytes"),
    (["plan", "--rate", "100", "--ack-wait", "0"], "producer.ack_wait"),
    (["plan", "--rate", "100", "--max-producers", "0"], "--max-"),
    (["plan", "--rate", "100", "--max-processes", "0"], "--max-"),
    (["plan", "--max-rate", "--set", "link.rtt=-1"], "link.rtt"),
    (["list", "nothing"], "invalid choice"),
    (["cache", "explode"], "invalid choice"),
    (["simulate", "--engine", "turbo"], "invalid choice"),
    (["simulate", "--set", "link.relay=true", "--set", "producer.payload_bytes=4KiB"], "link.window_bytes"),
    (["simulate", "--engine", "simpy", "--set", "producer.messages=1000000000", "--set", "run.records=summary",
      "--set", "producer.mode=nonblocking"], "CPU"),
]


@pytest.mark.parametrize("argv,word", COMMANDS, ids=[" ".join(c[0]) or "(none)" for c in COMMANDS])
def test_commands_reject_with_one_clear_line(argv, word, capsys):
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors: one line, exit 2
        code = exc.code
    out, err = capsys.readouterr()
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert word in err, err
    assert "Traceback" not in err


# -- the Python API ----------------------------------------------------------------------------------------------

API_CASES = [
    ("build_config('x')", lambda: build_config("x"), "overrides"),
    ("build_config([('link.rtt', 1)])", lambda: build_config([("link.rtt", 1)]), "overrides"),
    ("build_config({1: 2})", lambda: build_config({1: 2}), "dotted string"),
    ("build_config({None: 2})", lambda: build_config({None: 2}), "dotted string"),
    ("build_config(base={})", lambda: build_config({}, base={}), "SimConfig"),
    ("build_config(window=[1, 2])", lambda: build_config({"producer.window": [1, 2], "producer.mode": "nonblocking"}),
     "producer.window"),
    ("build_config(rtt=object())", lambda: build_config({"link.rtt": object()}), "link.rtt"),
    ("build_config(clients=None)", lambda: build_config({"clients": None}), "clients"),
    ("build_config(bandwidth=True)", lambda: build_config({"link.bandwidth": True}), "boolean"),
    ("build_config(rtt=-0.0)", lambda: build_config({"link.rtt": -0.0}), "negative zero"),
    ("build_config(rtt=nan)", lambda: build_config({"link.rtt": math.nan}), "finite"),
    ("run(messages=10**400)", lambda: run(build_config({"producer.messages": 10**400})), "producer.messages"),
    ("build_config(messages=2.0**1000)", lambda: run(build_config({"producer.messages": 2.0**1000})),
     "producer.messages"),
    ("run('x')", lambda: run("x"), "SimConfig"),
    ("run(5)", lambda: run(5), "SimConfig"),
    ("run({'link.rttt': 1})", lambda: run({"link.rttt": 1}), "link.rttt"),
    ("run(link__rtt='soon')", lambda: run(link__rtt="soon"), "link.rtt"),
    ("run(nonsense=1)", lambda: run(nonsense=1), "nonsense"),
    ("replace({'x': 1})", lambda: build_config().replace({"x": 1}), "unknown key"),
    ("Sweep(base='x')", lambda: _sweep(base="x"), "base"),
    ("Sweep(factors={'clients': 3})", lambda: _sweep(factors={"clients": 3}), "factors.clients"),
    ("Sweep(factors={1: [1]})", lambda: _sweep(factors={1: [1]}), "dotted string"),
    ("Sweep(replications=0)", lambda: _sweep(replications=0), "replications"),
    ("Sweep(replications=1.0)", lambda: _sweep(replications=1.0), "replications"),
    ("Sweep(seed=-1)", lambda: _sweep(seed=-1), "seed"),
    ("Sweep(seed='x')", lambda: _sweep(seed="x"), "seed"),
    ("Sweep(10**10 runs)", lambda: _sweep(factors={f"k{i}": list(range(10)) for i in range(10)}), "at most"),
    ("result.messages in summary mode", lambda: run({"producer.messages": 5, "run.records": "summary"}).messages,
     "run.records"),
    ("scenarios.get('x')", lambda: __import__("sim.scenarios", fromlist=["get"]).get("x"), "unknown"),
    ("parallel workers", lambda: __import__("sim.sweep", fromlist=["x"])._execute([], 1, "ray", None, False),
     "backend"),
]


def _sweep(**kwargs):
    from sim.sweep import Sweep

    return Sweep(**kwargs)


@pytest.mark.parametrize("what,call,word", API_CASES, ids=[c[0] for c in API_CASES])
def test_python_api_raises_one_line_value_errors(what, call, word):
    with pytest.raises(InputError) as info:
        call()
    assert isinstance(info.value, ValueError)
    text = str(info.value)
    assert word in text and "\n" not in text, text


def test_config_error_pickles_whole():
    import pickle

    error = ConfigError("link.rtt", "-1", "must be >= 0")
    again = pickle.loads(pickle.dumps(error))
    assert (again.key, again.value, again.problem, str(again)) == (error.key, error.value, error.problem, str(error))
    refusal = pickle.loads(pickle.dumps(TooMuchWork("run.bin", 1e-9, "too many bins")))
    assert isinstance(refusal, TooMuchWork)


# -- end to end: a real process, no traceback ----------------------------------------------------------------------


@pytest.mark.parametrize("argv", [
    ["frobnicate"], ["simulate", "--sett", "x=1"], [], ["simulate", "--set", "link.loss=2"],
    ["simulate", "--set", "producer.rate=1e-300"], ["simulate", "--set", "link.rtt=-0"],
])
def test_end_to_end_one_line_exit_2(argv):
    proc = subprocess.run([sys.executable, "-m", "sim", *argv], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_bad_value_end_to_end_message():
    proc = subprocess.run([sys.executable, "-m", "sim", "simulate", "--set", "link.loss=2"], capture_output=True,
                          text=True, timeout=60)
    assert proc.stderr.strip() == "sim: error: link.loss = 2: must be < 1 (allowed: a number >= 0 and < 1)"


# -- internal errors: one line and a hint, the traceback only with --debug --------------------------------------------


def test_internal_error_is_one_line_with_a_hint(monkeypatch, capsys):
    import sim.results

    def broken(*args, **kwargs):
        raise ZeroDivisionError("float division by zero")

    monkeypatch.setattr(sim.results, "run", broken)
    assert main(["simulate"]) == 70
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "sim: internal error: ZeroDivisionError: float division by zero (a bug: please report it with the command "
        "line; --debug shows the traceback)"]
    assert main(["simulate", "--debug"]) == 70
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "broken" in err
    assert err.strip().splitlines()[-1].startswith("sim: internal error: ZeroDivisionError")


# -- keys that will be ignored: a warning line each, and the run goes on -------------------------------------------

WARNINGS = [
    (["producer.limiter_poll=5ms"], "producer.limiter_poll"),
    (["producer.partition=1", "broker.partitions=2", "producer.partition=2"], "producer.partition"),
    (["producer.key_space=10"], "producer.key_space"),
    (["producer.partitioning=fixed", "producer.key_space=10"], "producer.key_space"),
    (["producer.arrivals=constant"], "producer.arrivals"),
    (["broker.service_cv=0.5"], "broker.service_cv"),
    (["client.wakeup_cpu=117us"], "client.wakeup_cpu"),
    (["link.jitter_cv=2"], "link.jitter_cv"),
    (["broker.read_bytes=8KiB"], "broker.read_bytes"),
    (["client.hosts=2"], "client.hosts"),
    (["broker.colocated=true"], "broker.colocated"),
    (["link.relay_cpu=12us"], "link.relay_cpu"),
    (["client.iteration_cpu=15us"], "client.iteration_cpu"),
    (["client.gc_pause=8ms"], "client.gc_pause"),
    (["client.gc_message_cpu=6us"], "client.gc_message_cpu"),
    (["client.gc_full_every=10"], "client.gc_full_every"),
]


@pytest.mark.parametrize("assignments,key", WARNINGS, ids=[" ".join(c[0]) for c in WARNINGS])
def test_ignored_keys_are_warned_about(assignments, key, capsys):
    assert main(_argv(["simulate", "--json"], ["producer.messages=3"] + assignments)) == 0
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sim: warning: ") and key in lines[0] and "ignored" in lines[0]
    assert json.loads(out)["acked"] == 3
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        build_config(parse_assignments(assignments))
    assert [w.category for w in caught] == [ConfigWarning]


def test_default_values_spelled_out_are_not_warned_about():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        config = build_config({"producer.limiter_poll": "100ms", "producer.key_space": 1024})
        build_config(config.flat())  # a resolved config lists every key


def test_empty_config_file_and_sweep_without_factors_warn(tmp_path, capsys):
    empty = tmp_path / "empty.toml"
    empty.write_text("# nothing here\n")
    assert main(["simulate", "--config", str(empty), "--set", "producer.messages=2"]) == 0
    assert "holds no settings" in capsys.readouterr().err
    sweep = tmp_path / "s.toml"
    sweep.write_text('replications = 2\n[base]\n"producer.messages" = 3\n')
    assert main(["sweep", str(sweep), "--out", str(tmp_path / "s.csv"), "--no-cache", "--workers", "1"]) == 0
    assert "no [factors]" in capsys.readouterr().err


# -- edge cases that must run and give sane numbers ---------------------------------------------------------------


def test_infinite_bandwidth_is_strict_json(capsys):
    assert main(["simulate", "--json", "--set", "link.bandwidth=inf", "--set", "link.downlink_bandwidth=inf",
                 "--set", "producer.messages=20", "--set", "link.rtt=10ms"]) == 0
    text = capsys.readouterr().out
    assert "Infinity" not in text and "NaN" not in text
    data = json.loads(text)
    assert data["config"]["link.bandwidth"] == "inf" and data["config"]["link.downlink_bandwidth"] == "inf"
    assert data["acked"] == 20
    assert data["makespan_s"] == pytest.approx(20 * (0.010 + 45e-6 + 1.5e-6 + 5e-6), rel=1e-9)
    # the printed config goes back in as it is
    flat = {k: v for k, v in data["config"].items()}
    assert build_config(flat).link.bandwidth == math.inf


def test_undefined_numbers_are_null(capsys):
    # every message times out: no latency exists
    assert main(["simulate", "--json", "--set", "producer.messages=3", "--set", "link.rtt=1s",
                 "--set", "producer.ack_wait=10ms"]) == 0
    text = capsys.readouterr().out
    data = json.loads(text)
    assert data["timed_out"] == 3 and data["latency_ms"]["p50"] is None and "NaN" not in text


def test_json_from_the_planner_is_strict(capsys):
    code = main(["plan", "--max-rate", "--json", "--set", "link.bandwidth=inf", "--set", "link.rtt=10ms"])
    text = capsys.readouterr().out
    assert code in (0, 1)
    json.loads(text)
    assert "Infinity" not in text and "NaN" not in text


@pytest.mark.parametrize("assignments,check", [
    (["link.rtt=0", "link.bandwidth=inf", "producer.messages=10"], lambda s: s["acked"] == 10),
    (["link.rtt=1ns", "clients=2", "producer.messages=50"], lambda s: s["acked"] == 100),
    (["link.window_bytes=1460", "producer.payload_bytes=1400", "producer.overhead_bytes=0", "producer.messages=5",
      "producer.mode=nonblocking"], lambda s: s["acked"] == 5),
    (["link.mss_bytes=88", "link.loss=0.5", "producer.messages=5"], lambda s: s["acked"] == 5),
    (["link.loss=0.999999", "producer.messages=3"], lambda s: s["acked"] == 3),
    (["producer.messages=1"], lambda s: s["acked"] == 1 and s["makespan_s"] > 0.033),
    (["producer.payload_bytes=0", "producer.overhead_bytes=0", "broker.ack_bytes=0", "producer.messages=4"],
     lambda s: s["acked"] == 4),
    (["broker.service_dist=lognormal", "broker.service_cv=100", "producer.messages=50"], lambda s: s["acked"] == 50),
    (["producer.rate=0.001", "producer.messages=3"], lambda s: s["acked"] == 3 and s["makespan_s"] > 1),
    (["run.duration=1ns"], lambda s: s["sent"] <= 1 and s["makespan_s"] == 1e-9),
    (["producer.start_jitter=1000s", "producer.messages=2"], lambda s: s["acked"] == 2),
    (["clients=64", "producer.messages=5", "producer.mode=nonblocking"], lambda s: s["acked"] == 320),
    (["broker.partitions=1000", "producer.messages=5"], lambda s: s["acked"] == 5),
    (["producer.key_space=4611686018427387904", "producer.partitioning=key", "broker.partitions=3",
      "producer.messages=10"], lambda s: s["acked"] == 10),
    (["run.bin=1ns", "producer.messages=2", "link.rtt=1us"], lambda s: s["acked"] == 2),
    (["broker.read_mode=batched", "producer.payload_bytes=0", "producer.overhead_bytes=0", "producer.messages=20",
      "producer.mode=nonblocking", "broker.wakeup_cpu=97us"], lambda s: s["acked"] == 20),
    (["broker.read_mode=batched", "broker.read_bytes=64", "producer.payload_bytes=1MiB", "producer.messages=2",
      "broker.wakeup_cpu=1us"], lambda s: s["acked"] == 2 and s["makespan_s"] > 2 * 16384e-6),
    (["broker.read_mode=batched", "broker.read_cv=100", "broker.wakeup_cpu=97us", "producer.messages=50",
      "link.rtt=0", "link.bandwidth=inf"], lambda s: s["acked"] == 50),
])
def test_edge_cases_run_and_give_sane_numbers(assignments, check, capsys):
    assert main(_argv(["simulate", "--json"], assignments)) == 0
    out, err = capsys.readouterr()
    summary = json.loads(out)
    assert summary["acked"] + summary["timed_out"] + summary["in_flight"] == summary["sent"]
    assert check(summary), summary


def test_outputs_are_written_where_asked(tmp_path, capsys):
    messages, series = tmp_path / "m.csv", tmp_path / "t.csv"
    assert main(["simulate", "--set", "producer.messages=7", "--messages-csv", str(messages),
                 "--timeseries-csv", str(series)]) == 0
    assert len(messages.read_text().splitlines()) == 8 and series.read_text().startswith("t_s")


def test_nothing_is_written_when_the_input_is_bad(tmp_path, capsys):
    messages = tmp_path / "m.csv"
    assert main(["simulate", "--set", "link.rtt=-1", "--messages-csv", str(messages)]) == 2
    assert not messages.exists()
    assert main(["simulate", "--set", "producer.rate=1e-300", "--messages-csv", str(messages)]) == 2
    assert not messages.exists()
    assert sorted(Path(tmp_path).iterdir()) == []


def test_strict_json_encoding_of_non_finite_numbers():
    import numpy as np

    from sim.jsonsafe import dumps

    text = dumps({"a": math.inf, "b": [-math.inf, math.nan, 1.5], "c": {"d": np.float64("nan"), "e": np.int64(3)},
                  "f": (np.float32("inf"),), "g": None, "h": "inf"})
    assert json.loads(text) == {"a": "inf", "b": ["-inf", None, 1.5], "c": {"d": None, "e": 3}, "f": ["inf"],
                                "g": None, "h": "inf"}
    assert "Infinity" not in text and "NaN" not in text


def test_measurement_tables_with_and_without_the_proxy_column(tmp_path, capsys):
    """proxy_cpu_us_per_msg is optional (older tables lack it: read as NaN); when present it must be a number."""
    from sim.measure import COLUMNS, read_table

    row = dict(mode="window", rtt_ms=5.03, window=100, limit="", producers=1, partitions=1, messages=1000,
               ack_wait_s=15.0, payload_bytes=512, throughput_msgs_per_s=9000.0, p50_ms=6.0, p99_ms=9.0, timeouts=0,
               stored=1000, client_cpu_us_per_msg=50.0, server_cpu_us_per_msg=35.0, repeat=0, host_cores=2,
               colocated=True)
    old = tmp_path / "old.csv"
    old.write_text(",".join(COLUMNS) + "\n" + ",".join(str(row[c]) for c in COLUMNS) + "\n")
    assert math.isnan(read_table(str(old))["proxy_cpu_us_per_msg"][0])
    new = tmp_path / "new.csv"
    header, values = COLUMNS + ["proxy_cpu_us_per_msg"], [str(row[c]) for c in COLUMNS]
    new.write_text(",".join(header) + "\n" + ",".join(values + ["31.5"]) + "\n" + ",".join(values + [""]) + "\n")
    read = read_table(str(new))["proxy_cpu_us_per_msg"]
    assert read[0] == 31.5 and math.isnan(read[1])
    bad = tmp_path / "bad.csv"
    bad.write_text(",".join(header) + "\n" + ",".join(values + ["31.5"]) + "\n" + ",".join(values + ["lots"]) + "\n")
    line = one_error_line(capsys, main(["calibrate", str(bad), "-o", str(tmp_path / "c.toml")]))
    assert line == f"sim: error: {bad}: proxy_cpu_us_per_msg = lots (row 2): expected a number or empty"
    assert not (tmp_path / "c.toml").exists()
