"""The attachfs command line: cat, cp, ls, stat, explain, check, policy (and demo).

Data goes to stdout, messages to stderr. Every command except ``demo`` takes ``--tenant``
(default ``$ATTACHFS_TENANT``), ``--config`` (default ``$ATTACHFS_CONFIG``, else ambient mode)
and ``--json`` (one JSON document on stdout; an error is one JSON object on stderr).

Exit codes:

* 0 -- done.
* 1 -- the read could not be made: refused by attachfs's rules (``AccessRefused``), denied by
  the cloud (``AccessDenied``), no such object (``FileNotFoundError``), the object changed
  mid-read (``IntegrityError``), a service or network failure (any other ``OSError``), or a
  ``check`` step that failed for one of these reasons.
* 2 -- the command itself is wrong: bad arguments, a config error (``ConfigError``), a
  malformed URI (``ValueError``); also a ``check`` that fails on the configuration.
* 130 -- interrupted (Ctrl-C); ``cp`` keeps its ``.part`` file to resume from.
* 141 -- stdout was closed early (``attachfs cat ... | head``).

URIs are all routed before the first request, so a usage error or a refused URI stops a
command before it has printed or written anything.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._errors import AccessRefused
from .messages import credential_file_problem, for_cli, not_an_object

if TYPE_CHECKING:
    from .._config import Config
    from .._filesystem import AttachFileSystem
    from .._rules import Route

EXIT_OK, EXIT_ACCESS, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED, EXIT_PIPE = 130, 141

_EPILOG = """\
common options: --tenant T (default $ATTACHFS_TENANT), --config PATH (default
$ATTACHFS_CONFIG, else ambient mode), --json, -v (library logs on stderr).
exit codes: 0 ok; 1 access problem (refused, denied, not found, changed, network);
2 usage or config error; 130 interrupted; 141 stdout closed early."""


class UsageError(ValueError):
    """The command line asks for something that cannot be done as written (exit 2)."""


# ----------------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="attachfs",
        description="Open any attachment URI with the right credentials for its tenant.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"attachfs {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--tenant", metavar="T",
                        help="the tenant the read is made for (default: $ATTACHFS_TENANT)")
    common.add_argument("--config", metavar="PATH",
                        help="attachfs TOML config (default: $ATTACHFS_CONFIG, else ambient "
                             "mode: the backends' default credentials)")
    common.add_argument("--json", action="store_true",
                        help="print one JSON document on stdout (errors: JSON on stderr)")
    common.add_argument("-v", "--verbose", action="count", default=0,
                        help="show library log messages on stderr (-v warnings, -vv debug; "
                             "credentials are masked)")

    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help: str,
                description: str | None = None) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], help=help,
                              description=description or help)

    p = command("cat", "write objects to stdout",
                "Write each object to stdout in turn; stops at the first that fails. "
                "--json: [{uri, size, version, content_base64}].")
    p.add_argument("uris", nargs="+", metavar="URI")

    p = command("cp", "copy objects to local files, resumably",
                "Copy objects to a local file or directory. Each is written to DEST.part and "
                "renamed when complete and of the right size; an interrupted copy resumes "
                "from the .part file if the object is still the same version. A progress bar "
                "with throughput is shown when stderr is a terminal.")
    p.add_argument("uris", nargs="+", metavar="URI")
    p.add_argument("dest", metavar="DEST",
                   help="a file (one URI), or a directory: existing, or ending in '/'")
    p.add_argument("-r", "--recursive", action="store_true",
                   help="copy every object under each URI (a prefix), keeping relative paths")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar even on a terminal")

    p = command("ls", "list a bucket, container or prefix",
                "List a bucket, container or prefix. --json: a list of entries, each "
                "{name, size, type, version, etag, last_modified, content_type}, the same "
                "keys for every backend.")
    p.add_argument("uri", metavar="URI")
    p.add_argument("-l", "--long", action="store_true", help="show type and size")
    p.add_argument("-r", "--recursive", action="store_true", help="every object below URI")

    p = command("stat", "show an object's metadata",
                "Show an object's metadata: name, size, type, version, etag, last_modified "
                "(ISO 8601, UTC) and content_type, the same keys for every backend (--json: "
                "one object with those keys).")
    p.add_argument("uri", metavar="URI")

    p = command("explain", "show how a read would be made (no request)",
                "Print the route a read of URI takes: backend, canonical URI, mode, identity, "
                "claim, proxy and the rule that decided it. Makes no request.")
    p.add_argument("uri", metavar="URI")

    p = command("check", "diagnose a read step by step and name the fix",
                "Route, credentials, then a 1-byte read of URI; on failure, say which step "
                "failed and what to change. --json: one document {uri, tenant, config, ok, "
                "failed_step, fix, steps, exit_code}.")
    p.add_argument("uri", metavar="URI")

    p = command("policy", "print what a customer (or the platform) must create",
                "Print the exact policies and commands a customer runs so the platform can "
                "read their data, filled in from the config for one tenant. aws: the role, "
                "its trust and permission policy. bucket: direct-access grants (S3 bucket "
                "policy, GCS bucket role) for the tenant's claimed or the given buckets. gcp: "
                "the service account, Token Creator grant and bucket reader role. azure: the "
                "consent step and the role assignment. platform: what the platform itself "
                "needs (no --tenant): its AWS identity policy, the IAM Credentials API on GCP, "
                "its multi-tenant Azure app.")
    p.add_argument("cloud", choices=("aws", "gcp", "azure", "bucket", "platform"))
    p.add_argument("--bucket", action="append", metavar="B",
                   help="a bucket to grant (name or URI; s3://b/prefix/ for a prefix; Azure: "
                        "https://ACCOUNT.blob.core.windows.net/CONTAINER); repeatable")
    p.add_argument("--container", action="append", metavar="C",
                   help="azure: a container to grant, as ACCOUNT/CONTAINER or "
                        "https://ACCOUNT.blob.core.windows.net/CONTAINER (ACCOUNT alone: the "
                        "whole storage account); repeatable")
    p.add_argument("--list", action="store_true", dest="allow_list",
                   help="S3: also allow s3:ListBucket (needed by `attachfs ls`; without it a "
                        "missing key is a 403, not a 404)")
    p.add_argument("--kms-key", action="append", metavar="ARN",
                   help="S3: a KMS key the objects are encrypted with (SSE-KMS): allow "
                        "kms:Decrypt on it, and print its key-policy statement; repeatable")
    p.add_argument("--platform-service-account", metavar="EMAIL",
                   help="the platform's Google service account (default: client_email of the "
                        "platform.gcp.credentials key file)")
    p.add_argument("--platform-role", metavar="NAME",
                   help="platform: the IAM role the platform runs as (prints the "
                        "put-role-policy command)")
    p.add_argument("--redirect-uri", metavar="URL",
                   help="platform: the page an Azure administrator returns to after admin "
                        "consent (registered on the platform's app)")

    p = sub.add_parser(
        "demo", help="run local emulators with sample attachments (see --serve)",
        description="Start local emulators (moto for S3 and STS, fake-gcs-server, Azurite, a "
                    "local http server), put sample attachments in each, read them back for "
                    "ambient mode and for two tenants, print what was read, and stop "
                    "everything it started. With --serve: keep them running for your own "
                    "reads, print the config path and the environment to export, and stop "
                    "everything on Ctrl-C.")
    p.add_argument("--serve", action="store_true",
                   help="keep the emulators running until Ctrl-C; print a config path and "
                        "`export` lines for another shell")
    return parser


# ------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version, or argparse's usage error (2)
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    if args.command == "demo":
        if args.serve:
            from ..testing.serve import serve

            return serve()
        from ..testing.demo import run

        return run()
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    _logging(args.verbose)
    ctx = Context(args)
    try:
        return COMMANDS[args.command](ctx)
    except KeyboardInterrupt:
        ctx.error("interrupted", EXIT_INTERRUPTED)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`| head`): no message, and no second error at exit.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return EXIT_PIPE
    except Exception as err:  # noqa: BLE001 -- mapped to an exit code below, or re-raised
        code = exit_code(err)
        if code is None:
            raise
        ctx.error(for_cli(err, ctx.loaded_config), code)
        return code


def _logging(verbose: int) -> None:
    """Libraries' log records stay out of a user's terminal unless asked for: the error a
    command prints already says what failed (azure-identity, for one, logs every refused
    token as a warning). The credential scrubber's filters stay on those loggers."""
    import logging

    root = logging.getLogger()
    if verbose <= 0:
        if not root.handlers:
            root.addHandler(logging.NullHandler())  # no "last resort" printing to stderr
        return
    logging.basicConfig(level=logging.DEBUG if verbose > 1 else logging.WARNING,
                        format="%(name)s: %(levelname)s: %(message)s", stream=sys.stderr)


def exit_code(err: BaseException) -> int | None:
    """The documented exit code for ``err``; None for a bug (let it show its traceback)."""
    if isinstance(err, (PermissionError, OSError)):
        return EXIT_ACCESS      # refused, denied, not found, changed, network
    if isinstance(err, ValueError):
        return EXIT_USAGE       # ConfigError, a malformed URI, UsageError
    return None


@dataclass
class Context:
    """One invocation: arguments, the tenant and config they resolve to, and output."""

    args: argparse.Namespace

    def __post_init__(self) -> None:
        # "" stays "" (the library reads it as "no tenant"): --tenant "" overrides the env.
        given = self.args.tenant
        self.tenant = given if given is not None else os.environ.get("ATTACHFS_TENANT")
        self._config: Config | None = None
        self._loaded = False

    @property
    def json(self) -> bool:
        return bool(self.args.json)

    @property
    def config(self) -> Config | None:
        if not self._loaded:
            from .._config import resolve_config

            self._config = resolve_config(self.args.config or None)
            self._loaded = True
        return self._config

    @property
    def loaded_config(self) -> Config | None:
        """The config if it was loaded (an error message may use it; never loads it)."""
        return self._config

    def filesystem(self) -> AttachFileSystem:
        from .._filesystem import AttachFileSystem

        return AttachFileSystem(tenant=self.tenant or "", config=self.config,
                                skip_instance_cache=True)

    def route(self, uri: str, *, require_key: bool = True) -> Route:
        """The Route of ``uri`` (no request), with errors in a command-line user's words; a
        credentials file the read needs that is missing is reported here, by its path."""
        from .._rules import route
        from .._uri import parse

        location = parse(uri, require_key=False)
        if require_key and location.backend != "http" and not location.key:
            raise not_an_object(uri, self.args.command)
        config = self.config
        try:
            r = route(config, self.tenant, location)
        except AccessRefused as err:
            raise for_cli(err, config) from None
        problem = credential_file_problem(config, r)
        if problem is not None:
            raise problem
        return r

    def out(self, text: str) -> None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()

    def out_json(self, doc: Any) -> None:
        self.out(json.dumps(doc, indent=2, default=_jsonable))

    def error(self, err: BaseException | str, code: int) -> None:
        if self.json:
            sys.stderr.write(json.dumps({"error": _error_doc(err, code)}) + "\n")
        else:
            sys.stderr.write(f"attachfs: {_error_text(err)}\n")
        sys.stderr.flush()


def _error_doc(err: BaseException | str, code: int) -> dict[str, Any]:
    if isinstance(err, str):
        return {"type": "Error", "message": err, "exit_code": code}
    doc: dict[str, Any] = {"type": type(err).__name__, "message": _message(err),
                           "exit_code": code}
    for name in ("uri", "identity", "hint", "rule", "tenant", "source", "key"):
        value = getattr(err, name, None)
        if value is not None:
            doc[name] = _redact(value) if name == "uri" else value
    return doc


def _message(err: BaseException) -> str:
    from .._errors import AccessDenied, AccessRefused, IntegrityError

    if isinstance(err, OSError) and err.strerror and not isinstance(
            err, (AccessDenied, AccessRefused, IntegrityError)):
        return err.strerror
    return str(err) or type(err).__name__


def _error_text(err: BaseException | str) -> str:
    if isinstance(err, str):
        return err
    text = _message(err)
    hint = getattr(err, "hint", None)
    if hint and hint not in text:
        text += f"\nfix: {hint}"
    rule = getattr(err, "rule", None)
    if rule:
        text += f"\n(refused by attachfs rule {rule!r})"
    return text


def _redact(uri: str) -> str:
    from .._redact import redact

    return redact(uri)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


# ------------------------------------------------------------------------------- commands


def cmd_explain(ctx: Context) -> int:
    r = ctx.route(ctx.args.uri, require_key=False)
    loc = r.location
    grant = {k: v for k, v in (
        ("kind", r.grant.kind), ("role_arn", r.grant.role_arn),
        ("session_name", r.grant.session_name), ("service_account", r.grant.service_account),
        ("azure_tenant_id", r.grant.azure_tenant_id), ("client_id", r.grant.client_id),
        ("expected_bucket_owner", r.grant.expected_bucket_owner)) if v is not None}
    doc: dict[str, Any] = {
        "uri": _redact(r.uri), "backend": r.backend, "tenant": r.tenant, "mode": r.mode,
        "identity": r.identity,
        "claim": None if r.claim is None else {"uri": r.claim.uri, "owner": r.claim.owner},
        "proxy": r.proxy, "rule": r.rule, "grant": grant,
        "location": {"bucket": loc.bucket, "key": loc.key, "account": loc.account,
                     "region": loc.region, "version": loc.version,
                     "url": None if loc.url is None else _redact(loc.url)},
    }
    if ctx.json:
        ctx.out_json(doc)
        return EXIT_OK
    claim = "-" if r.claim is None else r.claim.uri + (
        f" (owner {r.claim.owner})" if r.claim.owner else "")
    rows = [("uri", doc["uri"]), ("backend", r.backend), ("tenant", r.tenant or "-"),
            ("mode", r.mode), ("identity", r.identity or "-"), ("claim", claim),
            ("proxy", r.proxy or "-"), ("rule", r.rule), ("grant", r.grant.kind)]
    rows += [(k, v) for k, v in doc["location"].items() if v and k != "url"]
    ctx.out("\n".join(f"{k:<9} {v}" for k, v in rows))
    return EXIT_OK


def cmd_check(ctx: Context) -> int:
    from .._uri import parse
    from .diagnose import check

    config = ctx.config
    location = parse(ctx.args.uri, require_key=False)
    if location.backend != "http" and not location.key:
        raise not_an_object(ctx.args.uri, "check")
    report = check(ctx.args.uri, tenant=ctx.tenant, config=config)
    failed = report.failed
    code = EXIT_OK
    if failed is not None:
        assert failed.error is not None  # a failed step always keeps its error (diagnose._fail)
        code = exit_code(failed.error) or EXIT_ACCESS
    if ctx.json:
        # One document, on stdout, whatever the outcome: the failure is in it (failed_step,
        # fix, exit_code); nothing is written to stderr.
        doc = report.as_dict()
        doc["exit_code"] = code
        ctx.out_json(doc)
        return code
    head = f"check {_redact(report.uri)}  tenant: {report.tenant or '-'}  config: " \
           f"{report.config or 'none (ambient mode)'}"
    lines = [head]
    for i, step in enumerate(report.steps, 1):
        mark = {"ok": "ok", "failed": "FAILED", "skipped": "skipped"}[step.status]
        first, *rest = (step.detail or "").split("\n") or [""]
        lines.append(f"{i}. {step.name:<12} {mark:<8} {first}".rstrip())
        lines += [f"{'':<24}{line}" for line in rest]
    ctx.out("\n".join(lines))
    if failed is not None:
        # The step's detail is in the report above; stderr says where it stopped and the fix,
        # each once.
        index = report.steps.index(failed) + 1
        rule = getattr(failed.error, "rule", None)
        by = f", refused by attachfs rule {rule!r}" if rule else ""
        ctx.error(f"check failed at step {index} ({failed.name}){by}\nfix: {failed.fix}", code)
    return code


def cmd_policy(ctx: Context) -> int:
    from . import policy

    a = ctx.args
    config = ctx.config
    if a.container and a.cloud != "azure":
        raise UsageError(f"--container is for `attachfs policy azure`; for {a.cloud} use "
                         "--bucket")
    if (a.platform_role or a.redirect_uri) and a.cloud != "platform":
        raise UsageError("--platform-role and --redirect-uri are for `attachfs policy "
                         "platform`")
    if a.cloud == "platform":
        from . import platform

        doc = platform.platform(config, platform_sa=a.platform_service_account,
                                platform_role=a.platform_role, redirect_uri=a.redirect_uri,
                                allow_list=a.allow_list)
        if ctx.json:
            ctx.out_json(doc)
        else:
            ctx.out(platform.render(doc))
        return EXIT_OK
    if a.cloud == "aws":
        doc = policy.aws(config, ctx.tenant, a.bucket, allow_list=a.allow_list,
                         kms_keys=a.kms_key)
    elif a.cloud == "bucket":
        doc = policy.bucket(config, ctx.tenant, a.bucket, allow_list=a.allow_list,
                            platform_sa=a.platform_service_account, kms_keys=a.kms_key)
    elif a.cloud == "gcp":
        doc = policy.gcp(config, ctx.tenant, a.bucket, platform_sa=a.platform_service_account)
    else:
        doc = policy.azure(config, ctx.tenant, (a.bucket or []) + (a.container or []))
    if ctx.json:
        ctx.out_json(doc)
    else:
        ctx.out(policy.render(doc))
    return EXIT_OK


def cmd_stat(ctx: Context) -> int:
    from .info import KEYS, normalise

    ctx.route(ctx.args.uri, require_key=False)
    info = normalise(ctx.filesystem().info(ctx.args.uri))
    if ctx.json:
        ctx.out_json(info)
    else:
        ctx.out("\n".join(f"{k}: {'-' if info[k] is None else info[k]}" for k in KEYS))
    return EXIT_OK


def cmd_ls(ctx: Context) -> int:
    a = ctx.args
    ctx.route(a.uri, require_key=False)
    fs = ctx.filesystem()
    from .info import normalise

    if a.recursive:
        raw = list(fs.find(a.uri, detail=True).values())
    else:
        raw = fs.ls(a.uri, detail=True)
    entries = sorted((normalise(e) for e in raw), key=lambda e: str(e["name"]))
    if ctx.json:
        ctx.out_json(entries)
        return EXIT_OK
    lines = []
    for e in entries:
        name = e["name"]
        is_dir = e.get("type") == "directory"
        if is_dir and not name.endswith("/"):
            name += "/"
        if a.long:
            size = "-" if is_dir or e["size"] is None else str(e["size"])
            lines.append(f"{'dir' if is_dir else 'file':<4} {size:>12}  {name}")
        else:
            lines.append(name)
    if lines:
        ctx.out("\n".join(lines))
    return EXIT_OK


def cmd_cat(ctx: Context) -> int:
    from .transfer import CHUNK, OPEN_BLOCK, copy_stream

    uris = ctx.args.uris
    for uri in uris:  # every URI routed (no request) before the first byte is written
        ctx.route(uri)
    fs = ctx.filesystem()
    out = sys.stdout.buffer
    for i, uri in enumerate(uris):
        with fs.open(uri, "rb", block_size=OPEN_BLOCK) as f:
            # Read before anything is written: a first URI that fails leaves stdout empty.
            first = f.read(CHUNK)
            if ctx.json:
                head = {"uri": _redact(uri), "size": f.size, "version": f.version}
                out.write((b",\n " if i else b"[\n ")
                          + json.dumps(head)[:-1].encode() + b', "content_base64": "')
                encode = _Base64(out.write)
                encode(first)
                copy_stream(f, encode)
                encode.close()
                out.write(b'"}')
            else:
                out.write(first)
                copy_stream(f, out.write)
        out.flush()
    if ctx.json:
        out.write(b"\n]\n")
        out.flush()
    return EXIT_OK


class _Base64:
    """Streaming base64: encodes whole 3-byte groups as they come, the rest at close."""

    def __init__(self, write: Callable[[bytes], Any]):
        self.write, self.rest = write, b""

    def __call__(self, data: bytes) -> None:
        data = self.rest + data
        cut = len(data) - len(data) % 3
        self.write(base64.b64encode(data[:cut]))
        self.rest = data[cut:]

    def close(self) -> None:
        self.write(base64.b64encode(self.rest))


def cmd_cp(ctx: Context) -> int:
    from . import transfer

    a = ctx.args
    for uri in a.uris:
        ctx.route(uri, require_key=not a.recursive)
    if a.dest == "-":
        raise UsageError("cp writes files; to write to stdout use `attachfs cat`")
    fs = ctx.filesystem()
    jobs = transfer.plan(fs, a.uris, a.dest, a.recursive)
    sizes = [j.size for j in jobs if j.size is not None]
    progress = transfer.ProgressBar(
        sys.stderr, enabled=not a.no_progress and transfer.isatty(sys.stderr),
        total_bytes=None if len(sizes) < len(jobs) else sum(sizes))
    progress.set_size(len(jobs))  # as fsspec's get: the outer callback counts files
    done: list[dict[str, Any]] = []
    try:
        for job in jobs:
            with progress.branched(job.uri, job.target) as child:
                done.append(transfer.copy_one(fs, job, child))
            progress.relative_update(1)
    except KeyboardInterrupt:
        progress.interrupted()
        raise
    except BaseException:
        progress.abandon()
        raise
    progress.close()
    if ctx.json:
        ctx.out_json({"copied": done, "files": len(done),
                      "bytes": sum(d["size"] for d in done)})
    return EXIT_OK


COMMANDS: dict[str, Callable[[Context], int]] = {
    "cat": cmd_cat, "cp": cmd_cp, "ls": cmd_ls, "stat": cmd_stat, "explain": cmd_explain,
    "check": cmd_check, "policy": cmd_policy,
}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
