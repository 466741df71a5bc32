"""The closed sets attachfs decides between, as ``Literal`` types (pure)."""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["BACKENDS", "Backend", "GrantKind", "Mode"]

#: Where an object lives: S3, Google Cloud Storage, Azure Blob, or a plain http(s) URL.
Backend = Literal["s3", "gcs", "azure", "http"]

#: How a read is authorised: ``ambient`` (no config: the backend's own default chain),
#: ``delegated`` (the tenant's integration), ``direct`` (the platform's identity on a bucket
#: the tenant claims), ``anonymous`` (Azure without an integration), ``url`` (the URL carries
#: its own authority).
Mode = Literal["ambient", "delegated", "direct", "anonymous", "url"]

#: Which credentials a read needs; the credential layer turns each kind into credentials.
GrantKind = Literal["ambient", "aws-assume-role", "aws-platform", "gcp-impersonate",
                    "gcp-platform", "azure-app", "anonymous", "none"]

BACKENDS: tuple[Backend, ...] = get_args(Backend)
