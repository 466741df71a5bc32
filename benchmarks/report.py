"""Turn the workers' raw results into medians, ratios, target checks, markdown, JSON and a PNG.

Every ratio is to the raw aiohttp client measured in the same run: time / raw's time, so
1.0x is the floor and 2.0x takes twice as long.
"""

from __future__ import annotations

import statistics
from pathlib import Path

MiB = 2**20
RAW = "raw aiohttp"

CASE_TITLES = {
    "a": "(a) sequential open()+read(8 MiB) of {large}",
    "b": "(b) {small_count} x {small_kib} KiB objects, best concurrent API",
    "c": "(c) open()+read(1 KiB) of a {medium_mib} MiB object",
    "d": "(d) pandas.read_parquet, 2 of 10 columns, {parquet_mb} MB file, 20 row groups",
    "e": "(e) the batch of (b) for a delegated tenant (AssumeRole via moto STS)",
}


#: The issue's time targets for attachfs, as ratios to raw aiohttp (drawn on the chart).
TARGET_RATIOS = {"a": 1.15, "b": 1.3, "c": 1.5}


def _median(xs):
    return statistics.median(xs) if xs else None


def _fmt_size(n: int) -> str:
    return f"{n / 2**30:g} GiB" if n >= 2**30 else f"{n / MiB:g} MiB"


def titles(meta: dict) -> dict[str, str]:
    sizes = meta["sizes"]
    values = {"large": _fmt_size(sizes["large"]), "small_count": f"{sizes['small_count']:,}",
              "small_kib": sizes["small_size"] // 1024,
              "medium_mib": sizes["medium_size"] // MiB,
              "parquet_mb": f"{meta['parquet_size'] / 1e6:.0f}"}
    return {k: v.format(**values) for k, v in CASE_TITLES.items()}


def summarize(case: str, raw: dict, manifest: dict) -> dict:
    """The numbers the table shows for one library in one case."""
    if "error" in raw:
        return {"error": raw["error"]}
    reps = raw["reps"]
    cold = None
    if case == "e":  # the first batch is the cold one: it includes the AssumeRole
        cold, reps = reps[0], reps[1:]
    times = [r["time"] for r in reps if "time" in r]
    t = [r["traffic"] for r in reps]
    med = lambda key: _median([x[key] for x in t])  # noqa: E731
    objects = manifest["objects"]
    if case == "a":
        size = objects[manifest["keys"]["large"]]
        return {"median_s": _median(times), "mib_per_s": size / MiB / _median(times),
                "peak_rss_mib": raw["peak_rss"] / MiB, "base_rss_mib": raw["base_rss"] / MiB,
                "requests": med("requests"), "heads": med("head")}
    if case in ("b", "e"):
        n = len(manifest["keys"]["small"])
        out = {"median_s": _median(times), "objects_per_s": n / _median(times),
               "requests_per_object": med("requests") / n,
               "heads_per_object": med("head") / n}
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
                "kib_sent_per_open": med("sent") / opens / 1024}
    if case == "d":
        size = manifest["parquet"]["size"]
        return {"median_s": _median(times), "requested_fraction": med("requested") / size,
                "sent_fraction": med("sent") / size, "requests": med("requests"),
                "floor_fraction": manifest["parquet"]["floor_bytes"] / size}
    raise ValueError(case)


def add_ratios(cases: dict) -> None:
    """ratio = median time / raw aiohttp's median time in the same case ((e): case (b)'s)."""
    for case, libs in cases.items():
        base_case = "b" if case == "e" else case
        raw = cases.get(base_case, {}).get(RAW, {}).get("summary", {})
        for entry in libs.values():
            s = entry.get("summary", {})
            if "median_s" in s and raw.get("median_s"):
                s["ratio"] = s["median_s"] / raw["median_s"]
                if case == "a" and "peak_rss_mib" in raw:
                    s["rss_over_raw_mib"] = s["peak_rss_mib"] - raw["peak_rss_mib"]


def targets(cases: dict) -> list[dict]:
    """The issue's targets for attachfs, checked against this run."""
    def s(case, lib="attachfs"):
        return cases.get(case, {}).get(lib, {}).get("summary", {})

    out = []

    def check(name, ok, got):
        out.append({"target": name, "met": bool(ok), "got": got})

    c = s("c")
    if "median_s" in c:
        check("(c) exactly 1 request per open", c["requests_per_open"] == 1,
              f"{c['requests_per_open']:.2f} requests per open ({c['heads_per_open']:.2f} HEAD)")
        check("(c) latency <= 1.5x raw aiohttp", c.get("ratio", 99) <= 1.5,
              f"{c.get('ratio', float('nan')):.2f}x")
    b = s("b")
    if "median_s" in b:
        check("(b) <= 1.3x raw aiohttp", b.get("ratio", 99) <= 1.3,
              f"{b.get('ratio', float('nan')):.2f}x")
        ob, s3 = s("b", "obstore"), s("b", "s3fs")
        if "median_s" in ob:
            check("(b) ahead of obstore's native API", b["median_s"] < ob["median_s"],
                  f"attachfs {b['median_s']:.3f} s, obstore {ob['median_s']:.3f} s")
        if "median_s" in s3:
            check("(b) 10x ahead of s3fs", s3["median_s"] >= 10 * b["median_s"],
                  f"s3fs / attachfs = {s3['median_s'] / b['median_s']:.1f}x")
    a = s("a")
    if "median_s" in a:
        check("(a) <= 1.15x raw aiohttp", a.get("ratio", 99) <= 1.15,
              f"{a.get('ratio', float('nan')):.2f}x")
        check("(a) peak RSS within 64 MiB of raw aiohttp's",
              a.get("rss_over_raw_mib", 1e9) <= 64,
              f"{a['peak_rss_mib']:.0f} MiB, {a.get('rss_over_raw_mib', float('nan')):+.0f} MiB")
    d = s("d")
    if "median_s" in d:
        check("(d) bytes requested <= 0.22 of the file", d["requested_fraction"] <= 0.22,
              f"{d['requested_fraction']:.3f}")
        pa = s("d", "pyarrow S3FileSystem")
        if "median_s" in pa:
            check("(d) time <= pyarrow S3FileSystem's", d["median_s"] <= pa["median_s"],
                  f"attachfs {d['median_s']:.2f} s, pyarrow {pa['median_s']:.2f} s")
    e = s("e")
    if "median_s" in e:
        check("(e) exactly one AssumeRole for the whole batch", e["assume_role_calls"] == 1,
              f"{e['assume_role_calls']} AssumeRole over {e['batches']} batches in one process")
    return out


# --------------------------------------------------------------------------- markdown

def _ms(x):
    return f"{x * 1000:.1f} ms" if x < 1 else f"{x:.2f} s"


def _ratio(s):
    return f"{s['ratio']:.2f}x" if "ratio" in s else "-"


def _cell(case: str, s: dict) -> str:
    """A cell of the summary table: ratio and the case's telling number."""
    if not s:
        return "-"
    if "error" in s:
        return "error"
    if case == "a":
        return f"{_ratio(s)}, {s['peak_rss_mib']:.0f} MiB RSS"
    if case == "b":
        return f"{_ratio(s)}, {s['requests_per_object']:.2f} req/obj"
    if case == "c":
        req = (f"{s['heads_per_open']:.0f} HEAD + {s['gets_per_open']:.0f} GET"
               if s["heads_per_open"] else f"{s['gets_per_open']:.2g} GET")
        return f"{_ratio(s)}, {req}, {s['kib_sent_per_open']:.0f} KiB"
    if case == "d":
        return f"{_ratio(s)}, {s['requested_fraction']:.2f} of file"
    if case == "e":
        return f"{_ratio(s)}, {s['assume_role_calls']} AssumeRole"
    return "-"


def _detail_rows(case: str, libs: dict) -> list[str]:
    if case == "a":
        head = ["library", "median", "MiB/s", "x raw", "peak RSS", "RSS vs raw", "requests",
                "API"]
        rows = [[n, _ms(s["median_s"]), f"{s['mib_per_s']:.0f}", _ratio(s),
                 f"{s['peak_rss_mib']:.0f} MiB", f"{s.get('rss_over_raw_mib', 0):+.0f} MiB",
                 f"{s['requests']:.0f} ({s['heads']:.0f} HEAD)"] for n, s in libs]
    elif case == "b":
        head = ["library", "median", "objects/s", "x raw", "requests/object", "API"]
        rows = [[n, _ms(s["median_s"]), f"{s['objects_per_s']:,.0f}", _ratio(s),
                 f"{s['requests_per_object']:.2f} ({s['heads_per_object']:.2f} HEAD)"]
                for n, s in libs]
    elif case == "c":
        head = ["library", "median latency", "x raw", "requests/open", "KiB sent/open", "API"]
        rows = [[n, _ms(s["median_s"]), _ratio(s),
                 f"{s['requests_per_open']:.2f} ({s['heads_per_open']:.2f} HEAD)",
                 f"{s['kib_sent_per_open']:,.0f}"] for n, s in libs]
    elif case == "d":
        head = ["library", "median", "x raw", "requested / file", "sent / file", "requests",
                "API"]
        rows = [[n, _ms(s["median_s"]), _ratio(s), f"{s['requested_fraction']:.3f}",
                 f"{s['sent_fraction']:.3f}", f"{s['requests']:.0f}"] for n, s in libs]
    else:
        head = ["library", "cold batch", "warm median", "x raw (b)", "requests/object",
                "AssumeRole calls", "API"]
        rows = [[n, _ms(s["cold_s"]), _ms(s["median_s"]), _ratio(s),
                 f"{s['requests_per_object']:.2f}", str(s["assume_role_calls"])]
                for n, s in libs]
    return head, rows


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
             "time in the same run (lower is better) · attachfs at "
             f"`{meta['git']}`{load}", ""]
    libs = [n for n in result["order"] if any(n in cases.get(c, {}) for c in "abcd")]
    lines += ["## Summary", "", "| case | " + " | ".join(libs) + " |",
              "|---|" + "---|" * len(libs)]
    for case in "abcde":
        if case not in cases:
            continue
        cells = [_cell(case, cases[case].get(n, {}).get("summary", {})) for n in libs]
        lines.append(f"| {t[case]} | " + " | ".join(cells) + " |")
    if result.get("targets"):
        lines += ["", "## attachfs against the targets", "",
                  "| target | met | this run |", "|---|---|---|"]
        for x in result["targets"]:
            lines.append(f"| {x['target']} | {'yes' if x['met'] else '**no**'} | {x['got']} |")
    for case in "abcde":
        if case not in cases:
            continue
        ok = [(n, e["summary"]) for n, e in cases[case].items() if "error" not in e["summary"]]
        head, rows = _detail_rows(case, ok)
        lines += ["", f"## {t[case]}", "", "| " + " | ".join(head) + " |",
                  "|" + "---|" * len(head)]
        for (name, _), row in zip(ok, rows, strict=True):
            api = cases[case][name]["raw"].get("api", "")
            lines.append("| " + " | ".join(row + [api]) + " |")
        for name, e in cases[case].items():
            if "error" in e["summary"]:
                lines.append(f"| {name} | error: {e['summary']['error']} |")
        if case == "d":
            floor = meta["parquet_floor"]
            if floor:
                lines += ["", f"Floor: the two columns' chunks plus the footer are "
                          f"{floor / meta['parquet_size']:.3f} of the file. raw aiohttp "
                          "fetches exactly those ranges and decodes nothing, so its time is "
                          "the I/O floor, not a pandas time."]
    lines += ["", "## Versions", "", ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
              ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- chart

def _bars(cases: dict, case: str) -> list[tuple[str, float]]:
    """(label, ratio to raw aiohttp) for one panel of the chart."""
    if case != "e":
        return [(n, e["summary"]["ratio"]) for n, e in cases[case].items()
                if "ratio" in e.get("summary", {})]
    # (e) next to what it is compared with: the same batch, direct, in case (b).
    e = cases["e"].get("attachfs", {}).get("summary", {})
    raw = cases.get("b", {}).get(RAW, {}).get("summary", {}).get("median_s")
    if "ratio" not in e or not raw:
        return []
    out = [(f"{RAW} (b)", 1.0)]
    direct = cases["b"].get("attachfs", {}).get("summary", {})
    if "ratio" in direct:
        out.append(("attachfs, direct (b)", direct["ratio"]))
    out += [("attachfs, delegated", e["ratio"]),
            ("attachfs, delegated, cold batch", e["cold_s"] / raw)]
    return out


def chart(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    cases = result["cases"]
    shown = [c for c in "abcde" if c in cases]
    t = titles(result["meta"])
    bars = {case: _bars(cases, case) for case in shown}
    heights = [max(2, len(bars[c])) * 0.32 + 0.9 for c in shown]
    fig, axes = plt.subplots(len(shown), 1, figsize=(10, sum(heights) + 0.6), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for ax, case in zip(axes[:, 0], shown, strict=True):
        entries = bars[case]
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
        ax.set_title(t[case], fontsize=10, loc="left")
        ax.tick_params(axis="y", labelsize=8)
        ax.set_xlim(left=min(0.5, min(ratios, default=1) * 0.8),
                    right=max(ratios, default=1) * 2.5)
    axes[-1, 0].set_xlabel("time / raw aiohttp time (log scale; lower is better)")
    fig.suptitle(f"attachfs benchmark ({result['meta']['profile']}, {result['meta']['date']})",
                 fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.985))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def rerender(json_path: Path) -> None:
    """Write results.md and results.png again from a results.json (after a report change)."""
    import json

    result = json.loads(json_path.read_text())
    (json_path.parent / "results.md").write_text(markdown(result))
    chart(result, json_path.parent / "results.png")


if __name__ == "__main__":
    import sys

    rerender(Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "results"
                  / "results.json"))
