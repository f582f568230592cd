"""A deliberately naive model of the same system, written for clarity, not speed.

One SimPy process per message walks it through one ``simpy.Resource`` per
server (client CPU, shared uplink, read loop, partition stage, shared
downlink), a ``simpy.Store`` of tokens per connection for its TCP window, and one timeout process per message for ``ack_wait``. One process
per producer runs the flow control (sync, window, the SDK's drain-to-half
limiter with its poll, open-loop arrivals).

It shares only the random streams with the engine (``System.streams()``), so
the partition stages draw the same service times in the order they serve. The
engine must reproduce its per-message times; see ``test_oracle.py``.

Simultaneous events follow the model's rule: at one instant, timers (a
producer's start, open-loop arrival or limiter poll, and every ack deadline)
fire after everything else that happens then. SimPy orders events by (time,
priority, scheduling order), so timers here get a priority below SimPy's
NORMAL.
"""

from __future__ import annotations

import math

import simpy

from sim.config import SimConfig
from sim.model.records import LATE
from sim.model.system import System

IN_FLIGHT, ACKED, TIMED_OUT = "in_flight", "acked", "timed_out"
TIMER_PRIORITY = 2  # after simpy's URGENT (0) and NORMAL (1)


class Timer(simpy.Timeout):
    """A timeout that fires after every other event at its instant."""

    def __init__(self, env: simpy.Environment, delay: float):
        self.env = env
        self.callbacks = []
        self._value = None
        self._delay = delay
        self._ok = True
        env.schedule(self, TIMER_PRIORITY, delay)


class ReferenceModel:
    def __init__(self, config: SimConfig):
        self.cfg = config
        self.env = simpy.Environment()
        self.streams = System(config).streams()
        p, link, broker = config.producer, config.link, config.broker
        clients = config.clients
        self.producers = clients * config.producers_per_client

        # derived numbers, computed here from the config on purpose
        self.message_bytes = p.payload_bytes + p.overhead_bytes
        down_bw = link.bandwidth if link.downlink_bandwidth is None else link.downlink_bandwidth
        self.up_time = self.message_bytes / link.bandwidth
        self.down_time = broker.ack_bytes / down_bw
        window = math.inf if link.window_bytes is None else link.window_bytes
        if link.loss > 0:
            window = min(window, link.mss_bytes * math.sqrt(3 / (2 * link.loss)))
        self.up_tokens = self._tokens(window, self.message_bytes, clients)

        env = self.env
        self.cpu = [simpy.Resource(env, 1) for _ in range(clients)]
        self.uplink = simpy.Resource(env, 1)
        self.read_loop = [simpy.Resource(env, 1) for _ in range(clients)]
        self.partition = [simpy.Resource(env, 1) for _ in range(broker.partitions)]
        self.downlink = simpy.Resource(env, 1)

        self.in_flight = [0] * self.producers
        self.changed = [env.event() for _ in range(self.producers)]
        self.log: dict[tuple[int, int], dict] = {}

    def _tokens(self, window: float, size: int, clients: int):
        if math.isinf(window) or size == 0:
            return None
        stores = []
        for _ in range(clients):
            store = simpy.Store(self.env)
            store.items.extend(range(max(1, int(window // size))))
            stores.append(store)
        return stores

    # -- producer -------------------------------------------------------------
    def producer(self, j: int):
        env, p = self.env, self.cfg.producer
        start = self.streams.start_times[j]
        gaps = self.streams.arrival_gaps[j]
        choose = self.streams.partitions[j]
        yield Timer(env, start)
        next_arrival = start + next(gaps) if gaps is not None else None
        if p.mode == "sync":
            cap = 1
        elif p.window is not None:
            cap = p.window
        else:
            cap = math.inf
        seq = 0
        while p.messages is None or seq < p.messages:
            while self.in_flight[j] >= cap:
                yield self.changed[j]
            if next_arrival is not None and next_arrival > env.now:
                yield Timer(env, next_arrival - env.now)
            record = {
                "producer": j,
                "partition": next(choose),
                "intended": next_arrival if next_arrival is not None else env.now,
                "created": env.now,
                "sent": math.nan,
                "stored": math.nan,
                "resolved": math.nan,
                "status": IN_FLIGHT,
            }
            if next_arrival is not None:
                next_arrival += next(gaps)
            self.log[(j, seq)] = record
            seq += 1
            self.in_flight[j] += 1
            sent = env.event()
            env.process(self.message(j, record, sent))
            env.process(self.deadline(j, record))
            yield sent
            limit = p.concurrent_task_limit
            if limit is not None and self.in_flight[j] >= limit:
                if p.limiter_poll > 0:
                    while True:
                        yield Timer(env, p.limiter_poll)
                        if 2 * self.in_flight[j] <= limit:
                            break
                else:
                    while 2 * self.in_flight[j] > limit:
                        yield self.changed[j]

    def resolve(self, j: int, record: dict, status: str) -> None:
        record["status"] = status
        record["resolved"] = self.env.now
        self.in_flight[j] -= 1
        event, self.changed[j] = self.changed[j], self.env.event()
        event.succeed()

    # -- one message ------------------------------------------------------------
    def message(self, j: int, record: dict, sent):
        env, cfg = self.env, self.cfg
        c = j // cfg.producers_per_client
        half_rtt = cfg.link.rtt / 2
        with self.cpu[c].request() as req:
            yield req
            yield env.timeout(cfg.client.send_cpu)
        record["sent"] = env.now
        sent.succeed()

        if self.up_tokens:
            token = yield self.up_tokens[c].get()
        with self.uplink.request() as req:
            yield req
            yield env.timeout(self.up_time)
        if self.up_tokens:
            env.process(self.give_back(self.up_tokens[c], token))
        yield env.timeout(half_rtt)
        with self.read_loop[c].request() as req:
            yield req
            yield env.timeout(cfg.broker.read_cpu)
        p = record["partition"]
        with self.partition[p].request() as req:
            yield req
            yield env.timeout(next(self.streams.service[p]))
        record["stored"] = env.now

        with self.downlink.request() as req:
            yield req
            yield env.timeout(self.down_time)
        yield env.timeout(half_rtt)
        with self.cpu[c].request() as req:
            yield req
            yield env.timeout(cfg.client.ack_cpu)
        if record["status"] == IN_FLIGHT and env.now < (record["created"] + cfg.producer.ack_wait) * LATE:
            self.resolve(j, record, ACKED)

    def give_back(self, store, token):
        yield self.env.timeout(self.cfg.link.rtt)
        yield store.put(token)

    def deadline(self, j: int, record: dict):
        yield Timer(self.env, self.cfg.producer.ack_wait)
        if record["status"] == IN_FLIGHT:
            self.resolve(j, record, TIMED_OUT)

    def run(self) -> dict[tuple[int, int], dict]:
        for j in range(self.producers):
            self.env.process(self.producer(j))
        duration = self.cfg.run.duration
        self.env.run() if duration is None else self.env.run(until=duration)
        return self.log


def run_reference(config: SimConfig) -> dict[tuple[int, int], dict]:
    """Per message, keyed by (producer, seq): its times and final status."""
    return ReferenceModel(config).run()
