"""`--json` is a stable interface: `ls` and `stat` print one shape for every backend, `check`
prints one document.

The shape (docs/cli.md, "JSON output"): name, size, type, version, etag (no quotes),
last_modified (ISO 8601, UTC), content_type; every value a JSON scalar, never a Python repr.
"""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from attachfs._cli import commands as cli
from attachfs._cli.info import KEYS, normalise
from attachfs.testing.serve import to_toml
from stores import BACKENDS, new_store

ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z")
# What a Python repr inside a string looks like: an object, a bytes or bytearray literal, a dict.
REPR = re.compile(r"<\w[\w.]* object|bytearray\(|b'|\{'|datetime\.")


# --------------------------------------------------------------------------- the normaliser

# One raw entry per inner filesystem, as each returned it on the emulators (trimmed).
RAW = {
    "s3fs": {"ContentType": "text/csv", "ETag": '"e5ebd4c02cefbe7955977c67ada242b7"',
             "LastModified": dt.datetime(2026, 12, 1, 7, 54, 6, tzinfo=dt.timezone.utc),
             "StorageClass": "STANDARD", "VersionId": None, "name": "s3://b/d/a.csv",
             "size": 8, "type": "file"},
    "gcsfs": {"bucket": "b", "contentType": "text/csv", "etag": "5evUwCzvvnlVl3xnraJCtw==",
              "generation": "1796111646374947", "md5Hash": "5evUwCzvvnlVl3xnraJCtw==",
              "mtime": dt.datetime(2026, 12, 1, 7, 54, 6, 374922, tzinfo=dt.timezone.utc),
              "name": "gs://b/d/a.csv", "size": 8, "type": "file",
              "updated": "2026-12-01T07:54:06.37492Z"},
    "adlfs": {"content_settings": {"content_type": "text/csv", "content_md5": bytearray(b"\xe5")},
              "etag": '"0x1C72968A05DF7B0"', "version_id": None,
              "last_modified": dt.datetime(2026, 12, 1, 7, 54, 6, tzinfo=dt.timezone.utc),
              "name": "https://acct.blob.core.windows.net/c/d/a.csv", "size": 8, "type": "file"},
    "http": {"ETag": 'W/"e5eb"', "Last-Modified": "Tue, 01 Dec 2026 07:54:06 GMT",
             "mimetype": "text/csv", "name": "https://h.example/d/a.csv?sig=SECRETSIG",
             "size": 8, "type": "file", "url": "https://h.example/d/a.csv?sig=SECRETSIG"},
}

EXPECTED = {
    "s3fs": ("e5ebd4c02cefbe7955977c67ada242b7", None, "2026-12-01T07:54:06Z"),
    "gcsfs": ("5evUwCzvvnlVl3xnraJCtw==", "1796111646374947", "2026-12-01T07:54:06.374920Z"),
    "adlfs": ("0x1C72968A05DF7B0", None, "2026-12-01T07:54:06Z"),
    "http": ("W/e5eb", None, "2026-12-01T07:54:06Z"),
}


@pytest.mark.parametrize("source", sorted(RAW))
def test_each_inner_filesystem_normalises_to_the_one_shape(source):
    got = normalise(RAW[source])
    assert tuple(got) == KEYS
    assert (got["etag"], got["version"], got["last_modified"]) == EXPECTED[source]
    assert (got["size"], got["type"], got["content_type"]) == (8, "file", "text/csv")
    assert "SECRETSIG" not in json.dumps(got)  # a signed URL's signature is redacted
    assert normalise(got) == got  # idempotent: the library's normalised info passes through


def test_a_directory_has_no_size():
    got = normalise({"name": "s3://b/d", "Size": 0, "size": 0, "type": "directory"})
    assert (got["type"], got["size"]) == ("directory", None)


_TIMES = st.datetimes(min_value=dt.datetime(1971, 1, 1), max_value=dt.datetime(2200, 1, 1),
                      timezones=st.sampled_from([dt.timezone.utc, dt.timezone(dt.timedelta(hours=5, minutes=30)),
                                                 dt.timezone(dt.timedelta(hours=-8))]))


@given(when=_TIMES, spelling=st.sampled_from(["datetime", "iso", "iso-z", "http", "epoch"]))
def test_any_spelling_of_a_time_is_the_same_utc_instant(when, spelling):
    if spelling in ("http", "epoch"):
        when = when.replace(microsecond=0)
    value = {"datetime": when, "iso": when.isoformat(),
             "iso-z": when.astimezone(dt.timezone.utc).replace(tzinfo=None).isoformat() + "Z",
             "http": when.astimezone(dt.timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT"),
             "epoch": when.timestamp()}[spelling]
    text = normalise({"name": "s3://b/k", "size": 1, "LastModified": value})["last_modified"]
    assert ISO_UTC.fullmatch(text), text
    back = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert back == when


@given(inner=st.text(alphabet=st.characters(blacklist_characters='"/', blacklist_categories=("Cs",)),
                     min_size=1, max_size=40), weak=st.booleans(), quoted=st.booleans())
def test_an_etag_loses_its_quotes_and_keeps_its_weakness(inner, weak, quoted):
    inner = inner.strip()
    if not inner:
        return
    raw = (f'"{inner}"' if quoted else inner)
    raw = ("W/" + raw) if weak else raw
    got = normalise({"name": "s3://b/k", "size": 1, "ETag": raw})["etag"]
    assert got == (f"W/{inner}" if weak else inner)


# --------------------------------------------------------------------------- on the emulators


@pytest.fixture(scope="module")
def ambient(peers, tmp_path_factory):
    path = tmp_path_factory.mktemp("json") / "ambient.toml"
    path.write_text(to_toml(peers.config()))
    return path


def _scalars_only(doc) -> None:
    for key, value in doc.items():
        assert value is None or isinstance(value, (str, int)), (key, value)
        if isinstance(value, str):
            assert not REPR.search(value), (key, value)


@pytest.mark.parametrize("backend", BACKENDS)
def test_stat_json_is_one_shape_for_every_backend(peers, ambient, backend, capsys):
    store = new_store(backend, peers)
    uri = store.put("p/b.txt", b"hello")

    assert cli.main(["stat", "--json", "--config", str(ambient), uri]) == 0
    doc = json.loads(capsys.readouterr().out)

    assert tuple(doc) == KEYS
    _scalars_only(doc)
    assert (doc["name"], doc["size"], doc["type"]) == (uri, 5, "file")
    assert doc["etag"] and '"' not in doc["etag"]
    assert ISO_UTC.fullmatch(doc["last_modified"]), doc["last_modified"]
    assert doc["content_type"]
    if backend == "gcs":
        assert doc["version"] and doc["version"].isdigit()  # the generation


@pytest.mark.parametrize("backend", ["s3", "gcs", "azure"])
def test_ls_json_entries_have_the_same_shape(peers, ambient, backend, capsys):
    store = new_store(backend, peers)
    for key in ("p/a.txt", "p/sub/c.txt"):
        store.put(key, b"abc")

    assert cli.main(["ls", "--json", "--config", str(ambient), store.uri("p/")]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert cli.main(["ls", "-r", "--json", "--config", str(ambient), store.uri("p/")]) == 0
    found = json.loads(capsys.readouterr().out)

    for doc in entries + found:
        assert tuple(doc) == KEYS
        _scalars_only(doc)
    by_name = {e["name"]: e for e in entries}
    assert by_name[store.uri("p/a.txt")]["size"] == 3
    assert by_name[store.uri("p/sub")]["type"] == "directory"
    assert by_name[store.uri("p/sub")]["size"] is None
    assert [e["name"] for e in found] == [store.uri("p/a.txt"), store.uri("p/sub/c.txt")]


def test_stat_text_shows_the_same_keys_and_no_repr(peers, ambient, capsys):
    uri = new_store("azure", peers).put("k.bin", b"x")
    assert cli.main(["stat", "--config", str(ambient), uri]) == 0
    out = capsys.readouterr().out
    assert [line.split(":", 1)[0] for line in out.splitlines()] == list(KEYS)
    assert "content_settings" not in out and not REPR.search(out)


# --------------------------------------------------------------------------- check


@pytest.mark.parametrize("case", ["ok", "refused", "missing"])
def test_check_json_writes_one_document_and_nothing_else(peers, ambient, tmp_path, case, capsys):
    store = new_store("s3", peers)
    uri = store.put("k.txt", b"abc")
    config = ambient
    argv = ["check", "--json", "--config", str(config), uri]
    if case == "refused":
        config = tmp_path / "t.toml"
        config.write_text(to_toml({"tenants": {"acme": {"direct": ["s3://other-bucket"]}}}))
        argv = ["check", "--json", "--config", str(config), "--tenant", "acme", uri]
    elif case == "missing":
        argv = ["check", "--json", "--config", str(ambient), uri + "-missing"]

    code = cli.main(argv)
    out, err = capsys.readouterr()

    assert err == ""
    doc = json.loads(out)  # exactly one document: json.loads refuses trailing data
    assert doc["exit_code"] == code
    assert doc["ok"] is (case == "ok")
    assert set(doc) == {"uri", "tenant", "config", "ok", "failed_step", "fix", "steps",
                        "exit_code"}
    if case == "refused":
        assert (code, doc["failed_step"]) == (1, "route")
        assert [s["status"] for s in doc["steps"]] == ["failed", "skipped", "skipped"]
    if case == "missing":
        assert (code, doc["failed_step"]) == (1, "read")
