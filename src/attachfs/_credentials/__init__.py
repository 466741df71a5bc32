"""Credentials, one module per cloud: each turns a Route's Grant into the options an inner
filesystem needs. Nothing here decides *which* identity to use: ``_rules`` did that; these modules
only build, cache and refresh what the Grant names.

Leases are kept per process, keyed by (config digest, grant): every filesystem instance in a
process shares one lease per tenant identity (200 concurrent opens, one AssumeRole), a forked
child inherits the still-valid lease, and a spawned child derives its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .refresh import Refreshable, forget_all, shared

if TYPE_CHECKING:
    from .._config import Config
    from .._rules import Route

__all__ = ["forget_all", "lease_for", "ready", "ready_now", "shared"]

def lease_for(config: Config | None, route: Route) -> Refreshable[Any] | None:
    """The refreshing credentials ``route`` needs, or None where the backend's own chain (or
    nothing: anonymous, plain URLs) authenticates."""
    grant = route.grant
    if grant.kind == "aws-assume-role":
        from . import aws

        return aws.assumed_role(config, grant)
    if route.backend == "gcs" and grant.kind in ("gcp-impersonate", "gcp-platform", "ambient"):
        from . import gcp

        return gcp.token_lease(config, grant)
    if grant.kind == "azure-app":
        from . import azure

        return azure.token_lease(config, grant)
    return None


def ready_now(config: Config | None, route: Route) -> bool:
    """Whether the credentials ``route`` needs are valid now, with no refresh due (then
    ``ready`` has nothing to do, and a caller on another thread need not hop to the loop)."""
    lease = lease_for(config, route)
    return lease is None or lease.fresh()


async def ready(config: Config | None, route: Route) -> None:
    """Make sure the credentials ``route`` needs are valid now.

    Fetching runs off the event loop; a refusal surfaces here, at once, as ``AccessDenied``
    naming the identity and the missing grant, instead of after a backend's retries (gcsfs
    retries a refused impersonation for ~34 s, adlfs a refused token for 78-91 s).
    """
    lease = lease_for(config, route)
    if lease is not None:
        await lease.get()
