"""The network: address classification and the guard's policy (pure), the guard itself
(requests, redirects, timeouts), the resolver and connector every guarded connection goes
through, and the shared connection pool of the cloud reads."""
