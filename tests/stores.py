"""One object store per backend, behind a common face: make a fresh bucket, put bytes, and
name them with the URI a user would write. Tests parametrize over ``BACKENDS``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from urllib.parse import quote

BACKENDS = ("s3", "gcs", "azure", "http")


@dataclass
class Store:
    backend: str
    peers: object
    bucket: str

    def put(self, key: str, data: bytes) -> str:
        """Store ``data`` under ``key`` and return the URI that names it."""
        p = self.peers
        if self.backend == "s3":
            p.put_s3(self.bucket, key, data)
        elif self.backend == "gcs":
            p.put_gcs(self.bucket, key, data)
        elif self.backend == "azure":
            p.put_azure(self.bucket, key, data)
        else:
            p.http.put(f"/{self.bucket}/{quote(key, safe='/')}", data)
        return self.uri(key)

    def uri(self, key: str = "") -> str:
        if self.backend == "s3":
            return f"s3://{self.bucket}/{key}"
        if self.backend == "gcs":
            return f"gs://{self.bucket}/{key}"
        if self.backend == "azure":
            account = self.peers.azure_account
            return f"https://{account}.blob.core.windows.net/{self.bucket}/{quote(key, safe='/')}"
        return f"{self.peers.http.url}/{self.bucket}/{quote(key, safe='/')}"

    def chained(self, key: str) -> str:
        """The ``attach::`` URL pandas and fsspec.open take."""
        return f"attach::{self.uri(key)}"


def new_store(backend: str, peers) -> Store:
    bucket = f"t-{uuid.uuid4().hex[:12]}"
    if backend == "s3":
        peers.make_s3_bucket(bucket)
    elif backend == "gcs":
        peers.make_gcs_bucket(bucket)
    elif backend == "azure":
        peers.make_azure_container(bucket)
    return Store(backend, peers, bucket)
