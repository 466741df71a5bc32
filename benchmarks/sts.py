"""Case (e)'s identity side: moto for STS (and IAM), behind a proxy that counts AssumeRole.

moto serves only the control plane here: an IAM user for the platform, a tenant role that
trusts exactly that user with an ExternalId, IAM enforcement on (so a wrong key or ExternalId
would be refused). The tenant's S3 reads go to nginx, not to moto (~5 ms a request).

The proxy forwards each request byte for byte, keeping the client's ``Host`` header so the
SigV4 signature still matches at moto, and records the ``Action`` of every STS call.
"""

from __future__ import annotations

import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

ACCOUNT = "123456789012"   # moto's default account: the platform user and the tenant role
ROLE = "AttachmentReader"
EXTERNAL_ID = "bench-5f0c"
TENANT = "acme"

_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
               "trailer", "transfer-encoding", "upgrade"}


class RecordingProxy:
    """A reverse proxy on a free 127.0.0.1 port to ``upstream``, recording STS actions."""

    def __init__(self, upstream: str):
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname, parts.port)
        self.actions: list[str] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                query = urlsplit(self.path).query
                action = (parse_qs(body.decode("latin-1")).get("Action")
                          or parse_qs(query).get("Action") or ["?"])[0]
                with proxy._lock:
                    proxy.actions.append(action)
                conn = http.client.HTTPConnection(*proxy._upstream, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items()
                               if k.lower() not in _HOP_BY_HOP}
                    # `Host` is kept as the client sent it: SigV4 signed it.
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                finally:
                    conn.close()
                self.send_response(resp.status, resp.reason)
                for name, value in resp.getheaders():
                    if name.lower() not in _HOP_BY_HOP | {"content-length"}:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _forward

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="bench-sts-proxy")

    def start(self) -> RecordingProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def count(self, action: str) -> int:
        with self._lock:
            return sum(1 for a in self.actions if a == action)

    def clear(self) -> None:
        with self._lock:
            self.actions.clear()


class DelegatedTenant:
    """moto seeded with the platform identity and one tenant role, plus the STS proxy."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.emulators = None
        self.proxy: RecordingProxy | None = None
        self.platform_keys: dict[str, str] = {}

    def start(self) -> DelegatedTenant:
        import boto3

        from attachfs.testing import Emulators

        self.emulators = Emulators(self.workdir, s3=True, gcs=False, azure=False, http=False,
                                   https=False).start()
        endpoint = self.emulators.s3_endpoint
        admin = dict(endpoint_url=endpoint, region_name="us-east-1",
                     aws_access_key_id="bench-admin", aws_secret_access_key="bench-admin")
        iam = boto3.client("iam", **admin)
        iam.create_user(UserName="attachfs-platform")
        user_arn = f"arn:aws:iam::{ACCOUNT}:user/attachfs-platform"
        keys = iam.create_access_key(UserName="attachfs-platform")["AccessKey"]
        self.platform_keys = {"AWS_ACCESS_KEY_ID": keys["AccessKeyId"],
                              "AWS_SECRET_ACCESS_KEY": keys["SecretAccessKey"]}
        iam.put_user_policy(UserName="attachfs-platform", PolicyName="assume",
                            PolicyDocument=json.dumps({
                                "Version": "2012-10-17",
                                "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                               "Resource": "*"}]}))
        iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"AWS": user_arn},
                           "Action": "sts:AssumeRole",
                           "Condition": {"StringEquals": {"sts:ExternalId": EXTERNAL_ID}}}]}))
        self.proxy = RecordingProxy(endpoint).start()
        self.emulators.enable_iam()
        return self

    def config(self, s3_endpoint: str) -> dict:
        """attachfs config: S3 reads to ``s3_endpoint`` (nginx), STS through the proxy."""
        return {
            "platform": {"aws": {"role_name": ROLE, "account_id": ACCOUNT,
                                 "endpoint_url": s3_endpoint, "sts_endpoint_url": self.proxy.url,
                                 "region": "us-east-1"}},
            "tenants": {TENANT: {"aws": {"account_id": ACCOUNT, "external_id": EXTERNAL_ID}}},
        }

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
            self.proxy = None
        if self.emulators is not None:
            self.emulators.stop()
            self.emulators = None
