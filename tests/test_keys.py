"""Object keys with awkward characters survive the trip: written with the cloud's own client,
read back byte-exact through attachfs, from every emulator."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import attachfs
from stores import BACKENDS, new_store

# Characters that break naive URI handling, plus ordinary ones and some non-ASCII.
AWKWARD = [" ", "+", "%", "#", "?", "=", "&", ";", "@", ":", ",", "'", "!", "(", ")", "~",
           "é", "ß", "日本", "😀", "%20", "%2F", "//"]
segment = st.lists(
    st.one_of(st.sampled_from(AWKWARD), st.text("abcxyz019-_.", min_size=1, max_size=4)),
    min_size=1, max_size=5,
).map("".join).filter(lambda s: s not in (".", ".."))
keys = st.builds(
    lambda parts, trailing: "/".join(parts) + ("/" if trailing else ""),
    st.lists(segment, min_size=1, max_size=3),
    st.booleans(),
).filter(lambda k: not k.startswith("/"))

FIXED = [
    "a b/c+d.txt",
    "100%/done#1?x=y",
    "dir//double/slash",
    "trailing/",
    "unicode/日本語/😀.png",
    "literal%2Fslash",
]


@pytest.fixture(scope="module", params=BACKENDS)
def store(request, peers):
    return new_store(request.param, peers)


@pytest.fixture(scope="module")
def fs(peers):
    return attachfs.filesystem(config=peers.config(), skip_instance_cache=True)


@pytest.mark.parametrize("key", FIXED)
def test_fixed_awkward_keys(store, fs, key):
    data = f"payload of {key!r}".encode()
    uri = store.put(key, data)
    expected = f"{store.bucket}/{key}" if store.backend == "http" else key  # http: the path
    assert attachfs.explain(uri, config=fs.config).location.key == expected
    assert fs.cat_file(uri) == data
    with fs.open(uri) as f:
        assert f.read() == data


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(key=keys)
def test_generated_keys_read_back_exactly(store, fs, key):
    if store.backend == "azure":
        # Azure blob names may not hold the dot segments "." and ".." (URLs lose them, RFC
        # 3986 5.2.4; https://learn.microsoft.com/rest/api/storageservices/naming-and-
        # referencing-containers--blobs--and-metadata#blob-names): the Azure SDK's own upload
        # of ".//" is refused. S3 and GCS keep them, and are read with them here.
        assume(not any(seg in (".", "..") for seg in key.split("/")))
    data = key.encode("utf-8") + b"\x00\xff"
    uri = store.put(key, data)
    assert fs.cat_file(uri) == data
