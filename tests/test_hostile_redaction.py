"""Hostile redaction: a URL attachfs shows keeps its parameter names and loses their values.

A signed or tokenised URL is a bearer credential, and the parameter that carries it is named
whatever the store likes: ``X-Amz-Signature`` and ``sig`` but also ``Authorization``, ``code``,
``token``, ``X-Foo``, a matrix parameter in the path or an OAuth fragment. So redaction cannot
be a list of names: every value goes, every name stays (a reader still sees which URL it was).

Every surface a user or a log sees is checked: ``repr``/``str`` of the file, the filesystem, the
Route and the Location; every error of ``cat``/``info``/``open``/``ls``/``get`` for responses a
server gets wrong (malformed status lines, headers, chunks, bodies, redirects) or refuses, the
whole ``__cause__``/``__context__`` chain and ``traceback.format_exception`` of each; pickles of
those errors; the CLI's stderr; and every log record emitted meanwhile, at DEBUG.

The servers are local (127.0.0.1); no emulator is needed.
"""

from __future__ import annotations

import asyncio
import io
import logging
import pickle
import re
import traceback
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import attachfs
from attachfs.testing.servers import TcpServer

HTTP = {"platform": {"http": {"allow_private_networks": True}}}

#: Raw answers a broken or hostile server may send. Each makes aiohttp (or fsspec) raise.
MALFORMED = {
    "bad-content-length": b"HTTP/1.1 200 OK\r\nContent-Length: banana\r\n\r\n",
    "bad-status-code": b"HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n",
    "not-http": b"garbage\r\n\r\n",
    "bad-chunk-size": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n",
    "bad-gzip": b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 10\r\n\r\n"
                b"notgzipped",
    "bad-redirect": b"HTTP/1.1 302 Found\r\nLocation: http://[::1\r\nContent-Length: 0\r\n\r\n",
    "bad-content-range": b"HTTP/1.1 206 Partial\r\nContent-Range: bytes x-y/z\r\n"
                         b"Content-Length: 3\r\n\r\nabc",
    "server-error": b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n",
    "forbidden": b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
    "not-found": b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
    "conflict": b"HTTP/1.1 409 Conflict\r\nContent-Length: 0\r\n\r\n",
    "cut-body": b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly-some",
}


class RawServer(TcpServer):
    """Answers every request with the raw bytes in ``answer`` and closes the connection."""

    name = "raw-answer"

    def __init__(self) -> None:
        super().__init__()
        self.answer = MALFORMED["not-found"]

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            return
        writer.write(self.answer)
        await writer.drain()
        writer.close()


@pytest.fixture(scope="module")
def raw() -> Iterator[RawServer]:
    with RawServer() as server:
        yield server


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries do not sleep, so the retried failures end quickly."""
    from attachfs._read import retry  # the backoff seam

    async def no_wait(seconds: float) -> None:
        return None

    monkeypatch.setattr(retry, "_sleep", no_wait, raising=False)


class Records(logging.Handler):
    """Every record any logger emits, formatted as a handler would (with tracebacks)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(self.format(record))


@pytest.fixture
def records() -> Iterator[Records]:
    root = logging.getLogger()
    handler, level = Records(), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def chain(err: BaseException) -> Iterator[BaseException]:
    """``err`` and every exception behind it (causes, contexts), each once."""
    seen: set[int] = set()
    todo = [err]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [e.__cause__, e.__context__]
        todo += list(getattr(e, "exceptions", ()))


def shown(err: BaseException) -> list[str]:
    """Everything a caller, a traceback or a pickle shows of ``err``."""
    out = ["".join(traceback.format_exception(err))]
    for e in chain(err):
        out += [str(e), repr(e), repr(e.args), repr(getattr(e, "__dict__", {}))]
        try:
            out.append(pickle.dumps(e).decode("latin-1"))
        except Exception as unpicklable:  # noqa: BLE001 -- an unpicklable error shows nothing
            out.append(repr(unpicklable))
    return out


def leaked(values: list[str], texts: list[str]) -> list[str]:
    return [v for v in values if any(v in t for t in texts)]


def _ops(fs: Any, url: str, tmp_path: Any) -> dict[str, Callable[[], object]]:
    return {
        "cat": lambda: fs.cat_file(url),
        "cat-range": lambda: fs.cat_file(url, start=2, end=5),
        "info": lambda: fs.info(url),
        "open-read": lambda: fs.open(url).read(),
        "ls": lambda: fs.ls(url),
        "get": lambda: fs.get_file(url, str(tmp_path / "out")),
        "cat-many": lambda: fs.cat([url], on_error="raise"),
    }


def _errors(fs: Any, url: str, tmp_path: Any) -> dict[str, BaseException]:
    out = {}
    for op, call in _ops(fs, url, tmp_path).items():
        try:
            call()
        except Exception as err:  # noqa: BLE001 -- every failure is inspected
            out[op] = err
    return out


# --------------------------------------------------------------------------- errors

VALUES = {"code": "c0deV4lueQQ1", "token": "t0kenV4lueQQ2", "X-Foo": "f00V4lueQQ3",
          "Authorization": "AuthV4lueQQ4", "X-Amz-Signature": "5igV4lueQQ5", "sig": "s1gV4lueQQ6"}
QUERY = "&".join(f"{k}={v}" for k, v in VALUES.items())


@pytest.mark.parametrize("answer", list(MALFORMED))
def test_errors_of_every_operation_show_no_value(raw: RawServer, records: Records,
                                                 tmp_path: Any, answer: str) -> None:
    """Whatever the server answers, no error (nor its chain, traceback or pickle) and no log
    record carries a query value of the URL that was read."""
    raw.answer = MALFORMED[answer]
    fs = attachfs.filesystem(config=HTTP, skip_instance_cache=True)
    errors = _errors(fs, f"{raw.url}/dir/obj.bin?{QUERY}", tmp_path)
    found = {op: leaked(list(VALUES.values()), shown(err)) for op, err in errors.items()}
    assert {op: v for op, v in found.items() if v} == {}
    assert leaked(list(VALUES.values()), records.texts) == []


def test_every_operation_fails_on_every_malformed_answer(raw: RawServer, tmp_path: Any) -> None:
    """A control for the test above: each operation really meets each bad answer (none of
    them is silently accepted as an object), so no leak check passes by not being reached."""
    fs = attachfs.filesystem(config=HTTP, skip_instance_cache=True)
    for answer in ("bad-content-length", "bad-status-code", "not-http", "forbidden",
                   "not-found"):
        raw.answer = MALFORMED[answer]
        errors = _errors(fs, f"{raw.url}/dir/obj.bin?{QUERY}", tmp_path)
        assert set(errors) == set(_ops(fs, "", tmp_path)), answer


@pytest.mark.parametrize("answer", ["bad-content-length", "not-http", "bad-chunk-size",
                                    "bad-redirect"])
def test_a_malformed_answer_is_an_oserror_naming_the_redacted_url(raw: RawServer,
                                                                  answer: str) -> None:
    """aiohttp's own error (``400, message=..., url='...'``) or a ``ValueError`` from a bad
    Location does not reach the caller: the read fails with an OSError that names the URL
    (names kept, values gone)."""
    raw.answer = MALFORMED[answer]
    fs = attachfs.filesystem(config=HTTP, skip_instance_cache=True)
    with pytest.raises(OSError) as failed:
        fs.cat_file(f"{raw.url}/dir/obj.bin?{QUERY}")
    message = str(failed.value)
    assert "/dir/obj.bin" in message
    assert all(name in message for name in VALUES), message
    assert leaked(list(VALUES.values()), [message]) == []


names = st.from_regex(r"[A-Za-z][A-Za-z0-9_.-]{0,15}", fullmatch=True)
values = st.text("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789", min_size=10,
                 max_size=24).map(lambda v: "~" + v)


@settings(max_examples=60, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=st.lists(st.tuples(names, values), min_size=1, max_size=5,
                       unique_by=lambda p: p[0].lower()),
       answer=st.sampled_from(list(MALFORMED)), form=st.sampled_from(["query", "fragment",
                                                                       "both"]))
def test_property_no_parameter_value_is_ever_shown(raw: RawServer, records: Records,
                                                   tmp_path: Any, params: list[tuple[str, str]],
                                                   answer: str, form: str) -> None:
    """Property: for any parameter names and values, in the query or the fragment, whatever
    the server answers, no value appears in the errors, their chains and pickles, the reprs of
    the file, Route and Location, or the logs."""
    raw.answer = MALFORMED[answer]
    half = max(1, len(params) // 2)
    pairs = ["&".join(f"{n}={v}" for n, v in part) for part in (params[:half], params[half:])]
    query, fragment = {"query": ("&".join(pairs).strip("&"), ""),
                       "fragment": ("", "&".join(pairs).strip("&")),
                       "both": pairs}[form]
    url = f"{raw.url}/p/obj.bin" + (f"?{query}" if query else "") + (
        f"#{fragment}" if fragment else "")
    fs = attachfs.filesystem(config=HTTP, skip_instance_cache=True)
    texts: list[str] = []
    route = attachfs.explain(url, config=HTTP)
    texts += [repr(route), str(route), repr(route.location), str(route.location)]
    f = fs.open(url)
    texts += [repr(f), str(f)]
    for err in _errors(fs, url, tmp_path).values():
        texts += shown(err)
    secret = [v for _, v in params]
    assert leaked(secret, texts) == [], url
    assert leaked(secret, records.texts) == [], url


# --------------------------------------------------------------------------- reprs, names kept

SIGNED = [
    ("aws", "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20261128&"
            "X-Amz-Signature=deadbeefcafe0123456789"),
    ("azure-sas", "sv=2023-11-03&sp=r&sig=c2VjcmV0c2lnbmF0dXJl"),
    ("oauth-code", "code=4%2F0AX4XfWh-secretcode&state=st4teV4lue99"),
    ("bearer-in-query", "Authorization=Bearer%20eyJhbGciOi.secretpart"),
    ("custom", "X-Foo=barbarbarV4lue&download=1"),
]


def _values_of(query: str) -> list[str]:
    return [v for _, _, v in (p.partition("=") for p in query.split("&")) if len(v) >= 6]


def _names_of(query: str) -> list[str]:
    return [p.partition("=")[0] for p in query.split("&")]


@pytest.mark.parametrize("query", [q for _, q in SIGNED], ids=[n for n, _ in SIGNED])
def test_reprs_of_file_route_and_location_keep_names_and_lose_values(raw: RawServer,
                                                                     query: str) -> None:
    """``repr``/``str`` of an open file, its Route and Location: every name, no value."""
    url = f"{raw.url}/dir/obj.bin?{query}"
    fs = attachfs.filesystem(config=HTTP, skip_instance_cache=True)
    f = fs.open(url)
    route = fs.route(url)
    surfaces = {"repr(file)": repr(f), "str(file)": str(f), "repr(route)": repr(route),
                "str(route)": str(route), "repr(location)": repr(route.location),
                "str(location)": str(route.location), "repr(fs)": repr(fs)}
    assert {k: leaked(_values_of(query), [t]) for k, t in surfaces.items()
            if leaked(_values_of(query), [t])} == {}
    for where in ("repr(file)", "repr(route)", "repr(location)"):
        missing = [n for n in _names_of(query) if n not in surfaces[where]]
        assert missing == [], f"{where} lost the parameter names {missing}: {surfaces[where]}"


def test_every_surface_shows_the_same_redacted_url(raw: RawServer, tmp_path: Any) -> None:
    """One redaction for the whole library: the file, the Route, the Location and the errors
    of a read all show a URL the same way."""
    url = f"{raw.url}/dir/obj.bin?{QUERY}"
    raw.answer = MALFORMED["not-found"]
    fs = attachfs.filesystem(config=HTTP, skip_instance_cache=True)
    texts = [repr(fs.open(url)), repr(fs.route(url)), repr(fs.route(url).location)]
    texts += [str(e) for e in _errors(fs, url, tmp_path).values()]
    raw.answer = MALFORMED["server-error"]
    texts += [str(e) for e in _errors(fs, url, tmp_path).values()]
    pattern = re.escape(raw.url) + r"/dir/obj\.bin[^\s'\"),]*"
    forms = {m for t in texts for m in re.findall(pattern, t)}
    assert len(forms) == 1, sorted(forms)


@pytest.mark.parametrize("url, value", [
    ("{base}/dir/obj.bin;jsessionid=mAtr1xV4lue99", "mAtr1xV4lue99"),
    ("{base}/dir;token=mAtr1xV4lue98/obj.bin", "mAtr1xV4lue98"),
    ("{base}/dir/obj.bin#access_token=fr4gV4lue97&state=x", "fr4gV4lue97"),
    ("{base}/dir/obj.bin#code=fr4gV4lue96", "fr4gV4lue96"),
    ("{base}/dir/obj.bin?a=1#code=fr4gV4lue95", "fr4gV4lue95"),
    ("{base}/dir/obj.bin?Code=MiXedCaseV4lue94", "MiXedCaseV4lue94"),
    ("{base}/dir/obj.bin?%63ode=EncodedNameV4lue93", "EncodedNameV4lue93"),
    ("{base}/dir/obj.bin?x=1&&token=DoubleAmpV4lue92", "DoubleAmpV4lue92"),
    ("{base}/dir/obj.bin?token=Semi;colonV4lue91", "colonV4lue91"),
    ("{base}/dir/obj.bin?justAValueNoNameV4lue90", "justAValueNoNameV4lue90"),
    ("{base}/dir/obj.bin?k=a=b=EqualsInV4lue89", "EqualsInV4lue89"),
], ids=["matrix", "matrix-mid-path", "fragment-token", "fragment-code", "query+fragment",
        "mixed-case", "encoded-name", "empty-pair", "semicolon", "bare-value", "equals-in-value"])
def test_odd_parameter_forms_lose_their_values(raw: RawServer, tmp_path: Any, url: str,
                                               value: str) -> None:
    """Matrix parameters, fragments, odd separators and bare values: no value shown."""
    url = url.format(base=raw.url)
    raw.answer = MALFORMED["not-found"]
    fs = attachfs.filesystem(config=HTTP, skip_instance_cache=True)
    texts = [repr(fs.open(url)), repr(fs.route(url)), repr(fs.route(url).location),
             str(fs.route(url).location)]
    for err in _errors(fs, url, tmp_path).values():
        texts += shown(err)
    assert leaked([value], texts) == []


@pytest.mark.parametrize("url, secret", [
    ("http://user:pa55w0rdV4lue@127.0.0.1:9/x", "pa55w0rdV4lue"),
    ("http://ghp_t0kenAsUserV4lue@127.0.0.1:9/x", "ghp_t0kenAsUserV4lue"),
    ("http://:0nlyPa55V4lue@127.0.0.1:9/x", "0nlyPa55V4lue"),
    ("https://u:p%40ssEncodedV4lue@127.0.0.1:9/x", "ssEncodedV4lue"),
    ("s3://user:s3cretUserinfoV4lue@bucket/key", "s3cretUserinfoV4lue"),
])
def test_userinfo_never_appears_in_the_refusal(url: str, secret: str) -> None:
    """A URL with credentials in its userinfo is refused without repeating them."""
    with pytest.raises(ValueError) as refused:
        attachfs.explain(url, config=HTTP)
    assert leaked([secret], shown(refused.value)) == []


# --------------------------------------------------------------------------- logs and the CLI

def test_fsspec_http_debug_log_carries_no_value(raw: RawServer, records: Records,
                                                tmp_path: Any) -> None:
    """fsspec's HTTP filesystem logs every URL it fetches at DEBUG (``logger.debug(url)``): the
    values must be gone by the time any handler formats the record."""
    raw.answer = MALFORMED["not-found"]
    fs = attachfs.filesystem(config=HTTP, skip_instance_cache=True)
    _errors(fs, f"{raw.url}/dir/?{QUERY}", tmp_path)
    assert any("fsspec" in t for t in records.texts), "fsspec logged nothing: nothing checked"
    assert leaked(list(VALUES.values()), records.texts) == []


@pytest.mark.parametrize("command", ["cat", "stat", "ls", "check", "explain"])
@pytest.mark.parametrize("answer", ["not-found", "bad-content-length", "forbidden"])
def test_the_cli_shows_no_value(raw: RawServer, tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
                                command: str, answer: str) -> None:
    """What ``attachfs <command>`` prints on stdout and stderr for a URL that fails (its logs
    at -vv are test_hostile_logs.py's)."""
    from attachfs._cli import commands as cli

    monkeypatch.delenv("ATTACHFS_TENANT", raising=False)
    config = tmp_path / "attachfs.toml"
    config.write_text("[platform.http]\nallow_private_networks = true\n")
    raw.answer = MALFORMED[answer]
    # ``cat`` writes bytes to ``sys.stdout.buffer``: a text stream over bytes, as a terminal's.
    out, err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8"), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        cli.main([command, "--config", str(config), f"{raw.url}/dir/obj.bin?{QUERY}"])
    out.flush()
    printed = out.buffer.getvalue().decode("utf-8", "replace")  # type: ignore[attr-defined]
    assert "/dir/obj.bin" in printed + err.getvalue(), "the URL was not shown: nothing checked"
    assert leaked(list(VALUES.values()), [printed, err.getvalue()]) == []


# --------------------------------------------------------------------------- beyond the review

def _redact(url: str) -> str:
    from attachfs._redact import redact  # the one redaction of the library

    return redact(url)


secret_values = st.text("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789", min_size=8,
                        max_size=20).map(lambda v: "Q" + v)
param_names = st.from_regex(r"[A-Za-z][A-Za-z0-9_.-]{0,12}", fullmatch=True)


@settings(max_examples=300, deadline=None)
@given(named=st.lists(st.tuples(param_names, secret_values), max_size=4),
       bare=st.lists(secret_values, max_size=2),
       matrix=st.lists(st.tuples(param_names, secret_values), max_size=2),
       fragment=st.lists(st.tuples(param_names, secret_values), max_size=2),
       sep=st.sampled_from(["&", ";", "&&"]),
       userinfo=st.sampled_from(["", "user:{v}@", "{v}@", ":{v}@"]),
       host=st.sampled_from(["files.example", "127.0.0.1:8080", "[::1]:8443", "[fd00::1]"]))
def test_property_redact_keeps_every_name_and_no_value(named: list[tuple[str, str]],
                                                       bare: list[str],
                                                       matrix: list[tuple[str, str]],
                                                       fragment: list[tuple[str, str]], sep: str,
                                                       userinfo: str, host: str) -> None:
    """Property: for any mix of named and bare query items, path parameters, fragment
    parameters, separators, user info and host forms (IPv6 included), ``redact`` shows every
    parameter name and no value, and so does every surface built on it (a URL in free text,
    as aiohttp and fsspec put it in their messages)."""
    from attachfs._redact import redact_text, scrub

    password = "Pw" + (bare[0] if bare else "pass1234")
    items = [f"{n}={v}" for n, v in named] + bare
    path = "/dir" + "".join(f";{n}={v}" for n, v in matrix) + "/obj.bin"
    url = (f"http://{userinfo.format(v=password)}{host}{path}" + (f"?{sep.join(items)}" if items
                                                                    else "")
           + (f"#{'&'.join(f'{n}={v}' for n, v in fragment)}" if fragment else ""))
    values = [v for _, v in named + matrix + fragment] + bare + ([password] if userinfo else [])
    shown = _redact(url)
    texts = [shown, redact_text(f"400, message='Bad', url='{url}'"),
             redact_text(f"GET {url} failed"), scrub(f"url=URL('{url}')")]
    assert leaked(values, texts) == [], (url, texts)
    assert all(n in shown for n, _ in named + matrix + fragment), shown


@pytest.mark.parametrize("answer", ["bad-content-length", "not-http", "cut-body"])
def test_a_url_that_hides_nothing_keeps_its_errors_chain(raw: RawServer, answer: str) -> None:
    """A control for the chain cutting: with nothing to hide, the cause (aiohttp's error, the
    last failure) stays chained for whoever debugs it."""
    raw.answer = MALFORMED[answer]
    fs = attachfs.filesystem(config=HTTP, skip_instance_cache=True)
    with pytest.raises(OSError) as failed:
        fs.cat_file(f"{raw.url}/dir/plain.bin")
    causes = [e for e in chain(failed.value) if e is not failed.value]
    assert causes, f"the chain was cut though the URL hides nothing: {failed.value!r}"


@pytest.mark.parametrize("answer", list(MALFORMED))
def test_errors_of_a_signed_url_in_userinfo_and_fragment_show_no_value(
        raw: RawServer, tmp_path: Any, answer: str) -> None:
    """The same as for the query, for values in path parameters and the fragment."""
    raw.answer = MALFORMED[answer]
    fs = attachfs.filesystem(config=HTTP, skip_instance_cache=True)
    url = f"{raw.url}/dir;sess=Se55ionV4lueQQ7/obj.bin?a=1#access_token=Fr4gV4lueQQ8"
    for op, err in _errors(fs, url, tmp_path).items():
        assert leaked(["Se55ionV4lueQQ7", "Fr4gV4lueQQ8"], shown(err)) == [], op


def test_a_reads_description_shows_no_value_in_a_log_record_repr_or_pickle() -> None:
    """The retry loop names a read lazily (redacting costs per request) and logs it as a
    record argument: a handler that keeps, reprs or pickles the record's arguments (a
    QueueHandler's listener, a custom handler) must see the redacted URI only."""
    from attachfs import _read

    url = f"https://acct.blob.core.windows.net/c/k.bin?{QUERY}"
    what = _read._Reading(url)
    record = logging.LogRecord("attachfs", logging.DEBUG, __file__, 1, "%s: attempt failed",
                               (what,), None)
    texts = [str(what), repr(what), record.getMessage(), repr(record.args),
             pickle.dumps(what).decode("latin-1"),
             pickle.dumps(record.args).decode("latin-1")]
    assert "k.bin" in str(what)
    assert not leaked(list(VALUES.values()), texts), texts
