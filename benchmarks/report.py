"""Turn the workers' raw results into medians, ratios, target checks, markdown, JSON and a PNG.

Two ratios per library and case, both time / time, lower is better:

- to raw aiohttp in the same run (1.0x is a plain Python client's floor);
- to the **best peer** of that case: the fastest library that is neither attachfs (or one of
  its variants) nor one of the floors (raw aiohttp and its variants, aiohttp + SigV4).

A *row* is one line of the summary: a case, or for case (f) one of its scenarios (``f.zip``).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from pathlib import Path

from .access import TITLES as SCENARIO_TITLES
from .clients import FLOORS

MiB = 2**20
RAW = "raw aiohttp"
CASE_ORDER = ("a", "b", "c", "d", "ea", "eb", "ed", "f", "g")

CASE_TITLES = {
    "a": "(a) sequential open()+read(8 MiB) of {large}",
    "b": "(b) {small_count} x {small_kib} KiB objects, best concurrent API",
    "c": "(c) open()+read(1 KiB) of a {medium_mib} MiB object",
    "d": "(d) pandas.read_parquet, 2 of 10 columns, {parquet_mb} MB file, 20 row groups",
    "ea": "(e) cloud-like link: sequential read of {large}",
    "eb": "(e) cloud-like link: {small_count} x {small_kib} KiB objects",
    "ed": "(e) cloud-like link: pandas.read_parquet, 2 of 10 columns",
    "f": "(f) random access: {scenario}",
    "g": "(g) the batch of (b) for a delegated tenant (AssumeRole via moto STS)",
}

#: Time targets as ratios to raw aiohttp, drawn on the chart.
TARGET_RATIOS = {"c": 1.5}


def _median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def _fmt_size(n: int) -> str:
    return f"{n / 2**30:g} GiB" if n >= 2**30 else f"{n / MiB:g} MiB"


def is_peer(lib: str) -> bool:
    return lib not in FLOORS and not lib.startswith("attachfs")


# --------------------------------------------------------------------------- rows

def rows(cases: dict) -> Iterator[tuple[str, str, str | None]]:
    """(row id, case, scenario) in the report's order."""
    for case in CASE_ORDER:
        if case not in cases:
            continue
        if case != "f":
            yield case, case, None
            continue
        names: list[str] = []
        for entry in cases["f"].values():
            for name in entry.get("summary", {}).get("scenarios", {}):
                if name not in names:
                    names.append(name)
        for name in (n for n in SCENARIO_TITLES if n in names):
            yield f"f.{name}", "f", name


def row_summaries(cases: dict, case: str, scenario: str | None) -> dict[str, dict]:
    """lib -> the summary of that row (for (f): the scenario's)."""
    out = {}
    for lib, entry in cases.get(case, {}).items():
        s = entry.get("summary", {})
        if scenario is not None and "error" not in s:
            s = s.get("scenarios", {}).get(scenario, {})
        out[lib] = s
    return out


def titles(meta: dict) -> dict[str, str]:
    sizes = meta["sizes"]
    values = {"large": _fmt_size(sizes["large"]), "small_count": f"{sizes['small_count']:,}",
              "small_kib": sizes["small_size"] // 1024,
              "medium_mib": sizes["medium_size"] // MiB,
              "parquet_mb": f"{meta['parquet_size'] / 1e6:.0f}"}
    out = {k: v.format(scenario="", **values) for k, v in CASE_TITLES.items() if k != "f"}
    for name, title in SCENARIO_TITLES.items():
        info = meta.get("random", {}).get(name, {})
        size = f", {info['size'] / 1e6:.1f} MB" if info else ""
        out[f"f.{name}"] = CASE_TITLES["f"].format(scenario=title + size)
    return out


# --------------------------------------------------------------------------- summaries

def summarize(case: str, raw: dict, manifest: dict, link: dict | None = None) -> dict:
    """The numbers the tables show for one library in one case."""
    if "error" in raw:
        return {"error": raw["error"]}
    reps = raw["reps"]
    if case == "f":
        return _summarize_f(reps)
    cold = None
    if case == "g":  # the first batch is the cold one: it includes the AssumeRole
        cold, reps = reps[0], reps[1:]
    times = [r["time"] for r in reps if "time" in r]
    t = [r["traffic"] for r in reps]

    def med(key):
        return _median([x.get(key) for x in t])

    objects = manifest["objects"]
    flight = {"in_flight_max": med("in_flight_max"), "in_flight_mean": med("in_flight_mean"),
              "opened": med("opened")}
    if case in ("a", "ea"):
        size = objects[manifest["keys"]["large"]]
        out = {"median_s": _median(times), "mib_per_s": size / MiB / _median(times),
               "peak_rss_mib": raw["peak_rss"] / MiB, "base_rss_mib": raw["base_rss"] / MiB,
               "requests": med("requests"), "heads": med("head"), **flight}
        if case == "ea" and link:
            out["x_one_connection"] = size / _median(times) / 1e6 / link["one_connection_mb_s"]
        return out
    if case in ("b", "eb", "g"):
        keys = manifest["keys"]["small"]
        n = len(keys)
        out = {"median_s": _median(times), "objects_per_s": n / _median(times),
               "requests_per_object": med("requests") / n,
               "heads_per_object": med("head") / n, **flight}
        if case == "eb" and link and out["in_flight_max"]:
            # Each request costs at least the first-byte delay plus its body at one
            # connection's rate; c of them at once can do no better than this.
            size = objects[keys[0]]
            one = link["first_byte_ms"] / 1000 + size / (link["one_connection_mb_s"] * 1e6)
            requests = med("requests")
            out["floor_s"] = requests * one / out["in_flight_max"]
            out["floor_fraction"] = out["floor_s"] / out["median_s"]
        if cold is not None:
            out["cold_s"] = cold["time"]
            out["batches"] = len(raw["reps"])
            out["assume_role_calls"] = raw.get("assume_role_calls")
        return out
    if case == "c":
        opens = len(manifest["keys"]["medium"])
        flat = [x for r in reps for x in r["latencies"]]
        return {"median_s": _median(flat),
                "rep_medians_s": [_median(r["latencies"]) for r in reps],
                "requests_per_open": med("requests") / opens,
                "gets_per_open": med("get") / opens, "heads_per_open": med("head") / opens,
                "kib_sent_per_open": med("sent") / opens / 1024, **flight}
    if case in ("d", "ed"):
        size = manifest["parquet"]["size"]
        return {"median_s": _median(times), "requested_fraction": med("requested") / size,
                "sent_fraction": med("sent") / size, "requests": med("requests"),
                "floor_fraction": manifest["parquet"]["floor_bytes"] / size, **flight}
    raise ValueError(case)


def _summarize_f(reps: list[dict]) -> dict:
    out: dict = {"scenarios": {}}
    names = list(dict.fromkeys(n for r in reps for n in r.get("scenarios", {})))
    for name in names:
        runs = [r["scenarios"][name] for r in reps if name in r.get("scenarios", {})]
        errors = [x["error"] for x in runs if "error" in x]
        if errors:
            out["scenarios"][name] = {"error": errors[0]}
            continue
        need = runs[0]["needed"]
        first = [x["passes"][0] for x in runs]

        def med(passes, key):
            return _median([p.get(key) for p in passes])

        s = {"median_s": _median([x["time"] for x in runs]), "needed": need,
             "requested_ratio": med(first, "requested") / need,
             "sent_ratio": med(first, "sent") / need, "requests": med(first, "requests"),
             "heads": med(first, "head"), "cut_short": med(first, "cut_short"),
             "opened": med(first, "opened")}
        if len(runs[0]["passes"]) == 3:
            again = [x["passes"][1] for x in runs]
            reopened = [x["passes"][2] for x in runs]
            s.update(again_requests=med(again, "requests"),
                     again_requested_ratio=med(again, "requested") / need,
                     reopened_requests=med(reopened, "requests"),
                     again_s=_median([x["times"][1] for x in runs]))
        out["scenarios"][name] = s
    return out


def add_ratios(cases: dict) -> None:
    """ratio = median time / raw aiohttp's in the same row ((g): case (b)'s raw), and
    vs_best = median time / the best peer's in the same row (named in ``best``)."""
    for _, case, scenario in rows(cases):
        libs = row_summaries(cases, case, scenario)
        raw_row = row_summaries(cases, "b", None) if case == "g" else libs
        raw = raw_row.get(RAW, {})
        # (g) has no peer of its own: the same batch's best peer, direct, in (b).
        peers = {lib: s["median_s"] for lib, s in raw_row.items()
                 if is_peer(lib) and s.get("median_s")}
        best = min(peers, key=peers.get) if peers else None
        for s in libs.values():
            if not s.get("median_s"):
                continue
            if raw.get("median_s"):
                s["ratio"] = s["median_s"] / raw["median_s"]
                if case in ("a", "ea") and "peak_rss_mib" in raw:
                    s["rss_over_raw_mib"] = s["peak_rss_mib"] - raw["peak_rss_mib"]
            if best is not None:
                s["best"] = best
                s["vs_best"] = s["median_s"] / peers[best]


def targets(cases: dict) -> list[dict]:
    """attachfs's targets, checked against this run (ratios to the best peer)."""
    def s(case, lib="attachfs"):
        return cases.get(case, {}).get(lib, {}).get("summary", {})

    out = []

    def check(name, ok, got):
        out.append({"target": name, "met": bool(ok), "got": got})

    def vs_best(x):
        return f"{x.get('vs_best', float('nan')):.2f}x {x.get('best', '-')}"

    a = s("a")
    if "median_s" in a:
        check("(a) time <= 1.0x the fastest peer", a.get("vs_best", 99) <= 1.0, vs_best(a))
        check("(a) peak RSS within 64 MiB of raw aiohttp's",
              a.get("rss_over_raw_mib", 1e9) <= 64,
              f"{a['peak_rss_mib']:.0f} MiB, {a.get('rss_over_raw_mib', float('nan')):+.0f} MiB")
    b = s("b")
    if "median_s" in b:
        ob = s("b", "obstore")
        if "median_s" in ob:
            check("(b) time <= 1.0x obstore", b["median_s"] <= ob["median_s"],
                  f"{b['median_s'] / ob['median_s']:.2f}x obstore")
    c = s("c")
    if "median_s" in c:
        check("(c) exactly 1 request per open", c["requests_per_open"] == 1,
              f"{c['requests_per_open']:.2f} requests per open ({c['heads_per_open']:.2f} HEAD)")
        check("(c) latency <= 1.5x raw aiohttp", c.get("ratio", 99) <= 1.5,
              f"{c.get('ratio', float('nan')):.2f}x")
    d = s("d")
    if "median_s" in d:
        check("(d) bytes requested <= 0.22 of the file", d["requested_fraction"] <= 0.22,
              f"{d['requested_fraction']:.3f}")
        pa = s("d", "pyarrow S3FileSystem")
        if "median_s" in pa:
            check("(d) time <= pyarrow S3FileSystem's", d["median_s"] <= pa["median_s"],
                  f"attachfs {d['median_s']:.2f} s, pyarrow {pa['median_s']:.2f} s")
    ea = s("ea")
    if "x_one_connection" in ea:
        check("(e) sequential read >= 6x one connection's throughput",
              ea["x_one_connection"] >= 6,
              f"{ea['x_one_connection']:.1f}x ({ea['mib_per_s']:.0f} MiB/s, "
              f"{ea['in_flight_max']:.0f} in flight)")
    eb = s("eb")
    if "floor_fraction" in eb:
        check("(e) small objects >= 0.8 of the floor its concurrency sets",
              eb["floor_fraction"] >= 0.8,
              f"{eb['floor_fraction']:.2f} of {eb['floor_s']:.2f} s at "
              f"{eb['in_flight_max']:.0f} in flight")
    ed = s("ed")
    if "median_s" in ed:
        check("(e) read_parquet fetches column chunks concurrently", ed["in_flight_max"] > 1,
              f"at most {ed['in_flight_max']:.0f} request(s) in flight, {ed['requests']:.0f} "
              "requests")
    for _, case, scenario in rows(cases):
        if case != "f":
            continue
        x = row_summaries(cases, "f", scenario).get("attachfs", {})
        if "requested_ratio" not in x:
            continue
        check(f"(f) {SCENARIO_TITLES[scenario]}: bytes requested <= 1.1x needed",
              x["requested_ratio"] <= 1.1, f"{x['requested_ratio']:.2f}x")
        check(f"(f) {SCENARIO_TITLES[scenario]}: a second pass makes no request",
              x.get("again_requests", 1) == 0,
              f"{x.get('again_requests', float('nan')):.0f} requests "
              f"({x.get('reopened_requests', float('nan')):.0f} after reopening)")
    g = s("g")
    if "median_s" in g:
        check("(g) exactly one AssumeRole for the whole batch", g["assume_role_calls"] == 1,
              f"{g['assume_role_calls']} AssumeRole over {g['batches']} batches in one process")
    return out


# --------------------------------------------------------------------------- markdown

def _ms(x):
    if x is None:
        return "-"
    return f"{x * 1000:.1f} ms" if x < 1 else f"{x:.2f} s"


def _ratio(s):
    return f"{s['ratio']:.2f}x" if "ratio" in s else "-"


def _best(s):
    return f"{s['vs_best']:.2f}x" if "vs_best" in s else "-"


def _n(x, fmt=".0f"):
    return "-" if x is None else format(x, fmt)


def one_line(case: str, s: dict) -> str:
    """The progress line for one library in one case."""
    if "error" in s:
        return f"ERROR {s['error'][:300]}"
    if case == "f":
        return "; ".join(
            f"{n}: " + (f"ERROR {x['error'][:120]}" if "error" in x else
                        f"{_ms(x['median_s'])}, {x['requested_ratio']:.2f}x needed, pass 2 "
                        f"{_n(x.get('again_requests'))} req")
            for n, x in s.get("scenarios", {}).items())
    return f"median {_ms(s['median_s'])}"


def _cell(row: str, s: dict) -> str:
    """A cell of the summary table: the two ratios and the row's telling number."""
    if not s:
        return "-"
    if "error" in s:
        return "error"
    head = f"{_ratio(s)} · {_best(s)} best"
    case = row.split(".")[0]
    if case == "a":
        return f"{head}, {s['peak_rss_mib']:.0f} MiB RSS"
    if case == "b":
        return f"{head}, {s['requests_per_object']:.2f} req/obj"
    if case == "c":
        req = (f"{s['heads_per_open']:.0f} HEAD + {s['gets_per_open']:.0f} GET"
               if s["heads_per_open"] else f"{s['gets_per_open']:.2g} GET")
        return f"{head}, {req}, {s['kib_sent_per_open']:.0f} KiB"
    if case in ("d", "ed"):
        flight = f", {s['in_flight_max']:.0f} in flight" if case == "ed" else ""
        return f"{head}, {s['requested_fraction']:.2f} of file{flight}"
    if case == "ea":
        return f"{head}, {s.get('x_one_connection', 0):.1f}x one conn"
    if case == "eb":
        return f"{head}, {s.get('floor_fraction', 0):.2f} of floor"
    if case == "f":
        again = s.get("again_requests")
        return (f"{head}, {s['requested_ratio']:.2f}x needed"
                + (f", pass 2: {again:.0f} req" if again is not None else ""))
    if case == "g":
        return f"{head}, {s['assume_role_calls']} AssumeRole"
    return head


def _detail_rows(row: str, libs: list[tuple[str, dict]]):
    case = row.split(".")[0]
    if case in ("a", "ea"):
        head = ["library", "median", "MiB/s", "x raw", "x best peer", "peak RSS", "RSS vs raw",
                "requests", "in flight"]
        if case == "ea":
            head.insert(3, "x one connection")
        rows_ = []
        for n, s in libs:
            r = [n, _ms(s["median_s"]), f"{s['mib_per_s']:.0f}", _ratio(s), _best(s),
                 f"{s['peak_rss_mib']:.0f} MiB", f"{s.get('rss_over_raw_mib', 0):+.0f} MiB",
                 f"{s['requests']:.0f} ({s['heads']:.0f} HEAD)", _n(s.get("in_flight_max"))]
            if case == "ea":
                r.insert(3, f"{s.get('x_one_connection', 0):.1f}x")
            rows_.append(r)
    elif case in ("b", "eb"):
        # In flight only over the link: on bare loopback most requests take under the log's
        # 1 ms resolution.
        head = ["library", "median", "objects/s", "x raw", "x best peer", "requests/object",
                "connections opened"]
        if case == "eb":
            head += ["in flight (max, mean)", "floor at its concurrency", "fraction of floor"]
        rows_ = []
        for n, s in libs:
            r = [n, _ms(s["median_s"]), f"{s['objects_per_s']:,.0f}", _ratio(s), _best(s),
                 f"{s['requests_per_object']:.2f} ({s['heads_per_object']:.2f} HEAD)",
                 _n(s.get("opened"))]
            if case == "eb":
                r += [f"{_n(s.get('in_flight_max'))}, {_n(s.get('in_flight_mean'), '.1f')}",
                      _ms(s.get("floor_s")), _n(s.get("floor_fraction"), ".2f")]
            rows_.append(r)
    elif case == "c":
        head = ["library", "median latency", "x raw", "x best peer", "requests/open",
                "KiB sent/open"]
        rows_ = [[n, _ms(s["median_s"]), _ratio(s), _best(s),
                  f"{s['requests_per_open']:.2f} ({s['heads_per_open']:.2f} HEAD)",
                  f"{s['kib_sent_per_open']:,.0f}"] for n, s in libs]
    elif case in ("d", "ed"):
        head = ["library", "median", "x raw", "x best peer", "requested / file",
                "sent / file", "requests"] + (["in flight (max, mean)"] if case == "ed" else [])
        rows_ = [[n, _ms(s["median_s"]), _ratio(s), _best(s),
                  f"{s['requested_fraction']:.3f}", f"{s['sent_fraction']:.3f}",
                  f"{s['requests']:.0f}"]
                 + ([f"{_n(s.get('in_flight_max'))}, {_n(s.get('in_flight_mean'), '.1f')}"]
                    if case == "ed" else []) for n, s in libs]
    elif case == "f":
        head = ["library", "first pass", "x raw", "x best peer", "requested / needed",
                "sent / needed", "requests (HEAD)", "cut short", "2nd pass: requests",
                "2nd pass: requested / needed", "2nd pass time", "reopened: requests"]
        rows_ = [[n, _ms(s["median_s"]), _ratio(s), _best(s), f"{s['requested_ratio']:.2f}",
                  f"{s['sent_ratio']:.2f}", f"{s['requests']:.0f} ({s['heads']:.0f})",
                  _n(s.get("cut_short")), _n(s.get("again_requests")),
                  _n(s.get("again_requested_ratio"), ".2f"), _ms(s.get("again_s")),
                  _n(s.get("reopened_requests"))] for n, s in libs]
    else:
        head = ["library", "cold batch", "warm median", "x raw (b)", "requests/object",
                "AssumeRole calls"]
        rows_ = [[n, _ms(s["cold_s"]), _ms(s["median_s"]), _ratio(s),
                  f"{s['requests_per_object']:.2f}", str(s["assume_role_calls"])]
                 for n, s in libs]
    return head, rows_


def _api(entry: dict) -> str:
    return entry.get("raw", {}).get("api", "")


def markdown(result: dict) -> str:
    meta, cases = result["meta"], result["cases"]
    t = titles(meta)
    loads = sorted(x for libs in cases.values() for e in libs.values()
                   for x in e["raw"].get("load", []))
    load = (f" · 1-min load average before each repetition {loads[0]:.1f}-{loads[-1]:.1f} "
            f"(median {_median(loads):.1f})" if loads else "")
    lines = [f"# attachfs benchmark ({meta['profile']})", "",
             f"{meta['date']} · {meta['machine']} · nginx {meta['nginx']} on 127.0.0.1 · "
             f"medians of {meta['reps']} repetitions · ratios are time / raw aiohttp's "
             "time and time / the best peer's time in the same run (lower is better) · "
             f"attachfs at `{meta['git']}`{load}", ""]
    link = meta.get("link")
    if link:
        lines += [f"Profile (e), the cloud-like link: nginx `{link['setting']}`, measured "
                  f"before the run: first byte after {link['first_byte_ms']:.1f} ms, one "
                  f"connection {link['one_connection_mb_s']:.1f} MB/s.", ""]
    all_rows = list(rows(cases))
    libs = [n for n in result["order"] if any(n in cases.get(c, {}) for _, c, _ in all_rows
                                             if c != "g")]
    lines += ["## Summary", "",
              "Each cell: time / raw aiohttp's · time / the best peer's (the fastest library "
              "other than attachfs and the raw floors), then the row's telling number.", "",
              "| case | best peer | " + " | ".join(libs) + " |",
              "|---|---|" + "---|" * len(libs)]
    for row, case, scenario in all_rows:
        summaries = row_summaries(cases, case, scenario)
        best = next((s["best"] for s in summaries.values() if "best" in s), "-")
        cells = [_cell(row, summaries.get(n, {})) for n in libs]
        lines.append(f"| {t[row]} | {best} | " + " | ".join(cells) + " |")
    if result.get("targets"):
        lines += ["", "## attachfs against the targets", "",
                  "| target | met | this run |", "|---|---|---|"]
        for x in result["targets"]:
            lines.append(f"| {x['target']} | {'yes' if x['met'] else '**no**'} | {x['got']} |")
    for row, case, scenario in all_rows:
        summaries = row_summaries(cases, case, scenario)
        ok = [(n, s) for n, s in summaries.items() if s and "error" not in s]
        head, table = _detail_rows(row, ok)
        lines += ["", f"## {t[row]}", ""]
        if scenario is not None:
            lines += [f"Reads: {meta.get('random', {}).get(scenario, {}).get('reads', '')}; "
                      f"the reader needs {ok[0][1]['needed']:,} distinct bytes (measured on "
                      "the local file)." if ok else "", ""]
        lines += ["| " + " | ".join(head + ["API"]) + " |", "|" + "---|" * (len(head) + 1)]
        for (name, _), cells in zip(ok, table, strict=True):
            lines.append("| " + " | ".join(cells + [_api(cases[case][name])]) + " |")
        for name, s in summaries.items():
            if "error" in s:
                lines.append(f"| {name} | error: {s['error'][:300]} |")
        if case in ("d", "ed"):
            floor = meta["parquet_floor"]
            if floor:
                lines += ["", f"Floor: the two columns' chunks plus the footer are "
                          f"{floor / meta['parquet_size']:.3f} of the file. raw aiohttp "
                          "fetches exactly those ranges and decodes nothing, so its time is "
                          "the I/O floor, not a pandas time."]
        if case == "eb":
            lines += ["", "Floor at its concurrency: requests x (first-byte delay + one "
                      "object at one connection's rate) / the most requests the server saw "
                      "in flight at once for that library. Fraction of floor = floor / time "
                      "(1.0 = the client keeps every one of its connections busy)."]
        if case == "f" and scenario == "zip":
            lines += ["", "Case (f) reads a fresh name of each file every repetition, so no "
                      "cache carries bytes from one repetition into the next. First pass: a "
                      "new file; 2nd pass: the same reader over the same blocks again; "
                      "reopened: a new file of the same object. raw aiohttp fetches exactly "
                      "the needed ranges, gathered: the I/O floor."]
    lines += ["", "## Versions", "", ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
              ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- chart

def _bars(cases: dict, row: str, case: str, scenario: str | None) -> list[tuple[str, float]]:
    """(label, ratio to raw aiohttp) for one panel of the chart."""
    if case != "g":
        return [(n, s["ratio"]) for n, s in row_summaries(cases, case, scenario).items()
                if "ratio" in s]
    # (g) next to what it is compared with: the same batch, direct, in case (b).
    g = cases["g"].get("attachfs", {}).get("summary", {})
    raw = cases.get("b", {}).get(RAW, {}).get("summary", {}).get("median_s")
    if "ratio" not in g or not raw:
        return []
    out = [(f"{RAW} (b)", 1.0)]
    direct = cases["b"].get("attachfs", {}).get("summary", {})
    if "ratio" in direct:
        out.append(("attachfs, direct (b)", direct["ratio"]))
    out += [("attachfs, delegated", g["ratio"]),
            ("attachfs, delegated, cold batch", g["cold_s"] / raw)]
    return out


def chart(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    cases = result["cases"]
    shown = [r for r in rows(cases)]
    t = titles(result["meta"])
    bars = {row: _bars(cases, row, case, scenario) for row, case, scenario in shown}
    shown = [r for r in shown if bars[r[0]]]
    heights = [max(2, len(bars[r[0]])) * 0.32 + 0.9 for r in shown]
    fig, axes = plt.subplots(len(shown), 1, figsize=(10, sum(heights) + 0.6), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for ax, (row, case, _) in zip(axes[:, 0], shown, strict=True):
        entries = bars[row]
        names = [n for n, _ in entries][::-1]
        ratios = [r for _, r in entries][::-1]
        colors = ["#d62728" if n.startswith("attachfs") else "#7f7f7f" if n.startswith(RAW)
                  else "#1f77b4" for n in names]
        ax.barh(names, ratios, color=colors)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1, 2, 5)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.axvline(1.0, color="black", linewidth=0.8)
        if case in TARGET_RATIOS:
            ax.axvline(TARGET_RATIOS[case], color="#d62728", linestyle="--", linewidth=0.8)
            ax.text(TARGET_RATIOS[case], -0.55, " attachfs target", color="#d62728",
                    fontsize=7, va="bottom")
        for y, r in enumerate(ratios):
            ax.text(r, y, f" {r:.2f}x", va="center", fontsize=8)
        ax.set_title(t[row], fontsize=10, loc="left")
        ax.tick_params(axis="y", labelsize=8)
        ax.set_xlim(left=min(0.5, min(ratios, default=1) * 0.8),
                    right=max(ratios, default=1) * 2.5)
    axes[-1, 0].set_xlabel("time / raw aiohttp time (log scale; lower is better)")
    fig.suptitle(f"attachfs benchmark ({result['meta']['profile']}, {result['meta']['date']})",
                 fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.985))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _migrate(result: dict) -> dict:
    """Results written before profile (e) existed called the delegated batch (e)."""
    cases = result["cases"]
    if "e" in cases and "g" not in cases:
        cases["g"] = cases.pop("e")
        for entry in cases["g"].values():
            entry["summary"].pop("vs_best", None)
    for _, case, scenario in list(rows(cases)):
        for s in row_summaries(cases, case, scenario).values():
            s.pop("best", None)
    add_ratios(cases)
    result["targets"] = targets(cases)
    return result


def rerender(json_path: Path) -> None:
    """Write results.md and results.png again from a results.json (after a report change)."""
    import json

    result = _migrate(json.loads(json_path.read_text()))
    (json_path.parent / "results.md").write_text(markdown(result))
    chart(result, json_path.parent / "results.png")


if __name__ == "__main__":
    import sys

    rerender(Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "results"
                  / "results.json"))
