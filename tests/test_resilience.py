"""Riding out faults: one classifier and one time budget for every backend, and throttling that
slows down every read to a host.

* The classifier (``_read.errors``): which answers and exceptions are worth another attempt,
  whatever client raised them, and which are final (a certificate that does not verify, a
  name that does not resolve, 4xx other than 408 and 429).
* The retry loop (``_read.retry``) on a virtual clock (tests/fakes/clock.py): waits are
  recorded, never slept, so "a 10-second outage" is counted in attempts and virtual seconds.
* The limiter (``_read.throttle``), the AWS SDKs' adaptive mode: a simulated pool of readers
  counts the requests that reach a throttling server.
* Every backend (S3, GCS, Azure, plain https) through the fault-injecting proxy
  (tests/fakes/faulty_proxy.py): a stall, a stopped server, a 503 window, final answers and a
  throttle, each counted in requests and connections at the proxy.

No test asserts a duration.
"""

from __future__ import annotations

import asyncio
import heapq
import os
import random
import socket
import ssl
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey
from hypothesis import given, settings
from hypothesis import strategies as st

import attachfs
from attachfs import AccessRefused, GaveUp, Limits, ReadTimeout
from attachfs._net import resolver as net_resolver
from attachfs._read import errors, retry, throttle
from fakes.clock import VirtualClock
from fakes.faulty_proxy import Answer, Drop, FaultyProxy, Stall, slow_down

DATA = bytes(range(256)) * 512 + b"tail"  # 131,076 bytes
#: Small timeouts so a stall is seen quickly; the retry budget is the default one.
LIMITS = {"connect_timeout": 2.0, "read_timeout": 0.5, "min_rate": 1024.0}
BACKENDS = ["s3", "gcs", "azure", "http"]


# --------------------------------------------------------------------------- the classifier

def _key(host: str = "example.com", port: int = 443) -> Any:
    return ConnectionKey(host, port, True, True, None, None, None, None)


def _gaierror(code: int) -> socket.gaierror:
    return socket.gaierror(code, "fake resolver")


def _through_the_guard(code: int) -> OSError:
    """What the guarded resolver raises for a name that fails (``resolver.answers``)."""
    try:
        try:
            raise _gaierror(code)
        except socket.gaierror as err:
            raise OSError(err.errno, f"could not resolve 'h.example': {err}") from err
    except OSError as err:
        return err


def _wrapped_by_aiohttp(err: OSError) -> aiohttp.ClientOSError:
    """aiohttp's ``ClientOSError`` around an ``OSError`` (what a proxied connect raises)."""
    try:
        raise aiohttp.ClientOSError(*err.args) from err
    except aiohttp.ClientOSError as wrapped:
        return wrapped


def _verify_failure() -> ssl.SSLCertVerificationError:
    return ssl.SSLCertVerificationError(1, "certificate verify failed: unable to get local "
                                           "issuer certificate")


def _permanent_failures() -> dict[str, BaseException]:
    from azure.core.exceptions import ServiceRequestError
    from botocore.exceptions import EndpointConnectionError

    dns = aiohttp.ClientConnectorDNSError(_key(), _gaierror(socket.EAI_NONAME))
    cert = aiohttp.ClientConnectorCertificateError(_key(), _verify_failure())
    return {
        "certificate": cert,
        "certificate, raw": _verify_failure(),
        "certificate, inside a broken connection": _wrapped_by_aiohttp(_verify_failure()),
        "TLS handshake refused": aiohttp.ClientConnectorSSLError(
            _key(), ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")),
        "NXDOMAIN": dns,
        "NXDOMAIN, no data": aiohttp.ClientConnectorDNSError(
            _key(), _gaierror(getattr(socket, "EAI_NODATA", -5))),
        "NXDOMAIN through the guard and a proxy": _wrapped_by_aiohttp(
            _through_the_guard(socket.EAI_NONAME)),
        "NXDOMAIN under botocore": EndpointConnectionError(endpoint_url="https://h", error=dns),
        "certificate under azure-core": ServiceRequestError(cert, error=cert),
        "refused by the network guard": _wrapped_by_aiohttp(
            AccessRefused("connection refused by the network guard", rule="ssrf:loopback")),
        "the read's deadline": ReadTimeout.past_deadline("https://h/x", 600, "body"),
    }


def _transient_failures() -> dict[str, BaseException]:
    from azure.core.exceptions import ServiceResponseError
    from botocore.exceptions import ConnectionClosedError

    return {
        "connection refused": aiohttp.ClientConnectorError(
            _key(), ConnectionRefusedError(111, "Connect call failed")),
        "connection reset": ConnectionResetError(104, "Connection reset by peer"),
        "server disconnected": aiohttp.ServerDisconnectedError(),
        "body cut short": aiohttp.ClientPayloadError("Response payload is not completed"),
        "TLS cut during the handshake": aiohttp.ClientConnectorSSLError(
            _key(), ssl.SSLEOFError(8, "EOF occurred in violation of protocol")),
        "DNS server failing (EAI_AGAIN)": aiohttp.ClientConnectorDNSError(
            _key(), _gaierror(socket.EAI_AGAIN)),
        "EAI_AGAIN through the guard and a proxy": _wrapped_by_aiohttp(
            _through_the_guard(socket.EAI_AGAIN)),
        "stall waiting for the headers": ReadTimeout.stalled("https://h/x", 30, "response"),
        "stall in the body": ReadTimeout.stalled("https://h/x", 30, "body"),
        "drip": ReadTimeout.too_slow("https://h/x", 10, 1024, 30),
        "connect timeout": ReadTimeout.connecting("https://h/x", 10),
        "botocore connection closed": ConnectionClosedError(endpoint_url="https://h"),
        "azure-core response broken": ServiceResponseError("reset"),
    }


@pytest.mark.unit
@pytest.mark.parametrize("name", list(_permanent_failures()))
def test_permanent_failures_are_never_retried(name):
    assert errors.transient(_permanent_failures()[name]) is None


@pytest.mark.unit
@pytest.mark.parametrize("name", list(_transient_failures()))
def test_transient_failures_are_retried(name):
    found = errors.transient(_transient_failures()[name])
    assert isinstance(found, retry.Retry) and not found.throttled


@pytest.mark.unit
@given(status=st.integers(100, 599))
def test_which_statuses_are_retried(status):
    retried = status in (408, 429) or (500 <= status <= 599 and status not in (501, 505))
    found = errors.answer_retry(status, None)
    assert (found is not None) == retried
    assert found is None or found.throttled == (status == 429)


@pytest.mark.unit
@given(status=st.integers(400, 499).filter(lambda s: s not in (408, 429)),
       code=st.one_of(st.none(), st.text(min_size=1, max_size=30),
                      st.sampled_from(["AccessDenied", "NoSuchKey", "InvalidRange",
                                       "RequestTimeTooSkewed", "SignatureDoesNotMatch",
                                       "ExpiredToken", "InvalidArgument", "BlobNotFound"])))
def test_a_4xx_is_final_unless_its_code_says_try_again(status, code):
    found = errors.answer_retry(status, code)
    assert (found is not None) == (code in errors.RETRYABLE_CODES)


@pytest.mark.unit
@pytest.mark.parametrize("status, code, throttled", [
    (503, "SlowDown", True), (429, None, True), (400, "Throttling", True),
    (503, "ServerBusy", True), (429, "rateLimitExceeded", True),
    (503, "ServiceUnavailable", False), (503, None, False), (500, "InternalError", False),
    (400, "RequestTimeout", False),
])
def test_throttling_answers_are_told_apart(status, code, throttled):
    found = errors.answer_retry(status, code)
    assert found is not None and found.throttled is throttled


@pytest.mark.unit
def test_sdk_errors_go_through_the_same_table():
    from azure.core.exceptions import HttpResponseError
    from botocore.exceptions import ClientError

    slow = ClientError({"Error": {"Code": "SlowDown"},
                        "ResponseMetadata": {"HTTPStatusCode": 503,
                                             "HTTPHeaders": {"retry-after": "3"}}}, "GetObject")
    found = errors.transient(slow)
    assert found is not None and found.throttled and found.retry_after == 3.0
    skewed = ClientError({"Error": {"Code": "RequestTimeTooSkewed"},
                          "ResponseMetadata": {"HTTPStatusCode": 403}}, "GetObject")
    assert errors.transient(skewed) is None

    class Response:
        status_code = 503
        reason = "Server Busy"
        headers = {"x-ms-retry-after-ms": "1500"}

        def text(self) -> str:
            return ""

    busy = HttpResponseError(response=Response())
    busy.error_code = "ServerBusy"
    found = errors.transient(busy)
    assert found is not None and found.throttled and found.retry_after == 1.5


@pytest.mark.unit
def test_retry_after_in_every_spelling():
    assert retry.retry_after_in({"Retry-After": "7"}) == 7.0
    assert retry.retry_after_in({"x-ms-retry-after-ms": "250", "Retry-After": "7"}) == 0.25
    assert retry.retry_after_in({"retry-after-ms": "1000"}) == 1.0
    assert retry.retry_after_in({"Retry-After": "soon"}) is None
    assert retry.retry_after_in(None) is None


# --------------------------------------------------------------------------- the retry loop

def _outage(clock: VirtualClock, seconds: float, calls: list[float],
            failure: Callable[[], BaseException] = lambda: retry.Retry("connection refused")):
    async def attempt(n: int) -> bytes:
        calls.append(clock.elapsed)
        if clock.elapsed < seconds:
            raise failure()
        return b"ok"

    return attempt


def _run(clock: VirtualClock, attempt, limits: Limits, **kwargs: Any) -> Any:
    async def go() -> Any:
        return await retry.run(attempt, what="reading s3://b/k", limits=limits,
                               deadline=clock.now() + limits.total_timeout,
                               classify=errors.transient, **kwargs)

    return asyncio.run(go())


@pytest.mark.unit
@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), outage=st.floats(0.0, 10.0))
def test_the_default_budget_rides_out_a_10_second_outage(seed, outage):
    with pytest.MonkeyPatch.context() as mp:
        clock = VirtualClock().install(mp)
        calls: list[float] = []
        got = _run(clock, _outage(clock, outage, calls), Limits(),
                   rng=random.Random(seed).random)
    assert got == b"ok"
    assert calls[-1] >= outage and all(c < outage for c in calls[:-1])
    assert len(clock.waits) == len(calls) - 1
    assert all(0 <= w <= Limits().backoff_cap for w in clock.waits)


@pytest.mark.unit
def test_a_stall_on_the_first_attempt_leaves_the_whole_window(monkeypatch):
    # The window counts from the first failure, so an attempt that stalled for read_timeout
    # (30 s) still has the whole retry window after it: a server paused for 35 s is ridden out.
    clock = VirtualClock().install(monkeypatch)

    async def attempt(n: int) -> bytes:
        if n == 1:
            clock.offset += 30  # the stalled attempt's own read timeout
            raise ReadTimeout.stalled("s3://b/k", 30, "response")
        if clock.elapsed < 35:
            raise ReadTimeout.stalled("s3://b/k", 30, "response")
        return b"ok"

    assert _run(clock, attempt, Limits()) == b"ok"
    assert clock.elapsed >= 35


@pytest.mark.unit
def test_a_503_burst_then_a_stalled_attempt_is_ridden_out_by_the_defaults(monkeypatch):
    # What the 10-minute soak met: 503s for 3 s, then a retry that lands in a 35-s pause and
    # stalls for read_timeout (30 s) before the server is back. From the read's side the
    # server failed for ~33 s: more than a 30-s window, within the default one.
    clock = VirtualClock().install(monkeypatch)
    limits = Limits()

    async def attempt(n: int) -> bytes:
        if clock.elapsed < 3:
            errors.raise_for_status("s3://b/k", "s3", 503, "ServiceUnavailable", None, {})
        if not getattr(attempt, "stalled", False):
            attempt.stalled = True  # type: ignore[attr-defined]
            clock.offset += limits.read_timeout
            raise ReadTimeout.stalled("s3://b/k", limits.read_timeout, "response")
        return b"ok"

    assert _run(clock, attempt, limits, rng=random.Random(3).random) == b"ok"
    assert clock.elapsed > 30


@pytest.mark.unit
def test_an_outage_longer_than_the_window_gives_up_as_the_window_ends(monkeypatch):
    clock = VirtualClock().install(monkeypatch)
    calls: list[float] = []
    limits = Limits(retry_window=12.0)
    with pytest.raises(GaveUp) as gave_up:
        _run(clock, _outage(clock, 1e9, calls), limits, rng=random.Random(1).random)
    # The last wait is cut short so the last attempt is made as the window ends.
    assert sum(clock.waits) == pytest.approx(12.0, abs=0.5)
    assert calls[-1] == pytest.approx(12.0, abs=0.5)
    assert gave_up.value.attempts == len(calls)
    assert "(the retry window)" in str(gave_up.value)


@pytest.mark.unit
@pytest.mark.parametrize("window, outage, ridden_out", [
    (60.0, 45.0, True), (5.0, 10.0, False), (0.0, 0.1, False)])
def test_the_window_is_the_budget(monkeypatch, window, outage, ridden_out):
    clock = VirtualClock().install(monkeypatch)
    calls: list[float] = []
    attempt = _outage(clock, outage, calls)
    if ridden_out:
        assert _run(clock, attempt, Limits(retry_window=window)) == b"ok"
    else:
        with pytest.raises(GaveUp):
            _run(clock, attempt, Limits(retry_window=window))
    if window == 0:
        assert len(calls) == 1 and clock.waits == []  # 0: never retried


@pytest.mark.unit
def test_max_attempts_caps_the_attempts_of_one_window(monkeypatch):
    clock = VirtualClock().install(monkeypatch)
    calls: list[float] = []
    with pytest.raises(GaveUp) as gave_up:
        _run(clock, _outage(clock, 1e9, calls), Limits(max_attempts=3))
    assert len(calls) == 3 == gave_up.value.attempts


@pytest.mark.unit
def test_progress_starts_the_window_again(monkeypatch):
    # 8 s of failures, one attempt that got somewhere, 8 more: 16 s > the 10 s window, but no
    # run of failures without progress was longer than the window.
    clock = VirtualClock().install(monkeypatch)

    async def attempt(n: int) -> bytes:
        if clock.elapsed < 8:
            raise retry.Retry("refused")
        if clock.elapsed < 9 and not getattr(attempt, "progressed", False):
            attempt.progressed = True  # type: ignore[attr-defined]
            raise retry.Retry("broke after 1 MiB", progress=True)
        if clock.elapsed < 16:
            raise retry.Retry("refused")
        return b"ok"

    assert _run(clock, attempt, Limits(retry_window=10.0, backoff_cap=1.0)) == b"ok"
    assert clock.elapsed >= 16


@pytest.mark.unit
@pytest.mark.parametrize("after, outcome", [(8.0, "waited"), (61.0, "window"),
                                            (700.0, "deadline")])
def test_retry_after_is_honoured_within_the_budget(monkeypatch, after, outcome):
    clock = VirtualClock().install(monkeypatch)

    async def attempt(n: int) -> bytes:
        if n == 1:
            errors.raise_for_status("s3://b/k", "s3", 503, "SlowDown", None,
                                    {"Retry-After": f"{after:g}"})
        return b"ok"

    if outcome == "waited":
        assert _run(clock, attempt, Limits()) == b"ok"
        assert clock.waits == [8.0]  # the server's wait, over backoff_cap and unjittered
        return
    with pytest.raises(GaveUp) as gave_up:
        _run(clock, attempt, Limits())
    assert clock.waits == [] and gave_up.value.attempts == 1
    assert f"past the {'retry window' if outcome == 'window' else 'deadline'}" in str(
        gave_up.value)


# --------------------------------------------------------------------------- the limiter

@pytest.mark.unit
def test_the_limiter_lets_everything_through_until_a_throttle():
    limiter = throttle.Limiter(now=0.0)
    for i in range(1000):
        assert limiter.wait(i / 100) == 0.0
        limiter.answered(i / 100, throttled=False)
    assert not limiter.enabled and limiter.delayed == 0


@pytest.mark.unit
def test_a_throttle_cuts_the_rate_and_answers_grow_it_back():
    limiter = throttle.Limiter(now=0.0)
    t = 0.0
    for _ in range(1000):  # 100 answers a second for 10 s
        t += 0.01
        limiter.answered(t, throttled=False)
    measured = limiter.measured
    assert 90 <= measured <= 110
    limiter.answered(t, throttled=True)
    assert limiter.enabled and limiter.rate == pytest.approx(throttle.BETA * limiter.measured)
    cut = limiter.rate
    rates = []
    while t < 30:  # answered as fast as the limiter lets requests go
        delay = limiter.wait(t)
        if delay:
            t += delay
            continue
        limiter.answered(t, throttled=False)
        rates.append(limiter.rate)
    assert min(rates) >= throttle.MIN_RATE and rates[-1] > measured > cut
    assert all(r <= throttle.MAX_RATE_SCALE * max(measured, 1e-9) * 10 for r in rates)


@pytest.mark.unit
@pytest.mark.parametrize("throttling", [True, False], ids=["SlowDown", "plain 503"])
def test_a_pool_of_readers_slows_down_together_after_a_throttle(throttling):
    """200 readers share one limiter; the server throttles (or, the control, answers 503) for
    its first 2 virtual seconds. Discrete-event simulation: every reader runs the real retry
    loop's limiter and backoff, with times counted, never slept."""
    limiter = throttle.Limiter(now=0.0)
    rng = random.Random(7)
    sent_at: list[float] = []
    queue: list[tuple[float, int, int]] = [(0.0, reader, 1) for reader in range(200)]
    heapq.heapify(queue)
    done = 0
    while queue:
        t, reader, tries = heapq.heappop(queue)
        delay = limiter.wait(t)
        if delay:
            heapq.heappush(queue, (t + min(delay, retry.LIMITER_POLL), reader, tries))
            continue
        sent_at.append(t)
        if t < 2.0:
            limiter.answered(t, throttled=throttling)
            heapq.heappush(queue, (t + retry.backoff(tries, 0.25, 5.0, rng.random), reader,
                                   tries + 1))
        else:
            limiter.answered(t, throttled=False)
            done += 1
    assert done == 200
    in_the_window = sum(1 for t in sent_at if t < 2.0)
    if throttling:
        # The first answers cut the rate to its floor: a few requests, not 200 per attempt.
        assert in_the_window <= 5
        assert limiter.throttles == in_the_window and limiter.delayed > 0
    else:
        assert in_the_window >= 400  # every reader retried on its own backoff
        assert not limiter.enabled and limiter.delayed == 0


@pytest.mark.unit
def test_limiters_are_per_bucket_account_and_host():
    assert throttle.key("s3", "b1") != throttle.key("s3", "b2") != throttle.key("gcs", "b2")
    assert throttle.key("azure", "cont", "acct") == throttle.key("azure", "other", "acct")
    assert throttle.key("http", host="https://H:443") == throttle.key("http", host="https://h:443")
    a = throttle.limiter(throttle.key("s3", "b1"), 0.0)
    assert throttle.limiter(throttle.key("s3", "b1"), 1.0) is a


@pytest.mark.unit
@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX fork")
def test_a_forked_child_starts_with_no_limiters():
    limiter = throttle.limiter(throttle.key("s3", "forked"), 0.0)
    limiter.answered(0.0, throttled=True)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        fresh = throttle.limiter(throttle.key("s3", "forked"), 0.0)
        os.write(write, b"1" if fresh is not limiter and not fresh.enabled else b"0")
        os._exit(0)
    os.close(write)
    assert os.read(read, 1) == b"1"
    os.waitpid(pid, 0)
    os.close(read)
    assert throttle.limiter(throttle.key("s3", "forked"), 0.0) is limiter


# --------------------------------------------------------------------------- every backend

def _port(url: str) -> int:
    return int(url.rstrip("/").rsplit(":", 1)[1].split("/")[0])


@pytest.fixture(scope="module")
def proxies(peers) -> Iterator[dict[str, FaultyProxy]]:
    upstream = {"s3": peers.s3_endpoint, "gcs": peers.gcs_endpoint,
                "azure": peers.azure_endpoint.split("/{account}")[0], "http": peers.http.url}
    started = {b: FaultyProxy(_port(u)).start() for b, u in upstream.items()}
    yield started
    for proxy in started.values():
        proxy.stop()


@pytest.fixture
def clock(monkeypatch) -> VirtualClock:
    return VirtualClock().install(monkeypatch)


def _objects(peers, names, backend: str, proxy: FaultyProxy, count: int) -> list[str]:
    bucket = names("r")
    keys = [f"obj{i}.bin" for i in range(count)]
    if backend == "s3":
        peers.make_s3_bucket(bucket)
        for k in keys:
            peers.put_s3(bucket, k, DATA)
        return [f"s3://{bucket}/{k}" for k in keys]
    if backend == "gcs":
        peers.make_gcs_bucket(bucket)
        for k in keys:
            peers.put_gcs(bucket, k, DATA)
        return [f"gs://{bucket}/{k}" for k in keys]
    if backend == "azure":
        peers.make_azure_container(bucket, public=True)
        for k in keys:
            peers.put_azure(bucket, k, DATA)
        return [f"https://{peers.azure_account}.blob.core.windows.net/{bucket}/{k}"
                for k in keys]
    for k in keys:
        peers.http.put(f"/{bucket}/{k}", DATA)
    return [f"{proxy.url}/{bucket}/{k}" for k in keys]


@pytest.fixture(params=BACKENDS)
def reader(request, peers, names, proxies, clock):
    """(fs, [URI of DATA], proxy in front of that backend), through the proxy."""
    backend = request.param
    proxy = proxies[backend]
    uris = _objects(peers, names, backend, proxy, 3)
    config = peers.config()
    platform = config["platform"]
    platform["aws"]["endpoint_url"] = proxies["s3"].url
    platform["gcp"]["endpoint_url"] = proxies["gcs"].url
    platform["azure"]["endpoint_url"] = proxies["azure"].url + "/{account}"
    platform["http"] = {"allow_private_networks": True}
    # A tenant, so every backend reads through attachfs's own readers (not an SDK's).
    claims = [uris[0].rsplit("/", 1)[0]] if backend in ("s3", "gcs") else []
    config["tenants"] = {"acme": {"direct": claims} if claims else {}}
    config["limits"] = LIMITS
    fs = attachfs.filesystem(config=config, tenant="acme", skip_instance_cache=True)
    proxy.reset()
    proxy.clock = lambda: clock.elapsed
    yield fs, uris, proxy
    proxy.up()
    proxy.clock = None


def test_a_stalled_answer_is_retried_on_every_backend(reader, clock):
    fs, uris, proxy = reader
    proxy.reset(Stall(after=None))  # no byte of the answer for longer than read_timeout
    assert fs.cat_file(uris[0]) == DATA
    assert proxy.attempts == 2 and len(clock.waits) == 1


def test_a_body_that_stalls_is_retried_on_every_backend(reader, clock):
    fs, uris, proxy = reader
    proxy.reset(Stall(after=1000))
    assert fs.cat_file(uris[0]) == DATA
    assert proxy.attempts == 2


def test_a_stopped_server_is_ridden_out_for_10_seconds_on_every_backend(reader, clock):
    fs, uris, proxy = reader
    proxy.down()
    clock.at(10.0, proxy.up)  # started again 10 virtual seconds later
    assert fs.cat_file(uris[0]) == DATA
    # Every attempt before it came back was refused: one connection, one request at the
    # server, and the attempts the waits between them say.
    assert proxy.connections == 1 and proxy.attempts == 1
    assert len(clock.waits) >= 2 and clock.elapsed >= 10.0
    assert all(w <= Limits().backoff_cap for w in clock.waits)


def test_connections_reset_for_10_seconds_are_ridden_out_on_every_backend(reader, clock):
    fs, uris, proxy = reader
    proxy.reset(*[Drop()] * 1000)
    clock.at(10.0, lambda: proxy.script.clear())
    assert fs.cat_file(uris[0]) == DATA
    # A cloud read's attempt is one new connection: a request is sent again within its attempt
    # only when it went out on a pooled connection (RFC 9112, 9.3.1). Plain http goes through
    # aiohttp, which sends it again on a new connection either way: two per failed attempt.
    per_attempt = 2 if fs.route(uris[0]).backend == "http" else 1
    assert proxy.connections == proxy.attempts == per_attempt * len(clock.waits) + 1
    assert len(clock.waits) >= 2


def test_a_503_window_is_ridden_out_without_slowing_the_pool(reader, clock):
    fs, uris, proxy = reader
    proxy.reset(*[Answer(503, b"", {"Content-Type": "application/xml"})] * 1000)
    clock.at(10.0, lambda: proxy.script.clear())
    assert fs.cat_file(uris[0]) == DATA
    assert proxy.attempts == len(clock.waits) + 1 >= 3
    # A plain 503 is an outage, not a throttle: the next read goes out at once.
    waits = len(clock.waits)
    assert fs.cat_file(uris[1]) == DATA
    assert len(clock.waits) == waits


def _throttling_answer(backend: str) -> Answer:
    """How each service says "slow down": S3's 503 SlowDown, GCS's 429 rateLimitExceeded,
    Azure's 503 ServerBusy (in ``x-ms-error-code``), and a plain server's 429."""
    if backend == "s3":
        return slow_down()
    if backend == "gcs":
        return Answer(429, b'{"error": {"code": 429, "message": "rate", "errors": '
                           b'[{"reason": "rateLimitExceeded"}]}}',
                      {"Content-Type": "application/json"}, "Too Many Requests")
    if backend == "azure":
        return Answer(503, b'<?xml version="1.0" encoding="utf-8"?><Error><Code>ServerBusy'
                           b"</Code><Message>Egress is over the account limit.</Message></Error>",
                      {"Content-Type": "application/xml", "x-ms-error-code": "ServerBusy"},
                      "Egress is over the account limit.")
    return Answer(429, b"", {}, "Too Many Requests")


def test_a_throttle_slows_every_read_to_that_host(reader, clock, request):
    fs, uris, proxy = reader
    proxy.reset(_throttling_answer(request.node.callspec.params["reader"]))
    assert fs.cat_file(uris[0]) == DATA
    assert proxy.attempts == 2
    # Another object of the same bucket (account, host) now waits for the limiter before its
    # first request: it is sent at the limiter's rate, not into the throttle.
    before = len(clock.waits)
    assert fs.cat_file(uris[1]) == DATA
    assert proxy.attempts == 3 and len(clock.waits) > before
    assert proxy.seen[2].at > proxy.seen[1].at


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 410, 501, 505])
def test_final_answers_fail_at_once_on_every_backend(reader, clock, status):
    fs, uris, proxy = reader
    proxy.reset(Answer(status))
    with pytest.raises(OSError) as raised:
        fs.cat_file(uris[0])
    assert proxy.attempts == 1 and clock.waits == []
    assert not isinstance(raised.value, GaveUp)


# --------------------------------------------------------------------------- names and TLS

class _Names:
    """A resolver that fails each name ``failures`` times with ``code``, then answers
    127.0.0.1; it counts every question."""

    def __init__(self, code: int, failures: int):
        self.code, self.failures, self.asked = code, failures, 0

    async def resolve(self, host: str, port: int = 0,
                      family: int = socket.AF_INET) -> list[dict[str, Any]]:
        self.asked += 1
        if self.asked <= self.failures:
            raise socket.gaierror(self.code, f"fake resolver: {host!r}")
        return [{"hostname": host, "host": "127.0.0.1", "port": port, "family": socket.AF_INET,
                 "proto": 0, "flags": socket.AI_NUMERICHOST}]

    async def close(self) -> None:
        pass


@pytest.mark.parametrize("egress", ["direct", "through a proxy"])
@pytest.mark.parametrize("code, failures, read", [
    (socket.EAI_NONAME, 1000, False), (socket.EAI_AGAIN, 2, True)], ids=["NXDOMAIN", "EAI_AGAIN"])
def test_a_name_that_does_not_resolve_is_asked_once(peers, monkeypatch, clock, egress, code,
                                                    failures, read):
    names = _Names(code, failures)
    monkeypatch.setattr(net_resolver, "system_resolver", lambda: names)
    peers.http.put("/names/x", DATA)
    http: dict[str, Any] = {"allow_private_networks": True}
    if egress != "direct":
        http["proxy"] = "http://127.0.0.1:9"  # never reached: the name is judged first
    fs = attachfs.filesystem(config={"platform": {"http": http}, "limits": LIMITS},
                             skip_instance_cache=True)
    url = f"http://names.example:{_port(peers.http.url)}/names/x"
    if read and egress == "direct":
        assert fs.cat_file(url) == DATA
        assert names.asked == failures + 1
    elif read:
        with pytest.raises(OSError):  # resolved at last; the proxy on port 9 refuses
            fs.cat_file(url)
        assert names.asked >= failures + 1
    else:
        with pytest.raises(OSError):
            fs.cat_file(url)
        assert names.asked == 1 and clock.waits == []


@pytest.fixture(scope="module")
def untrusted_tls(peers):
    """An https server on localhost whose certificate no one trusts; counts TLS handshakes."""
    import trustme

    from attachfs.testing.servers import LocalHTTPServer

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("localhost").configure_cert(ctx)
    hellos: list[str | None] = []
    ctx.sni_callback = lambda sock, name, _ctx: hellos.append(name)
    server = LocalHTTPServer(ssl_context=ctx).start()
    server.put("/x", DATA)
    yield server, hellos
    server.stop()


@pytest.mark.parametrize("backend", ["s3", "http"])
def test_a_certificate_that_does_not_verify_is_tried_once(untrusted_tls, clock, backend):
    server, hellos = untrusted_tls
    hellos.clear()
    base = f"https://localhost:{server.port}"
    if backend == "s3":
        config: dict[str, Any] = {"platform": {"aws": {"endpoint_url": base,
                                                       "region": "us-east-1"}}}
        uri = "s3://bkt/x"
    else:
        config, uri = {"platform": {"http": {"allow_private_networks": True}}}, f"{base}/x"
    config["limits"] = LIMITS
    fs = attachfs.filesystem(config=config, skip_instance_cache=True)
    with pytest.raises(OSError) as raised:
        fs.cat_file(uri)
    assert hellos == ["localhost"] and clock.waits == []
    assert not isinstance(raised.value, GaveUp)
    assert server.requests == []
