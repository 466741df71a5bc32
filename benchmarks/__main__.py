"""``python -m benchmarks [--quick]``: attachfs side by side with its peers, in one run.

Starts nginx (installing it first if it is missing and we are root), generates the data,
runs every (case, library) in a fresh worker process, stops nginx, and writes
``results.md``, ``results.json`` and ``results.png`` (see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

from . import data, report
from .clients import CASES, ON_REQUEST
from .nginx import Link, Nginx, measure_link
from .profile import pyspy_command
from .profile import summarize as summarize_profile
from .runner import run_case, slug

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
#: The keys every signing client signs with: real SigV4, any strings (nginx checks nothing).
BENCH_KEYS = {"AWS_ACCESS_KEY_ID": "AKIAATTACHFSBENCH001",
              "AWS_SECRET_ACCESS_KEY": "attachfs-bench-secret-key-not-checked-by-nginx"}
PACKAGES = ("attachfs", "s3fs", "fsspec", "obstore", "smart_open", "pyarrow", "boto3",
            "botocore", "aiobotocore", "s3transfer", "aiohttp", "pandas", "moto", "xarray",
            "h5netcdf", "h5py")


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="small sizes and 3 repetitions: 64 MiB, 200 objects, ~20 MB parquet")
    p.add_argument("--reps", type=int, help="repetitions per case (default 5; --quick 3)")
    p.add_argument("--cases", default="abcdefg",
                   help="which cases to run, e.g. 'bc'; 'e' is profile (e), the cloud-like "
                        "link, = ea,eb,ed (a, b, d over that link); comma-separated ids too: "
                        "'ea,f'")
    p.add_argument("--link-delay", type=float, default=0.03,
                   help="profile (e): seconds before each response's first byte (echo_sleep)")
    p.add_argument("--link-rate", default="64m",
                   help="profile (e): nginx limit_rate per response (measured at start)")
    p.add_argument("--libs", help="comma-separated libraries (default: all); raw aiohttp "
                                  "always runs, every ratio is to it")
    p.add_argument("--out", type=Path, help="results directory (default benchmarks/results, "
                                            "--quick: benchmarks/results/tmp/quick)")
    p.add_argument("--data-dir", type=Path, help="where the generated objects are kept "
                                                 "(default benchmarks/.data/full|quick)")
    p.add_argument("--threads", type=int, default=32,
                   help="thread-pool size for boto3, smart_open and pyarrow batches")
    p.add_argument("--connections", type=int, default=64,
                   help="raw aiohttp's connection limit")
    p.add_argument("--profile", default="",
                   help="comma-separated libraries to run under py-spy (all threads); raw "
                        "stacks and a summary go to OUT/tmp/profile-CASE-LIB.*")
    p.add_argument("--timeout", type=float, default=900, help="seconds per worker")
    p.add_argument("--no-install", action="store_true",
                   help="do not apt-get install nginx when it is missing")
    return p.parse_args(argv)


def parse_cases(text: str) -> list[str]:
    # "bc" is b and c; a case id of two letters ("eb") is that case, alone or among commas.
    if "," in text or text in CASES:
        ids = [c.strip() for c in text.split(",") if c.strip()]
    else:
        ids = list(text)
    out: list[str] = []
    for c in ids:
        out += ["ea", "eb", "ed"] if c == "e" else [c]
    unknown = [c for c in out if c not in CASES]
    if unknown:
        raise SystemExit(f"unknown case(s) {unknown}; known: {', '.join(CASES)} (e = ea,eb,ed)")
    return list(dict.fromkeys(out))


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def git_commit() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=REPO,
                               capture_output=True, text=True).stdout.strip()
        return rev + ("+uncommitted src changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def worker_env(keys: dict[str, str]) -> dict[str, str]:
    from attachfs.testing import apply_environment, peer_environment

    env = dict(os.environ)
    apply_environment(peer_environment(), env)  # no real credentials, proxies or metadata
    env.update(keys)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def main(argv=None) -> int:
    args = parse_args(argv if argv is not None else sys.argv[1:])
    profile = "quick" if args.quick else "full"
    sizes = data.QUICK if args.quick else data.FULL
    reps = args.reps or (3 if args.quick else 5)
    out = args.out or (HERE / "results" / "tmp" / "quick" if args.quick else HERE / "results")
    data_dir = args.data_dir or HERE / ".data" / profile
    wanted = set(args.libs.split(",")) | {"raw aiohttp"} if args.libs else None
    profiled = set(filter(None, args.profile.split(",")))
    out.mkdir(parents=True, exist_ok=True)
    (out / "tmp").mkdir(exist_ok=True)
    started = time.monotonic()
    load_start = os.getloadavg()[0]

    case_ids = parse_cases(args.cases)
    manifest = data.ensure(data_dir, sizes, log=lambda m: print(m, flush=True))
    tmp = Path(tempfile.mkdtemp(prefix="attachfs-bench-"))
    shaped = any(c.startswith("e") for c in case_ids)
    link = Link(delay=args.link_delay, rate=args.link_rate) if shaped else None
    nginx = Nginx(data_dir, tmp / "nginx", install=not args.no_install, link=link)
    tenant = None
    link_meta = None
    cases: dict[str, dict] = {}
    try:
        nginx.start()
        print(f"nginx {nginx.binary} serving {data_dir} at {nginx.endpoint}", flush=True)
        if link:
            probe = f"/{manifest['bucket']}/{manifest['keys']['large']}"
            link_meta = {"setting": link.describe(), "delay_s": link.delay, "rate": link.rate,
                         **measure_link(nginx.link_endpoint, probe, sizes.large)}
            print(f"cloud-like link at {nginx.link_endpoint} ({link.describe()}): first byte "
                  f"{link_meta['first_byte_ms']:.1f} ms, one connection "
                  f"{link_meta['one_connection_mb_s']:.1f} MB/s", flush=True)
        base = {"endpoint": nginx.endpoint, "manifest": manifest, "reps": reps,
                "log": str(nginx.access_log), "threads": args.threads,
                "connections": args.connections, "chunk": 8 * data.MiB, "small_read": 1024,
                "data_dir": str(data_dir),
                "config": {"platform": {"aws": {"endpoint_url": nginx.endpoint,
                                                "region": "us-east-1"}}}}
        env = worker_env(BENCH_KEYS)
        for case in case_ids:
            libs = [n for n in CASES[case]
                    if (n in wanted if wanted is not None else n not in ON_REQUEST)]
            spec, case_env = dict(base), env
            case_reps = reps
            if case.startswith("e"):
                spec.update(endpoint=nginx.link_endpoint,
                            config={"platform": {"aws": {"endpoint_url": nginx.link_endpoint,
                                                         "region": "us-east-1"}}})
                if case in ("ea", "eb") and not args.reps:
                    # 1 GiB at one connection's ~60 MB/s is ~18 s a repetition, and a client
                    # that fetches 2,000 objects one at a time needs a minute; a capped link
                    # varies little, so 3 medians suffice.
                    case_reps = min(reps, 3)
            if case == "g":
                from .sts import TENANT, DelegatedTenant

                tenant = DelegatedTenant(tmp / "moto").start()
                spec.update(config=tenant.config(nginx.endpoint), tenant=TENANT)
                case_env = worker_env(tenant.platform_keys)
            prefixes = {lib: pyspy_command(out / "tmp" / f"profile-{slug(case, lib)}.txt")
                        for lib in libs if lib in profiled}
            print(f"({case}) {', '.join(libs)}: {case_reps} rounds", flush=True)
            # (g): one more repetition, the cold first batch that includes the AssumeRole.
            raws = run_case(case, libs, spec, case_env, tmp, timeout=args.timeout,
                            reps=case_reps + (case == "g"), prefixes=prefixes,
                            progress=lambda m: print(m, flush=True))
            if tenant is not None:
                raws["attachfs"]["assume_role_calls"] = tenant.proxy.count("AssumeRole")
                tenant.stop()
                tenant = None
            cases[case] = {}
            for lib, raw in raws.items():
                summary = report.summarize(case, raw, manifest, link_meta)
                cases[case][lib] = {"raw": raw, "summary": summary}
                print(f"({case}) {lib}: {report.one_line(case, summary)}", flush=True)
                prof = out / "tmp" / f"profile-{slug(case, lib)}.txt"
                if lib in prefixes and prof.exists():
                    text = summarize_profile(prof)
                    prof.with_suffix(".summary.txt").write_text(text)
                    print(text, flush=True)
    finally:
        if tenant is not None:
            tenant.stop()
        nginx.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    report.add_ratios(cases)
    result = {
        "meta": {"profile": profile, "date": dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
                 "machine": f"{os.cpu_count()} cores, {platform.system()} "
                            f"{platform.machine()}",
                 "nginx": _nginx_version(nginx.binary), "reps": reps, "sizes": asdict(sizes),
                 "parquet_size": manifest["parquet"]["size"],
                 "parquet_floor": manifest["parquet"]["floor_bytes"], "versions": versions(),
                 "load_average": {"start": load_start, "end": os.getloadavg()[0]},
                 "git": git_commit(), "threads": args.threads, "link": link_meta,
                 "random": _random_meta(manifest),
                 "connections": args.connections,
                 "seconds": round(time.monotonic() - started, 1)},
        "order": list(dict.fromkeys(n for libs in CASES.values() for n in libs)),
        "cases": cases,
    }
    result["targets"] = report.targets(cases)
    text = report.markdown(result)
    (out / "results.json").write_text(json.dumps(result, indent=1))
    (out / "results.md").write_text(text)
    report.chart(result, out / "results.png")
    print()
    print(text)
    print(f"wrote {out}/results.md, results.json, results.png "
          f"({result['meta']['seconds']:.0f} s)")
    return 0


def _random_meta(manifest: dict) -> dict:
    from .access import scenarios

    return {name: {"key": sc.key, "size": manifest["objects"][sc.key], "reads": sc.describe}
            for name, sc in scenarios(manifest).items()}


def _nginx_version(binary: str) -> str:
    done = subprocess.run([binary, "-v"], capture_output=True, text=True)
    return (done.stderr or done.stdout).strip().rsplit("/", 1)[-1]


if __name__ == "__main__":
    sys.exit(main())
