"""The FIFO station on its own: exact timelines, and the batch form equal to the
one-at-a-time form bit for bit."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.model.station import Station, lindley


def test_a_station_serves_in_arrival_order_one_job_at_a_time():
    station = Station(2.0)
    log = [(a, station.serve(a)) for a in (0.0, 1.0, 1.0, 7.0, 8.5)]
    # busy from 0 to 6 with three jobs, idle until 7, then 7..9 and 9..11
    assert log == [(0.0, 2.0), (1.0, 4.0), (1.0, 6.0), (7.0, 9.0), (8.5, 11.0)]
    assert station.free == 11.0 and station.jobs == 5 and station.busy == 10.0


def test_drawn_service_times_are_added_up():
    station = Station(None)
    assert [station.serve(a, s) for a, s in ((0.0, 0.5), (0.1, 0.25), (2.0, 1.0))] == [0.5, 0.75, 3.0]
    assert station.busy == 1.75


def test_a_station_busy_from_earlier_work_delays_the_first_job():
    station = Station(1.0)
    station.free = 5.0
    assert station.serve_all([0.0, 6.5]) == [6.0, 7.5]


round_times = st.lists(st.integers(0, 40).map(lambda k: k * 0.1), min_size=1, max_size=30)


@settings(max_examples=300, deadline=None)
@given(round_times, st.sampled_from([0.0, 0.1, 0.3, 1e-5]), st.sampled_from([0.0, 0.2, 2.0]))
def test_batch_equals_one_at_a_time_bit_for_bit(times, service, free):
    arrivals = sorted(times)
    one = Station(service)
    one.free = free
    expected = [one.serve(a) for a in arrivals]
    batch = Station(service)
    batch.free = free
    got = batch.serve_batch(np.array(arrivals))
    assert got.tolist() == expected  # exact, ties included
    assert batch.free == one.free and batch.jobs == one.jobs
    listed = Station(service)
    listed.free = free
    assert listed.serve_all(arrivals) == expected


@settings(max_examples=300, deadline=None)
@given(round_times, st.data())
def test_batch_with_drawn_services_equals_one_at_a_time(times, data):
    arrivals = sorted(times)
    services = data.draw(st.lists(st.sampled_from([0.0, 0.05, 0.1, 0.7]), min_size=len(arrivals),
                                  max_size=len(arrivals)))
    one = Station(None)
    expected = [one.serve(a, s) for a, s in zip(arrivals, services)]
    assert Station(None).serve_each(arrivals, services) == expected
    assert lindley(np.array(arrivals), np.array(services), 0.0).tolist() == expected
