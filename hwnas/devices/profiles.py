"""Device profiles: one TOML file per device, loaded into frozen dataclasses and validated.

A profile says *how* to reach a device and *how* to measure on it: transport and address, which CPU
cores to pin with ``taskset``, how many threads, which runtimes and delegates exist there, where the
benchmark binaries live, and how to wait for the device to cool down between measurements.

Where profiles are looked up (first match wins, so a user file shadows a built-in one):

1. an explicit file: ``load_profile("path/to/dev.toml")`` (anything ending in ``.toml`` or containing
   a path separator is a path, never a name);
2. ``profiles_dir`` passed to :func:`load_profile` / :func:`list_profiles`;
3. every folder in the environment variable ``HWNAS_DEVICE_PROFILES`` (``os.pathsep``-separated,
   like ``PATH``; this is how the command line finds your own profiles);
4. the built-in profiles shipped inside the package (``hwnas/device_profiles/``).

Every problem (unknown key, wrong type, missing field, bad enum value, bad override) raises
:class:`~hwnas.errors.HwnasError` naming the file, the dotted key path (``connection.transport``) and
what is allowed.

Schema (all keys; ``?`` marks optional ones; ``docs/devices.md`` explains each)::

    name = "s22"                    # must equal the file name without .toml
    human_name = "Samsung Galaxy S22 Ultra (SM-S908U)"
    kind = "phone"                  # phone | tablet | watch | devkit | host
    soc = "Qualcomm Snapdragon 8 Gen 1 (SM8450, taro)"
    abi = "arm64-v8a"               # arm64-v8a | armeabi-v7a | x86_64 | x86 | native (host)
    remote_work_dir = "/data/local/tmp/hwnas"   # ? required unless transport = "local"

    [connection]
    transport = "adb"               # adb-shell | adb | local
    serial = "R5CT..."              # ? USB serial (adb/adb-shell); exclusive with host
    host = "192.168.1.50"           # ? ADB over Wi-Fi; exclusive with serial
    port = 5555                     # ? default 5555
    attempts = 4                    # ? tries of an ADB operation on a dropped connection (1..100)
    retry_delay_s = 1.0             # ? back-off before the 2nd try, doubled per try (0..600)
    max_retry_delay_s = 8.0         # ? cap of the back-off (>= retry_delay_s)

    [cpu]
    big_mask = "f0"                 # ? hex taskset mask of the big cores
    little_mask = "0f"              # ? hex taskset mask of the little cores
    cores = "big"                   # ? big | little | all (all = no taskset); default big if big_mask
    default_threads = 4

    [runtimes.tflite]               # ? at least one runtime table (hwnas.runtimes names them)
    delegates = ["xnnpack", "cpu", "gpu", "nnapi"]   # tflite: cpu | xnnpack | gpu | nnapi | npu
    default_delegate = "xnnpack"    # ? default: the first delegate; never nnapi
    precisions = ["fp32", "int8"]   # ? tflite: fp32 | int8; default ["fp32"]
    binary = "/data/local/tmp/hwnas/benchmark_model"  # ? required unless transport = "local"

    [runtimes.tflite.npu]           # ? the LiteRT NPU accelerator; needs "npu" in delegates
    vendor = "qualcomm"             # qualcomm (AI Engine Direct / QNN) | mediatek (NeuroPilot)
    dispatch_library_dir = "/data/local/tmp/hwnas/npu"  # ? LiteRT benchmark_model --use_npu
    compiler_plugin_dir = "/data/local/tmp/hwnas/npu"   # ? on-device (JIT) compilation
    require_full_delegation = true  # ? fail instead of falling back to the CPU
    external_delegate = "/data/local/tmp/hwnas/libQnnTFLiteDelegate.so"  # ? instead of the dispatch
    external_delegate_options = { backend_type = "htp" }  # ? key:value;... for that library

    [runtimes.onnx]
    delegates = ["cpu", "nnapi"]    # onnx: cpu | xnnpack | nnapi | qnn
    binary = "/data/local/tmp/hwnas/onnxruntime_perf_test"

    [thermal]
    source = "sysfs"                # sysfs | dumpsys | none
    zone = "/sys/class/thermal/thermal_zone0/temp"   # ? required for sysfs
    sensor = "CPU"                  # ? dumpsys: sensor name ("CPU7") or type ("CPU"), default CPU
    cooldown_c = 40.0               # ? required unless source = "none"
    max_wait_s = 300.0              # ? give up waiting after this long
    poll_s = 5.0                    # ? time between two temperature reads
    fixed_pause_s = 30.0            # ? pause used when no temperature can be read
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hwnas.devices.transport import DEFAULT_ADB_PORT, TRANSPORTS
from hwnas.errors import HwnasError
from hwnas.io import read_text
from hwnas.runtimes import DEFAULT_PRECISION, LEGACY_NAMES, get_runtime, runtime_names

ENV_PROFILES_DIRS = "HWNAS_DEVICE_PROFILES"
"""Environment variable: extra profile folders, ``os.pathsep``-separated, searched before built-ins."""

KINDS: tuple[str, ...] = ("phone", "tablet", "watch", "devkit", "host")
ABIS: tuple[str, ...] = ("arm64-v8a", "armeabi-v7a", "x86_64", "x86", "native")
"""Android ABIs, plus ``native`` for the host profile (whatever this computer is)."""
CORE_SETS: tuple[str, ...] = ("big", "little", "all")
THERMAL_SOURCES: tuple[str, ...] = ("sysfs", "dumpsys", "none")

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_HEX_MASK_RE = re.compile(r"^(0x)?[0-9a-fA-F]+$")
_OVERRIDE_ALIASES = {
    "serial": "connection.serial",
    "host": "connection.host",
    "port": "connection.port",
    "transport": "connection.transport",
}


@dataclass(frozen=True)
class Connection:
    """How to reach the device: transport plus a USB serial or a Wi-Fi ``host:port``."""

    transport: str
    serial: str | None = None
    host: str | None = None
    port: int = DEFAULT_ADB_PORT
    #: tries of an ADB operation on a dropped connection, and the exponential back-off between
    #: them (``retry_delay_s``, doubled per try up to ``max_retry_delay_s``): by default 4 tries
    #: over 1 + 2 + 4 s, long enough for a phone that re-enumerates on USB
    attempts: int = 4
    retry_delay_s: float = 1.0
    max_retry_delay_s: float = 8.0

    def retry_options(self) -> dict[str, Any]:
        """The retry settings as transport options (none for the local transport)."""
        if self.transport == "local":
            return {}
        return {"attempts": self.attempts, "base_delay": self.retry_delay_s,
                "max_delay": self.max_retry_delay_s}

    @property
    def adb_serial(self) -> str | None:
        """The serial the ``adb`` client uses: the USB serial, ``host:port``, or None (only device)."""
        if self.serial:
            return self.serial
        if self.host:
            return f"{self.host}:{self.port}"
        return None


@dataclass(frozen=True)
class Cpu:
    """CPU pinning: hex ``taskset`` masks of the big and little clusters and the default threads."""

    default_threads: int
    big_mask: str | None = None
    little_mask: str | None = None
    cores: str = "all"

    def mask(self, cores: str | None = None) -> str | None:
        """The taskset mask for ``cores`` (big / little / all; default: the profile's choice).

        None means "do not pin" (``all``, or no mask known for that cluster on this device).
        """
        chosen = cores or self.cores
        if chosen not in CORE_SETS:
            raise HwnasError(f"cores = {chosen!r} is not allowed; allowed values: {_fmt(CORE_SETS)}")
        if chosen == "big":
            return self.big_mask
        if chosen == "little":
            return self.little_mask
        return None


#: NPU vendors LiteRT has an accelerator for (dispatch library + compiler plugin).
NPU_VENDORS = ("qualcomm", "mediatek")
#: delegates a profile may not make its default (NNAPI is deprecated since Android 15).
NEVER_DEFAULT = ("nnapi",)


@dataclass(frozen=True)
class Npu:
    """A device's NPU as LiteRT reaches it, one of two ways:

    * ``dispatch_library_dir``: LiteRT's own ``benchmark_model`` (CompiledModel API) with
      ``--use_npu=true --dispatch_library_path=DIR`` (the vendor's ``libLiteRtDispatch_*.so``),
      ``--compiler_plugin_library_path`` for on-device compilation of a plain ``.tflite`` and
      ``--require_full_delegation`` on request;
    * ``external_delegate``: the classic TFLite ``benchmark_model`` with a vendor delegate library
      (``--external_delegate_path``, ``--external_delegate_options=key:value;...``), such as
      Qualcomm's QNN TFLite delegate ``libQnnTFLiteDelegate.so``.
    """

    vendor: str
    dispatch_library_dir: str | None = None
    compiler_plugin_dir: str | None = None
    require_full_delegation: bool = False
    external_delegate: str | None = None
    external_delegate_options: tuple[tuple[str, str], ...] = ()

    def flags(self) -> tuple[str, ...]:
        """The ``benchmark_model`` flags that run a model on this NPU."""
        if self.external_delegate:
            out = [f"--external_delegate_path={self.external_delegate}"]
            if self.external_delegate_options:
                opts = ";".join(f"{k}:{v}" for k, v in self.external_delegate_options)
                out.append(f"--external_delegate_options={opts}")
            return tuple(out)
        out = ["--use_npu=true", f"--dispatch_library_path={self.dispatch_library_dir}"]
        if self.compiler_plugin_dir:
            out.append(f"--compiler_plugin_library_path={self.compiler_plugin_dir}")
        if self.require_full_delegation:
            out.append("--require_full_delegation=true")
        return tuple(out)


@dataclass(frozen=True)
class Runtime:
    """One inference runtime on the device: its delegates, the precisions it runs, the
    benchmark binary (if any) and, for LiteRT, the NPU accelerator (if the device has one)."""

    name: str
    delegates: tuple[str, ...]
    default_delegate: str
    binary: str | None = None
    precisions: tuple[str, ...] = (DEFAULT_PRECISION,)
    npu: Npu | None = None

    def check_precision(self, precision: str | None) -> str:
        """Return ``precision`` (or fp32) after checking the device runs it with this runtime."""
        chosen = precision or DEFAULT_PRECISION
        if chosen not in self.precisions:
            raise HwnasError(
                f"precision {chosen!r} is not listed for runtime {self.name!r} on this device; "
                f"listed: {_fmt(self.precisions)} (add it to runtimes.{self.name}.precisions)"
            )
        return chosen

    def check_delegate(self, delegate: str | None) -> str:
        """Return ``delegate`` (or the default) after checking the device offers it."""
        chosen = delegate or self.default_delegate
        if chosen not in self.delegates:
            raise HwnasError(
                f"delegate {chosen!r} is not available for runtime {self.name!r} on this device; "
                f"available: {_fmt(self.delegates)}"
            )
        return chosen


@dataclass(frozen=True)
class Thermal:
    """Cool-down rule: where to read the temperature, the threshold, and the fallback pause."""

    source: str = "none"
    zone: str | None = None
    sensor: str = "CPU"
    cooldown_c: float | None = None
    max_wait_s: float = 300.0
    poll_s: float = 5.0
    fixed_pause_s: float = 30.0


@dataclass(frozen=True)
class DeviceProfile:
    """A validated device profile; build it with :func:`load_profile`."""

    name: str
    human_name: str
    kind: str
    soc: str
    abi: str
    connection: Connection
    cpu: Cpu
    runtimes: tuple[Runtime, ...]
    thermal: Thermal
    remote_work_dir: str | None = None
    source: Path | None = field(default=None, compare=False)

    @property
    def is_local(self) -> bool:
        """True when the device is this computer (transport ``local``)."""
        return self.connection.transport == "local"

    def runtime(self, name: str) -> Runtime:
        """The runtime called ``name`` (``tflite`` / ``onnx``), or an error listing the ones offered."""
        for rt in self.runtimes:
            if rt.name == name:
                return rt
        raise HwnasError(
            f"device profile {self.name!r} ({self.source or 'in memory'}) has no runtime {name!r}; "
            f"available: {_fmt(rt.name for rt in self.runtimes)}"
        )

    def open_transport(self, **options: Any) -> Any:
        """A :class:`~hwnas.devices.transport.Transport` for this device (nothing connects yet).

        ``options`` go to the transport class (``attempts=``, ``key_path=``...). A profile that
        names no device (no serial, no host) cannot be opened: pass ``--serial`` / ``--host``.
        """
        from hwnas.devices.transport import open_transport

        conn = self.connection
        if conn.transport != "local" and not (conn.serial or conn.host):
            raise HwnasError(
                f"device profile {self.name!r} ({self.source}) names no device: pass --serial SERIAL "
                f"(see 'adb devices -l') or --host IP[:PORT], or set connection.serial / "
                f"connection.host in the profile"
            )
        return open_transport(conn.transport, serial=conn.serial, host=conn.host,
                              port=conn.port if conn.host else None, name=self.name,
                              **{**conn.retry_options(), **options})

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready), e.g. for latency-table metadata."""
        out = asdict(self)
        out["runtimes"] = {rt.name: {k: v for k, v in asdict(rt).items() if k != "name"}
                           for rt in self.runtimes}
        for rt in out["runtimes"].values():
            rt["delegates"] = list(rt["delegates"])
            rt["precisions"] = list(rt["precisions"])
        out["source"] = str(self.source) if self.source else None
        return out


# --------------------------------------------------------------------------------------------
# Lookup


def builtin_profiles_dir() -> Path:
    """The folder of profiles shipped with hwnas (package data: ``hwnas/device_profiles/``)."""
    return Path(__file__).resolve().parent.parent / "device_profiles"


def profile_search_path(profiles_dir: str | os.PathLike[str] | None = None) -> tuple[Path, ...]:
    """Folders searched for ``<name>.toml``, in order: ``profiles_dir``, $HWNAS_DEVICE_PROFILES, built-ins."""
    dirs: list[Path] = []
    if profiles_dir is not None:
        dirs.append(Path(profiles_dir))
    for part in os.environ.get(ENV_PROFILES_DIRS, "").split(os.pathsep):
        if part.strip():
            dirs.append(Path(part.strip()).expanduser())
    dirs.append(builtin_profiles_dir())
    unique: list[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return tuple(unique)


def list_profiles(profiles_dir: str | os.PathLike[str] | None = None) -> list[str]:
    """Names of all profiles on the search path (sorted, each name once)."""
    names: set[str] = set()
    for d in profile_search_path(profiles_dir):
        if d.is_dir():
            names.update(p.stem for p in d.glob("*.toml") if p.is_file())
    return sorted(names)


def find_profile(name: str, profiles_dir: str | os.PathLike[str] | None = None) -> Path:
    """The file for profile ``name`` (first hit on the search path) or an error listing known names."""
    if not _NAME_RE.match(name):
        raise HwnasError(
            f"device profile name {name!r} is not valid: use lowercase letters, digits, '-', '_', '.' "
            f"(or pass a path to a .toml file); known profiles: {_fmt(list_profiles(profiles_dir))}"
        )
    searched = profile_search_path(profiles_dir)
    for d in searched:
        candidate = d / f"{name}.toml"
        if candidate.is_file():
            return candidate
    known = list_profiles(profiles_dir)
    raise HwnasError(
        f"unknown device profile {name!r}; known profiles: {_fmt(known) if known else '(none)'} "
        f"(searched: {', '.join(str(d) for d in searched)}; add folders with ${ENV_PROFILES_DIRS})"
    )


def load_profile(
    name_or_path: str | os.PathLike[str],
    *,
    profiles_dir: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> DeviceProfile:
    """Load and validate a device profile by name (see the module docstring) or by file path.

    ``overrides`` replace values before validation, so they are checked like the file itself.
    Keys are dotted paths (``"cpu.default_threads"``) or the shorthands ``serial``, ``host``
    (``"ip"`` or ``"ip:port"``), ``port`` and ``transport``. Setting ``serial`` clears ``host`` and
    vice versa, so ``--serial`` / ``--host`` on the command line always win over the file.
    None values are ignored (convenient for optional CLI flags).
    """
    path = _as_profile_path(name_or_path, profiles_dir)
    text = read_text(path, "device profile")  # missing, a folder, unreadable, not UTF-8
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise HwnasError(f"{path}: not valid TOML: {exc}") from None
    overridden = _apply_overrides(raw, overrides or {}, path)
    return _validate(raw, _Ctx(path, overridden))


def _as_profile_path(name_or_path: str | os.PathLike[str], profiles_dir: Any) -> Path:
    text = os.fspath(name_or_path)
    looks_like_path = (
        isinstance(name_or_path, os.PathLike) or text.endswith(".toml") or "/" in text or os.sep in text
    )
    if not looks_like_path:
        return find_profile(text, profiles_dir)
    path = Path(text).expanduser()
    if path.is_dir():
        raise HwnasError(f"device profile {path} is a folder, not a file: give its .toml file or a "
                         f"profile name")
    if not path.is_file():
        raise HwnasError(f"device profile file {path} does not exist")
    return path


# --------------------------------------------------------------------------------------------
# Overrides


def _apply_overrides(raw: dict[str, Any], overrides: Mapping[str, Any], path: Path) -> frozenset[str]:
    done: set[str] = set()
    for key, value in overrides.items():
        if value is None:
            continue
        dotted = _OVERRIDE_ALIASES.get(key, key)
        if dotted == "connection.host" and isinstance(value, str) and value.count(":") == 1:
            host, _, port = value.partition(":")
            if not port.isdigit():
                raise HwnasError(f"{path}: override host = {value!r} is not 'host' or 'host:port'")
            value = host
            _set_dotted(raw, "connection.port", int(port), path)
            done.add("connection.port")
        _set_dotted(raw, dotted, value, path)
        done.add(dotted)
        conn = raw.get("connection")
        if isinstance(conn, dict):
            if dotted == "connection.serial":
                conn.pop("host", None)
                conn.pop("port", None)
            elif dotted == "connection.host":
                conn.pop("serial", None)
    return frozenset(done)


def _set_dotted(raw: dict[str, Any], dotted: str, value: Any, path: Path) -> None:
    parts = dotted.split(".")
    node = raw
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise HwnasError(
                f"{path}: override {dotted!r}: {'.'.join(parts[: i + 1])!r} is not a table"
            )
        node = child
    node[parts[-1]] = value


# --------------------------------------------------------------------------------------------
# Validation


@dataclass(frozen=True)
class _Ctx:
    path: Path
    overridden: frozenset[str]

    def error(self, key: str, problem: str) -> HwnasError:
        origin = " (set by override)" if key in self.overridden else ""
        return HwnasError(f"{self.path}: {key}{origin}: {problem}")


_TYPE_NAMES = {str: "a string", int: "an integer", float: "a finite number", bool: "true or false",
               list: "a list of strings", dict: "a table"}


class _Table:
    """Reads keys of one TOML table, checking types and enums, then rejects leftover keys."""

    def __init__(self, data: Any, prefix: str, ctx: _Ctx) -> None:
        if not isinstance(data, dict):
            raise ctx.error(prefix, f"must be a table ([{prefix}]), got {type(data).__name__}")
        self.data = data
        self.prefix = prefix
        self.ctx = ctx
        self.known: list[str] = []

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def get(self, name: str, typ: type, *, required: bool = False, default: Any = None,
            allowed: Iterable[str] | None = None) -> Any:
        self.known.append(name)
        allowed_t = tuple(allowed) if allowed is not None else None
        key = self.key(name)
        if name not in self.data:
            if required:
                hint = f" (one of {_fmt(allowed_t)})" if allowed_t else f" ({_TYPE_NAMES[typ]})"
                raise self.ctx.error(key, f"missing required key{hint}")
            return default
        value = self.data[name]
        if not _is_type(value, typ):
            raise self.ctx.error(
                key, f"must be {_TYPE_NAMES[typ]}, got {type(value).__name__} {value!r}"
            )
        if typ is float:
            value = float(value)
        if typ is list:
            value = tuple(value)
            if allowed_t is not None:
                for item in value:
                    if item not in allowed_t:
                        raise self.ctx.error(
                            key, f"value {item!r} is not allowed; allowed values: {_fmt(allowed_t)}"
                        )
        elif allowed_t is not None and value not in allowed_t:
            raise self.ctx.error(key, f"= {value!r} is not allowed; allowed values: {_fmt(allowed_t)}")
        return value

    def table(self, name: str, *, required: bool = False) -> _Table | None:
        self.known.append(name)
        if name not in self.data:
            if required:
                raise self.ctx.error(self.key(name), f"missing required table [{self.key(name)}]")
            return None
        return _Table(self.data[name], self.key(name), self.ctx)

    def finish(self) -> None:
        for name in self.data:
            if name not in self.known:
                where = f"[{self.prefix}]" if self.prefix else "the top level"
                raise self.ctx.error(
                    self.key(name), f"unknown key; allowed keys in {where}: {', '.join(self.known)}"
                )


def _is_type(value: Any, typ: type) -> bool:
    if typ is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if typ is float:  # TOML's nan / inf are no setting
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if typ is list:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return isinstance(value, typ)


def _validate(raw: dict[str, Any], ctx: _Ctx) -> DeviceProfile:
    top = _Table(raw, "", ctx)
    name = top.get("name", str, required=True)
    if name != ctx.path.stem:
        raise ctx.error("name", f"= {name!r} must equal the file name {ctx.path.stem!r}")
    if not _NAME_RE.match(name):
        raise ctx.error("name", f"= {name!r} must match {_NAME_RE.pattern}")
    human_name = top.get("human_name", str, required=True)
    kind = top.get("kind", str, required=True, allowed=KINDS)
    soc = top.get("soc", str, required=True)
    abi = top.get("abi", str, required=True, allowed=ABIS)
    remote_work_dir = top.get("remote_work_dir", str)

    connection = _read_connection(top.table("connection", required=True), ctx)
    is_local = connection.transport == "local"
    if remote_work_dir is not None:
        _check_remote_path(remote_work_dir, "remote_work_dir", ctx)
    elif not is_local:
        raise ctx.error("remote_work_dir", f"missing required key for transport "
                        f"{connection.transport!r} (a device folder such as '/data/local/tmp/hwnas')")

    cpu = _read_cpu(top.table("cpu", required=True), ctx)
    runtimes = _read_runtimes(top.table("runtimes", required=True), ctx, is_local)
    thermal_table = top.table("thermal")
    thermal = _read_thermal(thermal_table, ctx) if thermal_table is not None else Thermal()
    top.finish()
    return DeviceProfile(
        name=name, human_name=human_name, kind=kind, soc=soc, abi=abi, connection=connection,
        cpu=cpu, runtimes=runtimes, thermal=thermal, remote_work_dir=remote_work_dir,
        source=ctx.path,
    )


def _read_connection(t: _Table | None, ctx: _Ctx) -> Connection:
    assert t is not None
    transport = t.get("transport", str, required=True, allowed=TRANSPORTS)
    serial = t.get("serial", str) or None
    host = t.get("host", str) or None
    port = t.get("port", int, default=DEFAULT_ADB_PORT)
    attempts = t.get("attempts", int, default=Connection.attempts)
    delay = t.get("retry_delay_s", float, default=Connection.retry_delay_s)
    max_delay = t.get("max_retry_delay_s", float, default=Connection.max_retry_delay_s)
    t.finish()
    if not 1 <= port <= 65535:
        raise ctx.error("connection.port", f"= {port} must be between 1 and 65535")
    if not 1 <= attempts <= 100:
        raise ctx.error("connection.attempts", f"= {attempts} must be between 1 and 100")
    for key, value in (("connection.retry_delay_s", delay), ("connection.max_retry_delay_s", max_delay)):
        if not 0 <= value <= 600:
            raise ctx.error(key, f"= {value:g} must be between 0 and 600 seconds")
    if max_delay < delay:
        raise ctx.error("connection.max_retry_delay_s", f"= {max_delay:g} must be >= "
                        f"connection.retry_delay_s = {delay:g}")
    if transport == "local" and (serial or host):
        key = "connection.serial" if serial else "connection.host"
        raise ctx.error(key, "must not be set for transport 'local' (the device is this computer)")
    if serial and host:
        raise ctx.error("connection.host", "set either connection.serial (USB) or connection.host "
                        "(ADB over Wi-Fi), not both")
    return Connection(transport=transport, serial=serial, host=host, port=port, attempts=attempts,
                      retry_delay_s=delay, max_retry_delay_s=max_delay)


def _read_cpu(t: _Table | None, ctx: _Ctx) -> Cpu:
    assert t is not None
    threads = t.get("default_threads", int, required=True)
    big = t.get("big_mask", str)
    little = t.get("little_mask", str)
    cores = t.get("cores", str, default="big" if big else "all", allowed=CORE_SETS)
    t.finish()
    if threads < 1:
        raise ctx.error("cpu.default_threads", f"= {threads} must be at least 1")
    for key, mask in (("cpu.big_mask", big), ("cpu.little_mask", little)):
        if mask is not None and (not _HEX_MASK_RE.match(mask) or int(mask, 16) == 0):
            raise ctx.error(key, f"= {mask!r} must be a non-zero hex CPU mask for taskset, e.g. 'f0'")
    if cores == "big" and not big:
        raise ctx.error("cpu.cores", "= 'big' needs cpu.big_mask")
    if cores == "little" and not little:
        raise ctx.error("cpu.cores", "= 'little' needs cpu.little_mask")
    return Cpu(default_threads=threads, big_mask=big, little_mask=little, cores=cores)


def _read_runtimes(t: _Table | None, ctx: _Ctx, is_local: bool) -> tuple[Runtime, ...]:
    assert t is not None
    names = runtime_names()
    for legacy, (rt_name, precision) in LEGACY_NAMES.items():
        if legacy in t.data:
            raise ctx.error(f"runtimes.{legacy}", f"{legacy!r} is no longer a runtime: remove this "
                            f"table and list {precision!r} in runtimes.{rt_name}.precisions "
                            f"(precisions = [\"fp32\", \"{precision}\"])")
    runtimes: list[Runtime] = []
    tables = {name: t.table(name) for name in names}
    order = list(t.data)
    for rt_name in sorted((n for n in names if tables[n] is not None), key=order.index):  # file order
        rt = tables[rt_name]
        assert rt is not None
        spec = get_runtime(rt_name)
        delegates = rt.get("delegates", list, required=True, allowed=spec.delegates)
        if not delegates:
            raise ctx.error(f"runtimes.{rt_name}.delegates",
                            f"must list at least one delegate; allowed values: {_fmt(spec.delegates)}")
        default = rt.get("default_delegate", str, default=delegates[0], allowed=delegates)
        if default in NEVER_DEFAULT:
            where = "default_delegate" if "default_delegate" in rt.data else "delegates"
            raise ctx.error(f"runtimes.{rt_name}.{where}",
                            f"makes {default!r} the default delegate; NNAPI is deprecated since Android 15 and "
                            f"is never a default: list another delegate first (xnnpack, gpu) and pass "
                            f"--delegate {default} to measure with it")
        precisions = rt.get("precisions", list, default=(DEFAULT_PRECISION,), allowed=spec.precisions)
        if not precisions:
            raise ctx.error(f"runtimes.{rt_name}.precisions",
                            f"must list at least one precision; allowed values: {_fmt(spec.precisions)}")
        binary = rt.get("binary", str)
        npu_table = rt.table("npu") if "npu" in spec.delegates else None
        rt.finish()
        npu = _read_npu(npu_table, ctx, is_local) if npu_table is not None else None
        if npu is not None and "npu" not in delegates:
            raise ctx.error(f"runtimes.{rt_name}.npu", "describes an NPU, but 'npu' is not in delegates")
        if npu is None and "npu" in delegates:
            raise ctx.error(f"runtimes.{rt_name}.delegates",
                            f"lists 'npu' but the profile has no [runtimes.{rt_name}.npu] table (vendor, and "
                            f"dispatch_library_dir or external_delegate)")
        if binary is None and not is_local:
            raise ctx.error(f"runtimes.{rt_name}.binary",
                            "missing required key: the benchmark binary's path on the device")
        if binary is not None and not is_local:
            _check_remote_path(binary, f"runtimes.{rt_name}.binary", ctx)
        runtimes.append(Runtime(rt_name, delegates, default, binary, precisions, npu))
    t.finish()
    if not runtimes:
        raise ctx.error("runtimes", f"needs at least one of [runtimes.{'], [runtimes.'.join(names)}]")
    return tuple(runtimes)


_OPTION_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def _read_npu(t: _Table, ctx: _Ctx, is_local: bool) -> Npu:
    vendor = t.get("vendor", str, required=True, allowed=NPU_VENDORS)
    dispatch = t.get("dispatch_library_dir", str)
    plugin = t.get("compiler_plugin_dir", str)
    full = t.get("require_full_delegation", bool, default=False)
    external = t.get("external_delegate", str)
    raw_opts = t.get("external_delegate_options", dict, default={})
    t.finish()
    if (dispatch is None) == (external is None):
        raise ctx.error(t.prefix, "needs exactly one of dispatch_library_dir (LiteRT benchmark_model --use_npu) "
                        "and external_delegate (a vendor TFLite delegate library)")
    for key, value in (("dispatch_library_dir", dispatch), ("compiler_plugin_dir", plugin),
                       ("external_delegate", external)):
        if value is not None and not is_local:
            _check_remote_path(value, t.key(key), ctx)
    if external is None and raw_opts:
        raise ctx.error(t.key("external_delegate_options"), "applies to external_delegate only")
    if external is not None and (plugin is not None or full):
        raise ctx.error(t.key("compiler_plugin_dir" if plugin is not None else "require_full_delegation"),
                        "applies to dispatch_library_dir (LiteRT benchmark_model) only")
    opts = []
    for key, value in raw_opts.items():
        if not _OPTION_RE.match(key) or isinstance(value, (dict, list)) or any(c in str(value) for c in ";: \n"):
            raise ctx.error(f"{t.key('external_delegate_options')}.{key}",
                            f"= {value!r}: option names are identifiers and values strings, numbers or "
                            f"booleans without ';', ':' or spaces")
        opts.append((key, str(value).lower() if isinstance(value, bool) else str(value)))
    return Npu(vendor, dispatch, plugin, full, external, tuple(opts))


def _read_thermal(t: _Table, ctx: _Ctx) -> Thermal:
    source = t.get("source", str, required=True, allowed=THERMAL_SOURCES)
    zone = t.get("zone", str)
    sensor = t.get("sensor", str, default="CPU")
    cooldown = t.get("cooldown_c", float)
    max_wait = t.get("max_wait_s", float, default=300.0)
    poll = t.get("poll_s", float, default=5.0)
    pause = t.get("fixed_pause_s", float, default=30.0)
    t.finish()
    if source == "sysfs":
        if not zone:
            raise ctx.error("thermal.zone", "missing required key for source 'sysfs' "
                            "(e.g. '/sys/class/thermal/thermal_zone0/temp')")
        _check_remote_path(zone, "thermal.zone", ctx)
    if source != "none" and cooldown is None:
        raise ctx.error("thermal.cooldown_c", f"missing required key for source {source!r} "
                        "(cool-down threshold in degrees Celsius)")
    for key, value in (("thermal.max_wait_s", max_wait), ("thermal.poll_s", poll),
                       ("thermal.fixed_pause_s", pause)):
        if value < 0:
            raise ctx.error(key, f"= {value} must be >= 0 seconds")
    if cooldown is not None and not -20.0 <= cooldown <= 120.0:
        raise ctx.error("thermal.cooldown_c", f"= {cooldown} must be between -20 and 120 degrees C")
    return Thermal(source=source, zone=zone, sensor=sensor, cooldown_c=cooldown,
                   max_wait_s=max_wait, poll_s=poll, fixed_pause_s=pause)


def _check_remote_path(value: str, key: str, ctx: _Ctx) -> None:
    if not value.startswith("/") or any(c in value for c in "\n\r\0"):
        raise ctx.error(key, f"= {value!r} must be an absolute path")


def _fmt(values: Iterable[Any]) -> str:
    return ", ".join(repr(v) for v in values)
