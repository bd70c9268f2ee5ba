"""Learning curves of every latency predictor: fitted on 10 / 20 / 50 / 100 measured subnets,
scored on held-out ones (MAPE, within +-5 % / +-10 %, Kendall tau).

Measures nothing. The measurements are files given with ``--measurements`` (repeat it), each one of

* an end-to-end store, ``<tables>/<device>/<space>-<runtime>[-<precision>].<space>@w<W>r<R>.e2e.json``
  (written by ``hwnas lut calibrate / validate / fit``): device, space, width, resolution, runtime
  and precision come from its name and path, the latency table from the same folder;
* a CSV (columns genes and latency_ms), with ``--device / --space / --width / --resolution /
  --runtime / --tables-dir`` saying what it measured.

Without ``--measurements`` it reads every stored end-to-end file the docs' tables come from: the
host stores shipped with the package (LiteRT) and those in ``tools/bench/data/predictor_curves``
(ONNX Runtime), so ``python tools/bench/predictor_curves.py`` reprints docs/predictors.md's curves.
Each size is drawn ``--repeats`` times from the measurements left after holding out ``--test``.

Usage: OMP_NUM_THREADS=1 python tools/bench/predictor_curves.py \
    [--measurements FILE ...] [--runtime tflite|onnx] [--sizes 10,20,50,100] [--test 32] [--repeats 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from hwnas.errors import HwnasError  # noqa: E402
from hwnas.latency.predictors import predictor_names  # noqa: E402
from hwnas.latency.predictors.fitting import (  # noqa: E402
    available,
    context_for,
    learning_curve,
    read_csv,
    store_measurements,
)
from hwnas.latency.table import default_table_dir  # noqa: E402
from hwnas.spaces import create_space  # noqa: E402

#: tables folder of the bench's own measurements (ONNX Runtime on the development host)
DATA = Path(__file__).resolve().parent / "data" / "predictor_curves"
E2E_TAG = re.compile(r"^(?P<space>[^@]+)@w(?P<width>[0-9.]+)r(?P<res>[0-9]+)")
#: the held-out count of the docs' tables
TEST = 32


def default_files() -> list[Path]:
    return sorted(default_table_dir().glob("host/*.e2e.json")) + sorted(DATA.glob("*/*.e2e.json"))


def parse_store_name(path: Path) -> dict:
    """Device, space tag, space name, runtime, precision and tables root of an end-to-end store."""
    stem = path.name[:-len(".e2e.json")] if path.name.endswith(".e2e.json") else ""
    prefix, _, tag = stem.partition(".")
    mt = E2E_TAG.match(tag)
    if not mt or not prefix.startswith(mt["space"] + "-"):
        raise HwnasError(f"--measurements {path}: not an end-to-end store name "
                         f"(<space>-<runtime>[-<precision>].<space>@w<W>r<R>.e2e.json) nor a .csv file")
    rest = prefix[len(mt["space"]) + 1:].split("-")
    return {"device": path.parent.name, "root": path.parent.parent, "tag": tag, "space": mt["space"],
            "width": float(mt["width"]), "resolution": int(mt["res"]), "runtime": rest[0],
            "precision": rest[1] if len(rest) > 1 else None}


def store_space(s: dict, num_classes: int | None):
    """The space of a store: the config of its table whose tag is the store's (so every setting a
    tag names, such as fbnet's layout, is the table's), else built from the tag's width and resolution."""
    from hwnas.io import read_json
    from hwnas.latency.table import find_table, space_tag
    from hwnas.spaces.registry import space_from_config

    t = find_table(s["device"], s["space"], s["runtime"], s["root"], s["precision"])
    if t.exists():
        for cfg in read_json(t, "latency table").get("metadata", {}).get("space_configs", []):
            sp = space_from_config(cfg)
            if space_tag(sp) == s["tag"]:
                return sp if num_classes is None else space_from_config({**cfg, "num_classes": num_classes})
    return create_space(s["space"], width=s["width"], resolution=s["resolution"], num_classes=num_classes)


def load(path: Path, a) -> tuple:
    """(measurements, context) of one --measurements file."""
    if path.suffix == ".csv":
        space = create_space(a.space, width=a.width, resolution=a.resolution, num_classes=a.num_classes)
        ctx = context_for(a.device, space, a.runtime, a.tables_dir)
        return read_csv(path, space), ctx
    s = parse_store_name(path)
    if a.runtime and s["runtime"] != a.runtime:
        return None, None
    space = store_space(s, a.num_classes)
    ctx = context_for(s["device"], space, s["runtime"], s["root"], s["precision"])
    return store_measurements(path, f"e2e:{path.name}"), ctx


def curve(path: Path, a, sizes: list[int]) -> dict | None:
    m, ctx = load(path, a)
    if m is None:
        return None
    names, skipped = available(predictor_names(), ctx)
    # sizes the store is too small for (after --test held out) are left out, and said so
    fits = [k for k in sizes if k + a.test <= len(m)] or sizes[:1]
    t0 = time.perf_counter()
    points = learning_curve(names, m, ctx, sizes=fits, test=a.test, repeats=a.repeats)
    sp = ctx.space
    return {"file": str(path), "device": ctx.device, "space": sp.name, "width": sp.width, "resolution": sp.resolution,
            "runtime": ctx.runtime, "source": m.source, "measurements": len(m),
            "held_out": int(points[0].scores["n"]) if points else 0, "repeats": a.repeats,
            "seconds": time.perf_counter() - t0, "skipped": skipped, "names": names,
            "sizes_left_out": [k for k in sizes if k not in fits],
            "points": [{"predictor": p.predictor, "n_fit": p.n_fit, **p.scores} for p in points]}


def summary(c: dict, sizes: list[int]) -> str:
    """Where the table sum is weakest and which predictor is best there."""
    by = {(p["predictor"], p["n_fit"]): p for p in c["points"]}
    sizes = [k for k in sizes if k not in c["sizes_left_out"]]
    if ("table-sum", sizes[0]) not in by:
        best = max((p for p in c["points"]), key=lambda p: (p["within_10"], -p["mape"]))
        return f"no table: best {best['predictor']} at n={best['n_fit']} ({best['within_10']:.0%} within +-10 %)"
    k = min(sizes, key=lambda s: (by[("table-sum", s)]["within_10"], -by[("table-sum", s)]["mape"]))
    ts = by[("table-sum", k)]
    rivals = [by[(n, k)] for n in c["names"] if n != "table-sum" and (n, k) in by]
    best = max(rivals, key=lambda p: (p["within_10"], -p["mape"]))
    verdict = ("beats it" if best["within_10"] > ts["within_10"] else
               "ties with it" if best["within_10"] == ts["within_10"] else "does not beat it")
    return (f"table sum weakest at n={k}: {ts['within_10']:.0%} within +-10 %, MAPE {ts['mape']:.1%}; "
            f"best other there: {best['predictor']} {best['within_10']:.0%}, MAPE {best['mape']:.1%} ({verdict} on +-10 %)")


def print_table(c: dict, sizes: list[int]) -> None:
    print(f"{c['device']} {c['space']} w{c['width']:g} r{c['resolution']} {c['runtime']}: {c['measurements']} "
          f"measured subnets ({c['source']}), {c['held_out']} held out, mean of {c['repeats']} draws; "
          f"{c['seconds']:.0f} s")
    print("| predictor | " + " | ".join(f"n={k}" for k in sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    for name in c["names"]:
        cells = []
        for k in sizes:
            p = next((p for p in c["points"] if p["predictor"] == name and p["n_fit"] == k), None)
            cells.append("-" if p is None else f"{p['within_10']:.0%} / {p['mape']:.1%} / {p['kendall_tau']:.2f}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("(within +-10 % / MAPE / Kendall tau)")
    if c["sizes_left_out"]:
        print("n=" + ", n=".join(map(str, c["sizes_left_out"])) + f": left out, {c['measurements']} measurements "
              f"leave {c['measurements'] - c['held_out']} to fit on after {c['held_out']} held out")
    for name, why in c["skipped"].items():
        print(f"{name} skipped: {why}")
    print(summary(c, sizes))
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--measurements", action="append", type=Path,
                    help="an end-to-end store (*.e2e.json) or a CSV; repeat for several (default: the docs' files)")
    ap.add_argument("--runtime", help="only stores of this runtime (tflite, onnx); for a CSV its runtime (default tflite)")
    ap.add_argument("--device", default="host", help="for a CSV: the device whose table is used")
    ap.add_argument("--space", default="mbv2", help="for a CSV")
    ap.add_argument("--width", type=float, help="for a CSV")
    ap.add_argument("--resolution", type=int, help="for a CSV")
    ap.add_argument("--num-classes", type=int)
    ap.add_argument("--tables-dir", help="for a CSV: where the device's table is")
    ap.add_argument("--from-csv", type=Path, help="same as --measurements FILE.csv")
    ap.add_argument("--sizes", default="10,20,50,100")
    ap.add_argument("--test", type=int, default=TEST, help="held-out measurements")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    files = list(a.measurements or []) + ([a.from_csv] if a.from_csv else [])
    if any(f.suffix == ".csv" for f in files) and a.runtime is None:
        a.runtime = "tflite"
    sizes = [int(s) for s in a.sizes.split(",")]
    curves = []
    try:
        for f in files or default_files():
            c = curve(Path(f), a, sizes)
            if c is not None:
                curves.append(c)
                if not a.json:
                    print_table(c, sizes)
    except HwnasError as exc:
        sys.exit(f"error: {exc}")
    if a.json:
        print(json.dumps(curves, indent=2))


if __name__ == "__main__":
    main()
