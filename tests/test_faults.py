"""Reads through a fault-injecting proxy (tests/fakes/faulty_proxy.py) placed between attachfs
and the local servers: resets, stalls, drips, 5xx bursts, short bodies, error documents.

Every case asserts the exact bytes or the exact error, and the exact (or bounded) number of
attempts the proxy saw. Timeouts are configured small; no test asserts a duration, only that a
stall ends with a timeout error (``ReadTimeout``, an ``OSError`` with ``ETIMEDOUT``) instead of
hanging. Waits between attempts are recorded, not
slept, so ``Retry-After`` is checked by value.
"""

from __future__ import annotations

import asyncio
import errno

import pytest

import attachfs
from attachfs import AccessDenied, GaveUp, IntegrityError, Limits, ReadTimeout, TooLarge
from attachfs._net.guard import Guard
from attachfs._net.policy import Policy
from attachfs._read import errors, retry
from attachfs._read.http import http_part
from fakes.clock import VirtualClock
from fakes.faulty_proxy import (
    Answer,
    Drip,
    FaultyProxy,
    Reset,
    Short,
    Stall,
    Then,
    error_document,
    slow_down,
)

DATA = bytes(range(256)) * 1024 + b"end"   # 262,147 bytes
#: The config's [limits] table of every read here: small timeouts, a short backoff.
LIMITS = {"connect_timeout": 2.0, "read_timeout": 0.5, "min_rate": 1024.0,
          "total_timeout": 8.0, "max_object_bytes": 2**30, "max_attempts": 4,
          "backoff_base": 0.01, "backoff_cap": 0.02}


def _with_limits(fs, **limits):
    """``fs`` reading under the [limits] of its config, changed by ``limits``."""
    config = {**fs.config.as_mapping(), "limits": {**LIMITS, **limits}}
    return attachfs.filesystem(config=config, tenant=fs.tenant, skip_instance_cache=True)


@pytest.fixture
def waits(monkeypatch):
    """The waits between attempts, in seconds (not actually slept: a virtual clock)."""
    return VirtualClock().install(monkeypatch).waits


# --------------------------------------------------------------------------- plain http(s)

@pytest.fixture(scope="module")
def http_proxy(peers):
    with FaultyProxy(int(peers.http.url.rsplit(":", 1)[1])) as proxy:
        yield proxy


@pytest.fixture
def http(peers, http_proxy, waits):
    """(fs, url of DATA behind the proxy, proxy)."""
    peers.http.put("/faults/obj", DATA)
    http_proxy.reset()
    config = peers.config()
    config["platform"]["http"] = {"allow_private_networks": True}
    config["limits"] = LIMITS
    fs = attachfs.filesystem(config=config, skip_instance_cache=True)
    return fs, f"{http_proxy.url}/faults/obj", http_proxy


def _ranges(proxy) -> list[str | None]:
    return [s.headers.get("Range") for s in proxy.seen]


def test_passes_through(http):
    fs, url, proxy = http
    assert fs.cat_file(url) == DATA
    assert proxy.attempts == 1


def test_reset_mid_body_resumes_pinned_to_the_version(http):
    fs, url, proxy = http
    proxy.reset(Reset(after=1000))
    assert fs.cat_file(url) == DATA
    assert _ranges(proxy) == [None, "bytes=1000-"]
    etag = proxy.seen[1].headers["If-Match"]
    assert etag.startswith('"') and "If-Match" not in proxy.seen[0].headers


def test_two_resets_resume_twice(http):
    fs, url, proxy = http
    proxy.reset(Reset(after=1000), Reset(after=5000))
    assert fs.cat_file(url) == DATA
    assert _ranges(proxy) == [None, "bytes=1000-", "bytes=6000-"]


def test_reset_in_a_ranged_read_resumes_inside_the_range(http):
    fs, url, proxy = http
    proxy.reset(Reset(after=300))
    assert fs.cat_file(url, start=100, end=200_100) == DATA[100:200_100]
    assert _ranges(proxy) == ["bytes=100-200099", "bytes=400-200099"]


def test_reset_every_time_gives_up_after_the_attempt_budget(http):
    fs, url, proxy = http
    proxy.reset(*[Reset(after=0)] * 10)
    with pytest.raises(GaveUp) as gave_up:
        fs.cat_file(url)
    assert proxy.attempts == LIMITS["max_attempts"] == gave_up.value.attempts
    assert "after 4 attempts" in str(gave_up.value)
    assert "the connection broke after 0 bytes" in str(gave_up.value)


def test_resets_that_each_get_some_bytes_are_progress_and_start_the_budget_again(http):
    # Each attempt resumes where the last one broke: an outage is a run of attempts that got
    # nowhere, so six breaks with bytes between them are more than max_attempts (4).
    fs, url, proxy = http
    proxy.reset(*[Reset(after=1000)] * 6)
    assert fs.cat_file(url) == DATA
    assert _ranges(proxy) == [None] + [f"bytes={1000 * n}-" for n in range(1, 7)]


def test_a_body_without_etag_is_read_again_from_the_start(peers, http):
    fs, url, proxy = http
    peers.http.put("/faults/obj", DATA, headers={"ETag": None})
    proxy.reset(Reset(after=1000))
    assert fs.cat_file(url) == DATA
    assert _ranges(proxy) == [None, None]
    assert "If-Match" not in proxy.seen[1].headers


def test_object_replaced_between_attempts_fails_never_mixes(peers, http):
    fs, url, proxy = http
    proxy.reset(Reset(after=1000), Then(lambda: peers.http.put("/faults/obj", b"X" * len(DATA))))
    with pytest.raises(IntegrityError, match="changed while it was being read"):
        fs.cat_file(url)
    assert proxy.attempts == 2


def test_503_burst_is_retried(http, waits):
    fs, url, proxy = http
    proxy.reset(slow_down(), slow_down(), Answer(500))
    assert fs.cat_file(url) == DATA
    assert proxy.attempts == 4
    assert len(waits) == 3 and all(0 <= w <= LIMITS["backoff_cap"] for w in waits)


def test_503_until_the_budget_runs_out(http):
    fs, url, proxy = http
    proxy.reset(*[slow_down()] * 10)
    with pytest.raises(GaveUp) as gave_up:
        fs.cat_file(url)
    assert proxy.attempts == 4
    assert gave_up.value.last_status == 503
    assert str(gave_up.value).startswith("gave up reading ") and "(last status 503)" in str(
        gave_up.value)


def test_429_retry_after_is_honoured(http, waits):
    fs, url, proxy = http
    proxy.reset(slow_down(429, retry_after="2"))
    assert fs.cat_file(url) == DATA
    assert waits == [2.0]
    assert proxy.attempts == 2


def test_retry_after_past_the_deadline_gives_up_at_once(http, waits):
    fs, url, proxy = http
    proxy.reset(slow_down(429, retry_after="3600"))
    with pytest.raises(GaveUp) as gave_up:
        fs.cat_file(url)
    assert proxy.attempts == 1 and waits == []
    assert gave_up.value.last_status == 429
    assert "asked to retry after 3.6e+03 s, past the deadline" in str(gave_up.value)


@pytest.mark.parametrize("status, error", [
    (400, OSError), (401, AccessDenied), (403, AccessDenied), (404, FileNotFoundError),
    (412, OSError), (501, OSError),
])
def test_final_statuses_are_never_retried(http, waits, status, error):
    fs, url, proxy = http
    proxy.reset(Answer(status))
    with pytest.raises(error) as raised:
        fs.cat_file(url)
    assert proxy.attempts == 1 and waits == []
    assert not isinstance(raised.value, GaveUp)


def test_412_on_a_later_block_means_the_object_changed(http):
    fs, url, proxy = http
    with fs.open(url, block_size=1000) as f:
        assert f.read(10) == DATA[:10]
        proxy.reset(Answer(412))
        f.seek(100_000)
        with pytest.raises(IntegrityError):
            f.read(10)
    assert proxy.attempts == 1


def test_200_with_an_error_document_is_data(http):
    # A 2xx body is the object, whatever it contains (GetObject's body is the object; error
    # documents come with non-2xx statuses only): returned with one request, never retried.
    fs, url, proxy = http
    answer = error_document("InternalError")
    proxy.reset(answer)
    assert fs.cat_file(url) == answer.body
    assert proxy.attempts == 1


def test_an_xml_object_is_not_mistaken_for_an_error_document(peers, http):
    fs, url, proxy = http
    doc = b'<?xml version="1.0"?><Error><Code>NotRetryable</Code></Error>'
    peers.http.put("/faults/obj", doc, headers={"Content-Type": "application/xml"})
    assert fs.cat_file(url) == doc
    assert proxy.attempts == 1


def test_short_body_is_detected_and_resumed(http):
    fs, url, proxy = http
    proxy.reset(Short(missing=1000))
    assert fs.cat_file(url) == DATA
    assert _ranges(proxy) == [None, f"bytes={len(DATA) - 1000}-"]


def test_short_body_with_a_matching_content_length_is_caught_by_content_range(http):
    # The transport cannot tell (Content-Length says 90,000 and 90,000 bytes came); the
    # Content-Range of the answer says 100,000 were sent.
    fs, url, proxy = http
    proxy.reset(Short(missing=10_000, honest=True))
    assert fs.cat_file(url, start=0, end=100_000) == DATA[:100_000]
    assert _ranges(proxy) == ["bytes=0-99999", "bytes=90000-99999"]


def test_short_body_every_time_is_never_returned_short(http):
    # The first short body is progress (all but 10 bytes) and opens a new budget; the resumes
    # that follow get nothing, and it runs out on them.
    fs, url, proxy = http
    proxy.reset(*[Short(missing=10)] * 10)
    with pytest.raises(GaveUp):
        fs.cat_file(url)
    assert _ranges(proxy) == [None] + [f"bytes={len(DATA) - 10}-"] * 3


def test_stall_once_then_resume(http):
    fs, url, proxy = http
    proxy.reset(Stall(after=100))
    assert fs.cat_file(url) == DATA
    assert _ranges(proxy) == [None, "bytes=100-"]


def test_stall_in_the_body_ends_with_a_timeout_error(http):
    fs, url, proxy = http
    proxy.reset(*[Stall(after=100)] * 10)  # 100 bytes before each stall: no progress
    with pytest.raises(ReadTimeout) as timed_out:
        fs.cat_file(url)
    assert timed_out.value.phase == "body" and timed_out.value.errno == errno.ETIMEDOUT
    assert "read timeout" in str(timed_out.value) and "after 4 attempts" in str(timed_out.value)
    assert proxy.attempts == 4


def test_stall_before_the_response_ends_with_a_timeout_error(http):
    fs, url, proxy = http
    proxy.reset(*[Stall(after=None)] * 10)
    with pytest.raises(ReadTimeout) as timed_out:
        fs.cat_file(url)
    assert timed_out.value.phase == "response"
    assert "response headers" in str(timed_out.value)
    assert proxy.attempts == 4


def test_drip_ends_with_a_timeout_error(http):
    fs, url, proxy = http
    proxy.reset(*[Drip(every=0.02)] * 10)
    with pytest.raises(ReadTimeout) as timed_out:
        fs.cat_file(url)
    assert timed_out.value.phase == "body" and "slow body" in str(timed_out.value)
    assert 1 <= proxy.attempts <= 4


def test_deadline_ends_the_read_whatever_the_attempt_budget(http):
    fs, url, proxy = http
    fs = _with_limits(fs, read_timeout=5.0, min_rate=0.0, total_timeout=0.5, max_attempts=100)
    proxy.reset(*[Drip(every=0.05)] * 100)
    with pytest.raises(ReadTimeout) as timed_out:
        fs.cat_file(url)
    assert timed_out.value.phase == "deadline"
    assert "deadline" in str(timed_out.value) and proxy.attempts == 1


def test_size_cap_refuses_before_reading_the_body(http):
    fs, url, proxy = http
    fs = _with_limits(fs, max_object_bytes=1000)
    with pytest.raises(TooLarge) as too_large:
        fs.cat_file(url, start=0, end=10)
    assert too_large.value.size == len(DATA) and too_large.value.limit == 1000
    assert proxy.attempts == 1


def test_metadata_and_downloads_are_retried_too(http, tmp_path):
    fs, url, proxy = http
    proxy.reset(slow_down(), Answer(502))
    assert fs.info(url)["size"] == len(DATA)
    assert proxy.attempts == 3
    proxy.reset(Reset(after=5000))
    fs.get(url, str(tmp_path / "obj"))
    assert (tmp_path / "obj").read_bytes() == DATA
    assert proxy.attempts == 2


# --------------------------------------------------------------------------- cloud backends
# The same faults between attachfs and moto / fake-gcs-server / Azurite. The cloud readers
# retry the same faults, within the same [limits] budget, to the exact bytes.


def _port(url: str) -> int:
    return int(url.rstrip("/").rsplit(":", 1)[1].split("/")[0])


@pytest.fixture(scope="module")
def cloud_proxies(peers):
    upstream = {"s3": peers.s3_endpoint, "gcs": peers.gcs_endpoint,
                "azure": peers.azure_endpoint.split("/{account}")[0]}
    proxies = {b: FaultyProxy(_port(u)).start() for b, u in upstream.items()}
    yield proxies
    for proxy in proxies.values():
        proxy.stop()


@pytest.fixture(params=["s3", "gcs", "azure"])
def cloud(request, peers, names, cloud_proxies, waits):
    """(fs reading for tenant acme, URI of DATA, the proxy in front of that backend)."""
    backend, bucket = request.param, names("f")
    if backend == "s3":
        peers.make_s3_bucket(bucket)
        peers.put_s3(bucket, "obj.bin", DATA)
        uri = f"s3://{bucket}/obj.bin"
    elif backend == "gcs":
        peers.make_gcs_bucket(bucket)
        peers.put_gcs(bucket, "obj.bin", DATA)
        uri = f"gs://{bucket}/obj.bin"
    else:
        peers.make_azure_container(bucket, public=True)
        peers.put_azure(bucket, "obj.bin", DATA)
        uri = f"https://{peers.azure_account}.blob.core.windows.net/{bucket}/obj.bin"
    config = peers.config()
    platform = config["platform"]
    platform["aws"]["endpoint_url"] = cloud_proxies["s3"].url
    platform["gcp"]["endpoint_url"] = cloud_proxies["gcs"].url
    platform["azure"]["endpoint_url"] = cloud_proxies["azure"].url + "/{account}"
    config["tenants"] = {"acme": {"direct": [f"s3://{bucket}", f"gs://{bucket}"]}}
    config["limits"] = LIMITS
    fs = attachfs.filesystem(config=config, tenant="acme", skip_instance_cache=True)
    proxy = cloud_proxies[backend]
    proxy.reset()
    return fs, uri, proxy


def test_cloud_passes_through(cloud):
    fs, uri, proxy = cloud
    assert fs.cat_file(uri) == DATA
    assert fs.cat_file(uri, start=10, end=20) == DATA[10:20]
    assert proxy.attempts == 2


@pytest.mark.parametrize("status, error", [(404, FileNotFoundError), (403, AccessDenied),
                                           (400, OSError)])
def test_cloud_final_statuses_are_never_retried(cloud, status, error):
    fs, uri, proxy = cloud
    proxy.reset(Answer(status))
    with pytest.raises(error):
        fs.cat_file(uri)
    assert proxy.attempts == 1


def test_cloud_503_forever_ends_with_an_error_after_a_bounded_number_of_attempts(cloud):
    fs, uri, proxy = cloud
    proxy.reset(*[slow_down()] * 20)
    with pytest.raises(OSError, match="503"):
        fs.cat_file(uri)
    assert 1 <= proxy.attempts <= 4


def test_cloud_reset_mid_body_returns_the_exact_bytes(cloud):
    fs, uri, proxy = cloud
    proxy.reset(Reset(after=1000))
    assert fs.cat_file(uri) == DATA
    assert proxy.attempts == 2


def test_cloud_503_burst_returns_the_exact_bytes(cloud):
    fs, uri, proxy = cloud
    proxy.reset(slow_down(), slow_down())
    assert fs.cat_file(uri) == DATA
    assert proxy.attempts == 3


def test_cloud_short_body_is_never_returned_short(cloud):
    fs, uri, proxy = cloud
    proxy.reset(Short(missing=1000))
    assert fs.cat_file(uri) == DATA
    assert proxy.attempts == 2


def test_cloud_short_body_matching_its_content_length_is_caught(cloud):
    fs, uri, proxy = cloud
    proxy.reset(Short(missing=10_000, honest=True))
    assert fs.cat_file(uri, start=0, end=100_000) == DATA[:100_000]
    assert proxy.attempts == 2


@pytest.mark.parametrize("fault", [Stall(after=100), Drip(every=0.05)], ids=["stall", "drip"])
def test_cloud_stall_and_drip_end_with_a_timeout_error(cloud, fault):
    fs, uri, proxy = cloud
    proxy.reset(*[fault] * 10)
    with pytest.raises(ReadTimeout):
        fs.cat_file(uri)
    assert proxy.attempts <= 4


# --------------------------------------------------------------------------- the retry layer

def _run(coro):
    return asyncio.run(coro)


def test_retry_run_rereads_transient_failures_and_stops_at_final_ones(waits):
    calls = []
    limits = Limits(**LIMITS)

    async def attempt(n):
        calls.append(n)
        if n == 1:
            errors.raise_for_status("s3://bucket/key", "s3", 503, "SlowDown", None,
                                    {"Retry-After": "1"})
        if n == 2:
            errors.check_body(206, {"Content-Range": "bytes 0-9/10"}, b"short")
        return b"0123456789"

    def run(attempt):
        return _run(retry.run(attempt, what="reading s3://bucket/key", limits=limits,
                              deadline=float("inf"), classify=errors.transient))

    assert run(attempt) == b"0123456789"
    assert calls == [1, 2, 3] and waits[0] == 1.0

    async def missing(n):
        calls.append(n)
        raise FileNotFoundError("s3://bucket/key")

    calls.clear()
    with pytest.raises(FileNotFoundError):
        run(missing)
    assert calls == [1]


def test_retry_run_gives_up_after_the_budget_with_the_last_status(waits):
    async def busy(n):
        errors.raise_for_status("s3://bucket/key", "s3", 429, None, None)

    with pytest.raises(GaveUp) as gave_up:
        _run(retry.run(busy, what="reading s3://bucket/key", limits=Limits(**LIMITS).with_values(
            max_attempts=3), deadline=float("inf")))
    assert gave_up.value.attempts == 3 and gave_up.value.last_status == 429
    assert str(gave_up.value) == ("gave up reading s3://bucket/key after 3 attempts "
                                  "(last status 429): HTTP 429")


@pytest.mark.parametrize("status, code, retried", [
    (500, None, True), (502, None, True), (503, "SlowDown", True), (504, None, True),
    (408, None, True), (429, None, True), (400, "RequestTimeout", True),
    (400, None, False), (401, None, False), (403, None, False), (404, None, False),
    (412, None, False), (501, None, False), (505, None, False),
])
def test_which_statuses_are_retried(status, code, retried):
    with pytest.raises(retry.Retry if retried else Exception) as raised:
        errors.raise_for_status("s3://bucket/key", "s3", status, code, '"v1"', {})
    assert isinstance(raised.value, retry.Retry) == retried


def test_transient_recognises_broken_connections_and_sdk_errors():
    import aiohttp
    from botocore.exceptions import ClientError

    assert errors.transient(aiohttp.ClientPayloadError("cut")) is not None
    assert errors.transient(ConnectionResetError()) is not None
    slow = ClientError({"Error": {"Code": "SlowDown"},
                        "ResponseMetadata": {"HTTPStatusCode": 503}}, "GetObject")
    assert errors.transient(slow).status == 503
    denied = ClientError({"Error": {"Code": "AccessDenied"},
                          "ResponseMetadata": {"HTTPStatusCode": 403}}, "GetObject")
    assert errors.transient(denied) is None
    assert errors.transient(FileNotFoundError()) is None


def test_retry_after_reads_seconds_and_dates():
    assert retry.retry_after("7") == 7.0
    assert retry.retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=lambda: 1445412470.0) == 10.0
    assert retry.retry_after("soon") is None and retry.retry_after(None) is None


def test_backoff_is_full_jitter_capped():
    assert retry.backoff(1, 0.5, 10, lambda: 1.0) == 0.5
    assert retry.backoff(4, 0.5, 10, lambda: 1.0) == 4.0
    assert retry.backoff(10, 0.5, 10, lambda: 1.0) == 10
    assert retry.backoff(3, 0.5, 10, lambda: 0.0) == 0.0


# --------------------------------------------------------------------------- suffix ranges

def _http_part(url: str, start: int, end: int | None = None, version: str | None = None):
    guard = Guard(policy=Policy(allow_private_networks=True))

    async def go():
        session = await guard.session()
        try:
            return await http_part(guard, session, url, start, end, version)
        finally:
            await session.close()

    return asyncio.run(go())


def test_suffix_read_resumes_at_the_absolute_offset(http):
    fs, url, proxy = http
    proxy.reset(Reset(after=300))
    part = _http_part(url, -1000)
    assert part.data == DATA[-1000:] and part.size == len(DATA) and part.start == -1000
    assert _ranges(proxy) == ["bytes=-1000", f"bytes={len(DATA) - 700}-"]
    assert proxy.seen[1].headers["If-Match"] == part.version


def test_suffix_longer_than_the_object_is_the_whole_object(peers, http):
    fs, url, proxy = http
    peers.http.put("/faults/small", b"tiny")
    assert _http_part(url.replace("/obj", "/small"), -1000).data == b"tiny"


@pytest.mark.parametrize("length", [True, False], ids=["announced", "unannounced"])
def test_suffix_of_a_server_that_ignores_range(peers, servers_origin, length):
    origin = servers_origin
    origin.answer("/whole", DATA, chunked=not length)
    part = _http_part(f"http://127.0.0.1:{origin.port}/whole", -1000)
    assert part.data == DATA[-1000:] and part.size == len(DATA)


@pytest.fixture(scope="module")
def servers_origin():
    from fakes.origin import Origin

    with Origin() as origin:
        yield origin


def test_metadata_survives_a_stalled_answer(http):
    fs, url, proxy = http
    proxy.reset(Stall(after=None), Stall(after=None))
    assert fs.info(url)["size"] == len(DATA)
    assert proxy.attempts == 3 and [s.method for s in proxy.seen] == ["HEAD"] * 3
