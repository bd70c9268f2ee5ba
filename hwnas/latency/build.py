"""Building a latency table: profile a device, then calibrate the table on whole subnets.

``hwnas profile`` and the quick start run the same two steps: :func:`profile_and_calibrate`
measures every op key of a space (:mod:`hwnas.latency.profile`; several devices in parallel),
then, once a table has every key, fits its calibration on ``calibrate_n`` random subnets plus
the smallest and the largest, measured end to end (:func:`hwnas.latency.validate.calibrate`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwnas.devices.profiles import DeviceProfile
from hwnas.errors import HwnasError
from hwnas.latency import DEFAULT_CALIBRATION_SUBNETS
from hwnas.latency.keys import space_ops
from hwnas.latency.profile import ProfileConfig, _runner_for, profile_device, profile_devices
from hwnas.latency.table import LatencyTable
from hwnas.spaces.base import SearchSpace

@dataclass(frozen=True)
class TableBuild:
    """What :func:`profile_and_calibrate` did for one device: the table, the keys it still lacks
    (run again with ``resume=True``), the calibration fitted (``None`` when skipped) or the error
    that stopped it (everything measured before is saved)."""

    device: str
    table: LatencyTable | None
    missing: tuple[str, ...] = ()
    calibration: dict[str, Any] | None = None
    error: HwnasError | None = None


def device_runner(profile: DeviceProfile, runtime: str, precision: str | None = None) -> Any:
    """The latency runner of ``runtime`` on ``profile`` (host runner, or over its transport);
    the profile must list ``precision`` (default fp32) for that runtime."""
    return _runner_for(profile, runtime, None, precision)


def profile_and_calibrate(profiles: Sequence[DeviceProfile], space: SearchSpace, cfg: ProfileConfig, *,
                          tables_dir: str | Path | None = None, resume: bool = False,
                          calibrate_n: int = DEFAULT_CALIBRATION_SUBNETS,
                          on_progress: Callable[[str, str, int, int], None] | None = None,
                          on_calibrate: Callable[[str, int, int], None] | None = None
                          ) -> dict[str, TableBuild]:
    """Profile ``space`` on each device (in parallel when several), then calibrate each complete
    table on ``calibrate_n`` + 2 subnets (``calibrate_n=0``: no calibration).

    ``on_progress(device, key, done, total)`` reports the profile, ``on_calibrate(device, done,
    total)`` the calibration (subnets exported and measured). With one device its error
    propagates; with several, a device that fails does not stop the others: its
    :class:`TableBuild` carries the error.
    """
    from hwnas.latency.validate import calibrate

    if len(profiles) == 1:
        p = profiles[0]
        cb = (lambda key, d, t: on_progress(p.name, key, d, t)) if on_progress else None
        results: dict[str, LatencyTable | HwnasError] = {
            p.name: profile_device(p, space, cfg, tables_dir=tables_dir, resume=resume, on_progress=cb)}
    else:
        results = profile_devices(profiles, space, cfg, tables_dir=tables_dir, resume=resume,
                                  on_progress=on_progress)
    keys = space_ops(space)
    builds = {}
    for p in profiles:
        table = results[p.name]
        if isinstance(table, HwnasError):
            builds[p.name] = TableBuild(p.name, None, error=table)
            continue
        missing = tuple(table.missing(keys))
        cal = None
        if calibrate_n and not missing:
            cb_cal = (lambda d, t, name=p.name: on_calibrate(name, d, t)) if on_calibrate else None
            cal = calibrate(table, space, device_runner(p, cfg.runtime, cfg.precision), n=calibrate_n,
                            threads=cfg.threads or p.cpu.default_threads, canary=cfg.canary,
                            on_progress=cb_cal)
        builds[p.name] = TableBuild(p.name, table, missing, cal)
    return builds
