"""Time cost of a latency-table save under its lock (hwnas.latency.table.LatencyTable.save).

A copy of the shipped host table (``mbv2-tflite.json``, its measured entries with their rounds)
is saved N times in a temporary folder three ways:

* ``unlocked``: the plain atomic write that every save did before tables were locked;
* ``locked, alone``: save() when no other process wrote the file since (lock + stat, no re-read);
* ``locked, merging``: save() when another writer changed the file before every save (lock,
  re-read, three-way merge, write), the case of two profiles on one table.

Prints the median milliseconds per save of each (and the table size).

Usage: OMP_NUM_THREADS=1 python tools/bench/table_lock.py [--n 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from hwnas.io import atomic_write_json  # noqa: E402
from hwnas.latency.table import LatencyTable, default_table_dir  # noqa: E402
from hwnas.locking import file_lock  # noqa: E402

VARIANTS = ("lock + release only", "unlocked atomic write", "locked save, alone",
            "locked save, merging another writer's change")


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return 1e3 * (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=200, help="saves per variant")
    args = ap.parse_args()
    shipped = default_table_dir() / "host" / "mbv2-tflite.json"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "host" / "mbv2-tflite.json"
        table = LatencyTable.load(shipped)
        table.save(path)
        other = LatencyTable.load(path)
        keys = sorted(table.entries)

        lock_only = Path(tmp) / "probe.json"
        times: dict[str, list[float]] = {name: [] for name in VARIANTS}
        for i in range(args.n):  # round-robin, so a busy machine slows every variant alike
            key, theirs = keys[i % len(keys)], keys[(i + 1) % len(keys)]

            def lock():
                with file_lock(lock_only):
                    pass

            times["lock + release only"].append(_timed(lock))
            times["unlocked atomic write"].append(_timed(lambda: atomic_write_json(path, table.to_json())))
            table._disk_sig = None  # noqa: SLF001 (the plain write above is not a change of another writer)
            table.save()
            table.entries[key]["count"] += 1
            times["locked save, alone"].append(_timed(table.save))
            other.entries[theirs]["count"] += 1  # another writer's change, outside the timing
            other.save()
            table.entries[key]["count"] += 1
            times["locked save, merging another writer's change"].append(_timed(table.save))
        assert table.entries[theirs] == other.entries[theirs]  # the merge took the other's change
        size_kb = path.stat().st_size / 1024
    print(f"table: {len(keys)} entries, {size_kb:.0f} KiB; median of {args.n} saves")
    for name in VARIANTS:
        print(f"  {name:48s} {statistics.median(times[name]):7.2f} ms")


if __name__ == "__main__":
    main()
