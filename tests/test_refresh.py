"""The two refresh windows and the single flight of credentials/refresh.py, on a fake clock."""

from __future__ import annotations

import asyncio
import pickle
import threading

import pytest

from attachfs._credentials.refresh import STALE, Lease, Refreshable

HOUR = 3600.0


class Source:
    """A credential source that counts fetches and can be made slow or failing."""

    def __init__(self, clock):
        self.clock = clock
        self.calls = 0
        self.fail = False
        self.gate: threading.Event | None = None

    def __call__(self) -> Lease[str]:
        self.calls += 1
        if self.gate is not None:
            assert self.gate.wait(10)
        if self.fail:
            raise RuntimeError("token endpoint down")
        return Lease(f"token-{self.calls}", self.clock.now + HOUR)


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def source(clock):
    return Source(clock)


@pytest.fixture
def creds(source, clock):
    return Refreshable(source, what="test identity", clock=clock, advisory=900, mandatory=600)


def test_first_use_fetches_once_then_reuses(creds, source):
    assert creds.get_sync() == "token-1"
    assert creds.get_sync() == "token-1"
    assert asyncio.run(creds.get()) == "token-1"
    assert source.calls == 1


@pytest.mark.parametrize("elapsed", [0, HOUR - 901, HOUR - 899, HOUR - 599, HOUR + 10])
def test_current_is_the_value_only_when_get_would_return_it_at_once(creds, source, clock,
                                                                   elapsed):
    """The read path takes ``current()`` without a coroutine and awaits ``get()`` on STALE:
    the two must agree on when a lease is good enough as it is."""
    assert creds.current() is STALE  # nothing fetched yet
    assert source.calls == 0
    creds.get_sync()
    clock.now += elapsed
    fresh = creds.fresh()
    assert (creds.current() == "token-1") is fresh
    assert (creds.current() is STALE) is not fresh
    assert fresh is (elapsed < HOUR - 900)
    creds.invalidate()
    assert creds.current() is STALE
    assert source.calls == 1  # current() never fetches


@pytest.mark.parametrize("elapsed,expected,calls", [
    (HOUR - 901, "token-1", 1),   # before the advisory window: reuse
    (HOUR - 899, "token-2", 2),   # advisory window: refreshed by the caller that gets there
    (HOUR - 599, "token-2", 2),   # mandatory window: refreshed, everyone waits
    (HOUR + 10, "token-2", 2),    # expired: refreshed
])
def test_windows(creds, source, clock, elapsed, expected, calls):
    creds.get_sync()
    clock.now += elapsed
    assert creds.get_sync() == expected
    assert source.calls == calls


def test_failed_refresh_in_advisory_window_keeps_the_valid_lease(creds, source, clock):
    creds.get_sync()
    clock.now += HOUR - 800
    source.fail = True
    assert creds.get_sync() == "token-1"  # tolerated: still valid for 800 s
    assert source.calls == 2


def test_failed_refresh_in_mandatory_window_raises(creds, source, clock):
    creds.get_sync()
    clock.now += HOUR - 300
    source.fail = True
    with pytest.raises(RuntimeError, match="token endpoint down"):
        creds.get_sync()


def test_advisory_refresh_is_single_flight_and_others_do_not_wait(creds, source, clock):
    creds.get_sync()
    clock.now += HOUR - 800
    source.gate = threading.Event()
    refresher = threading.Thread(target=creds.get_sync)
    refresher.start()
    while source.calls < 2:  # the refresher is inside the fetch, holding the lock
        threading.Event().wait(0.001)
    # Another caller in the advisory window gets the still-valid lease without waiting.
    assert creds.get_sync() == "token-1"
    source.gate.set()
    refresher.join(5)
    assert creds.get_sync() == "token-2"
    assert source.calls == 2


def test_concurrent_first_use_is_single_flight(creds, source):
    source.gate = threading.Event()

    async def many():
        tasks = [asyncio.create_task(creds.get()) for _ in range(200)]
        await asyncio.sleep(0.05)
        source.gate.set()
        return await asyncio.gather(*tasks)

    assert asyncio.run(many()) == ["token-1"] * 200
    assert source.calls == 1


def test_refresh_runs_off_the_event_loop(creds, source):
    loop_thread = {}

    def fetch():
        loop_thread["fetch"] = threading.get_ident()
        return source()

    creds._fetch = fetch

    async def main():
        loop_thread["loop"] = threading.get_ident()
        return await creds.get()

    asyncio.run(main())
    assert loop_thread["fetch"] != loop_thread["loop"]


def test_lease_and_credentials_never_show_or_pickle_the_value(creds):
    creds.get_sync()
    assert "token-1" not in repr(creds) and "token-1" not in repr(creds.lease)
    with pytest.raises(TypeError, match="not picklable"):
        pickle.dumps(creds)


def test_mandatory_window_must_be_inside_advisory(source, clock):
    with pytest.raises(ValueError):
        Refreshable(source, what="x", clock=clock, advisory=60, mandatory=120)
