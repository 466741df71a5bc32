"""``info()`` and listing entries have one shape, whatever the backend answered.

``name``, ``size``, ``type``, ``version``, ``etag`` (no quotes), ``last_modified`` (ISO 8601,
UTC) and ``content_type`` are added beside the backend's own keys; objects inside an entry
(Azure's ``ContentSettings``) become mappings, so written as JSON no entry holds a Python repr.
The unit tables use the entries s3fs, gcsfs, adlfs and fsspec's HTTP filesystem return; the
peers tests read real ones.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import attachfs
from attachfs._info import COMMON, jsonable, modified, normalise
from stores import BACKENDS, new_store

WHEN = dt.datetime(2026, 12, 1, 7, 55, 51, tzinfo=dt.timezone.utc)


class ContentSettings:
    """The shape of azure.storage.blob.ContentSettings (its repr is not JSON)."""

    def __init__(self) -> None:
        self.content_type = "text/csv"
        self.content_encoding = None
        self.content_language = None
        self.content_disposition = None
        self.cache_control = None
        self.content_md5 = bytearray(b"\x01\x02\x03")

    def __repr__(self) -> str:
        return "ContentSettings(content_type='text/csv', ...)"


RAW = {
    "s3 info": ("s3", {"ETag": '"9a6d34"', "LastModified": WHEN, "size": 8271, "name": "b/k",
                       "type": "file", "StorageClass": "STANDARD", "VersionId": None,
                       "ContentType": "binary/octet-stream"},
                {"etag": "9a6d34", "version": None, "content_type": "binary/octet-stream"}),
    "s3 versioned": ("s3", {"ETag": '"e"', "LastModified": WHEN, "size": 1, "name": "b/k",
                            "type": "file", "VersionId": "3HL4kqtJlcpXroDTDmJ"},
                     {"etag": "e", "version": "3HL4kqtJlcpXroDTDmJ", "content_type": None}),
    "s3 listing": ("s3", {"Key": "b/k", "LastModified": WHEN, "ETag": '"e"', "Size": 3,
                          "size": 3, "name": "b/k", "type": "file"},
                   {"etag": "e", "version": None, "content_type": None}),
    "gcs": ("gcs", {"kind": "storage#object", "name": "b/k", "generation": "1764575751000000",
                    "contentType": "text/plain", "etag": "CMCu", "size": "5", "type": "file",
                    "updated": "2026-12-01T07:55:51.000Z", "mtime": WHEN},
            {"etag": "CMCu", "version": "1764575751000000", "content_type": "text/plain"}),
    "azure": ("azure", {"name": "c/k", "size": 5, "type": "file", "etag": '"0x8DE1"',
                        "last_modified": WHEN, "content_settings": ContentSettings(),
                        "version_id": None, "metadata": {}},
              {"etag": "0x8DE1", "version": None, "content_type": "text/csv"}),
    "http": ("http", {"name": "https://h/x", "size": 5, "type": "file", "ETag": 'W/"abc"',
                      "Last-Modified": "Tue, 01 Dec 2026 07:55:51 GMT", "mimetype": "text/csv"},
             {"etag": "W/abc", "version": None, "content_type": "text/csv"}),
}


@pytest.mark.unit
@pytest.mark.parametrize("case", sorted(RAW))
def test_every_backends_entry_gets_the_common_keys(case: str) -> None:
    backend, raw, expected = RAW[case]
    info = normalise(raw, backend)
    assert set(COMMON) <= set(info)
    assert {k: info[k] for k in expected} == expected
    assert info["last_modified"] == "2026-12-01T07:55:51Z"
    assert info["type"] == "file" and isinstance(info["size"], int)
    for key, value in raw.items():  # the backend's own keys stay (objects made plain)
        if key not in COMMON and key != "content_settings":
            assert info[key] == value, key


@pytest.mark.unit
def test_a_directory_has_the_common_keys_empty() -> None:
    info = normalise({"name": "b/dir", "size": 0, "type": "directory"}, "s3")
    assert {k: info[k] for k in COMMON} == {
        "name": "b/dir", "size": 0, "type": "directory", "version": None, "etag": None,
        "last_modified": None, "content_type": None}


@pytest.mark.unit
def test_no_python_repr_in_an_azure_entry() -> None:
    info = normalise(RAW["azure"][1], "azure")
    assert info["content_settings"]["content_type"] == "text/csv"
    assert info["content_settings"]["content_md5"] == "AQID"
    text = json.dumps(jsonable(info))
    assert "ContentSettings(" not in text and "bytearray(" not in text
    assert json.loads(text)["last_modified"] == "2026-12-01T07:55:51Z"


@pytest.mark.unit
@given(tag=st.text(st.characters(codec="ascii", exclude_characters='"\x00'), min_size=1,
                   max_size=40), weak=st.booleans())
def test_property_an_etag_loses_its_quotes_and_nothing_else(tag: str, weak: bool) -> None:
    raw = ("W/" if weak else "") + f'"{tag}"'
    assert normalise({"ETag": raw, "name": "b/k", "size": 1, "type": "file"}, "s3")[
        "etag"] == ("W/" if weak else "") + tag


@pytest.mark.unit
@given(when=st.datetimes(min_value=dt.datetime(1970, 1, 2), max_value=dt.datetime(2200, 1, 1),
                         timezones=st.timezones()),
       key=st.sampled_from(["LastModified", "last_modified", "mtime"]))
def test_property_last_modified_is_iso_utc_and_means_the_same_instant(when: dt.datetime,
                                                                       key: str) -> None:
    info = normalise({key: when, "name": "b/k", "size": 1, "type": "file"}, "s3")
    text = info["last_modified"]
    assert text.endswith("Z")
    # Compared as instants: == between zones is False for a wall time in a DST gap or fold.
    assert dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() == when.timestamp()
    assert modified({key: when}).timestamp() == when.timestamp()


# --------------------------------------------------------------------------- real entries

@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, peers: Any) -> Any:
    return new_store(request.param, peers)


@pytest.mark.peers
def test_info_of_every_backend_has_one_shape(store: Any, attach_config: dict[str, Any]) -> None:
    before = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=5)
    uri = store.put("dir/obj.csv", b"a,b\n1,2\n")
    fs = attachfs.filesystem(config=attach_config, skip_instance_cache=True)
    info = fs.info(uri)
    assert info["name"] == uri and info["size"] == 8 and info["type"] == "file"
    assert isinstance(info["etag"], str) and '"' not in info["etag"]
    when = dt.datetime.fromisoformat(info["last_modified"].replace("Z", "+00:00"))
    assert before <= when <= dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=5)
    assert fs.modified(uri) == when
    assert isinstance(info["content_type"], str) and info["content_type"]
    if store.backend == "gcs":
        assert info["version"] and info["version"].isdigit()  # the object's generation
    else:
        assert info["version"] is None  # no versioning on these buckets
    text = json.dumps(jsonable(info))  # no default= needed, and no repr inside
    assert "ContentSettings(" not in text and "bytearray(" not in text


@pytest.mark.peers
@pytest.mark.parametrize("backend", ["s3", "gcs", "azure"])
def test_listing_entries_have_the_same_shape(peers: Any, attach_config: dict[str, Any],
                                             backend: str) -> None:
    store = new_store(backend, peers)
    store.put("dir/a.txt", b"a")
    store.put("dir/sub/b.txt", b"bb")
    fs = attachfs.filesystem(config=attach_config, skip_instance_cache=True)
    for entries in (fs.ls(store.uri("dir/"), detail=True),
                    list(fs.find(store.uri("dir/"), withdirs=True, detail=True).values())):
        for entry in entries:
            assert set(COMMON) <= set(entry), entry
            if entry["type"] == "file":
                assert isinstance(entry["etag"], str) and '"' not in entry["etag"]
                assert entry["last_modified"] and entry["last_modified"].endswith("Z")
