"""Transports: one small interface to run commands on a device and copy files to and from it.

Three implementations share the :class:`Transport` interface:

* :class:`AdbShellTransport` drives the device with the pure-Python ``adb-shell`` library (no adb
  server needed): ``AdbDeviceTcp`` for ``host:port`` (ADB over Wi-Fi), ``AdbDeviceUsb`` for a USB
  serial (needs ``libusb1``, imported only then). The RSA key is made once and reused.
* :class:`AdbCliTransport` drives the ``adb`` command-line client (``adb -s SERIAL shell ...``).
* :class:`LocalTransport` runs on this machine (the ``host`` device profile).

Exit codes. ``adb-shell``'s ``shell()`` opens the raw ``shell:`` service, which has no exit code,
and ``adb`` 29 exits 0 when the connection drops before the shell-protocol exit packet arrives. So
both ADB transports run the command as ``sh -c 'CMD' </dev/null`` followed by
``echo <unique marker>$?``: the marker gives the real exit code (also on devices without
``shell_v2``), and a missing marker means the connection was lost, which is retried.
On ``adb-shell`` stderr is merged into stdout (the raw service has one stream) and
``ShellResult.stderr`` is empty.

Commands. A list is quoted argument by argument with :func:`shlex.quote`, so spaces, quotes and
``$`` reach the program unchanged; a string is passed to the device's shell as it is (shell syntax).

Failures. A dropped connection is retried with exponential back-off (``attempts``, ``base_delay``,
``max_delay``), reconnecting between attempts; then an :class:`~hwnas.errors.HwnasError` names the
device and the last error. A command that outlives its ``timeout`` is killed (its connection is
closed) and raises at once: repeating a slow command would not help. Because commands can be
repeated after a drop, they should be idempotent (``mkdir -p``, overwrite, rerun a benchmark).

Use :func:`open_transport` to build one from a device profile's ``[connection]`` table.
"""

from __future__ import annotations

import abc

import contextlib
import os
import re
import select
import shlex
import shutil
import stat
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

from hwnas.errors import HwnasError
from hwnas.io import atomic_write

__all__ = [
    "DEFAULT_SHELL_TIMEOUT",
    "TRANSPORTS",
    "AdbCliTransport",
    "AdbShellTransport",
    "LocalTransport",
    "ShellResult",
    "Transport",
    "default_key_path",
    "ensure_adb_key",
    "open_transport",
    "quote_command",
]

TRANSPORTS: tuple[str, ...] = ("adb-shell", "adb", "local")
DEFAULT_SHELL_TIMEOUT = 120.0
DEFAULT_ADB_PORT = 5555

_T = TypeVar("_T")


@dataclass(frozen=True)
class ShellResult:
    """What a shell command gave back: its exit code and its decoded output."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        """True when the command exited with 0."""
        return self.exit_code == 0


@runtime_checkable
class Transport(Protocol):
    """Run commands on a device and copy files to and from it."""

    name: str  # device name used in error messages

    def shell(self, cmd: list[str] | str, timeout: float = DEFAULT_SHELL_TIMEOUT) -> ShellResult:
        """Run ``cmd`` (argument list, quoted for you, or shell text) and return its result."""
        ...

    def push(self, local: Path, remote: str) -> None:
        """Copy the local file ``local`` to the device path ``remote`` (parents are created)."""
        ...

    def pull(self, remote: str, local: Path) -> None:
        """Copy the device file ``remote`` to ``local`` (written atomically)."""
        ...

    def is_alive(self) -> bool:
        """True when the device answers a trivial command now; never raises."""
        ...

    def close(self) -> None:
        """Release the connection; a later call reconnects."""
        ...


def quote_command(cmd: list[str] | tuple[str, ...] | str) -> str:
    """Shell text for ``cmd``: a list is quoted argument by argument, a string is kept as it is."""
    if isinstance(cmd, str):
        if not cmd.strip():
            raise HwnasError("empty shell command: give a program and its arguments")
        return cmd
    args = list(cmd)
    if not args:
        raise HwnasError("empty shell command: give a program and its arguments")
    for arg in args:
        if not isinstance(arg, str):
            raise HwnasError(f"shell command argument {arg!r} is a {type(arg).__name__}; every argument must be a str")
    return " ".join(shlex.quote(a) for a in args)


# ---- exit-code marker ------------------------------------------------------------------------------

_MARKER_PREFIX = "__HWNAS_EXIT_"


def _wrap_with_marker(command: str) -> tuple[str, str]:
    """Wrap ``command`` so its exit code is printed after its output with a unique marker."""
    marker = f"{_MARKER_PREFIX}{uuid.uuid4().hex}__"
    wrapped = (f"sh -c {shlex.quote(command)} </dev/null; __hwnas_rc=$?; echo; "
               f"echo {marker}$__hwnas_rc; exit $__hwnas_rc")
    return wrapped, marker


def _split_marker(output: str, marker: str) -> tuple[str, int] | None:
    """``(stdout, exit_code)`` from wrapped output, or ``None`` when the marker is missing."""
    idx = output.rfind(marker)
    if idx < 0:
        return None
    m = re.match(r"(\d+)", output[idx + len(marker):])
    if m is None:
        return None
    stdout = output[:idx]
    if stdout.endswith("\r\n"):  # a PTY (old devices) turns "\n" into "\r\n"
        stdout = stdout[:-2]
    elif stdout.endswith("\n"):
        stdout = stdout[:-1]
    return stdout, int(m.group(1))


def _decode(data: bytes | str) -> str:
    return data if isinstance(data, str) else data.decode("utf-8", "replace")


# ---- retry machinery ---------------------------------------------------------------------------


class _ConnectionLost(Exception):
    """The connection to the device failed or dropped; the operation may be retried."""


class _RetryingTransport(abc.ABC):
    """Shared retry loop: run an operation, reconnect and back off on :class:`_ConnectionLost`."""

    name: str

    def __init__(self, name: str, attempts: int, base_delay: float, max_delay: float) -> None:
        if attempts < 1:
            raise HwnasError(f"device {name}: attempts must be >= 1, got {attempts}")
        if base_delay < 0 or max_delay < 0:
            raise HwnasError(f"device {name}: base_delay and max_delay must be >= 0")
        self.name = name
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._lock = threading.RLock()

    @abc.abstractmethod
    def _connect(self) -> None:
        """Implemented by each transport."""

    @abc.abstractmethod
    def _disconnect(self) -> None:
        """Implemented by each transport."""

    @abc.abstractmethod
    def _is_connected(self) -> bool:
        """Implemented by each transport."""

    def _retrying(self, what: str, op: Callable[[], _T]) -> _T:
        """Run ``op`` with up to ``attempts`` tries; connect first when needed."""
        last: BaseException | None = None
        with self._lock:
            for attempt in range(1, self.attempts + 1):
                if attempt > 1:
                    time.sleep(min(self.max_delay, self.base_delay * 2 ** (attempt - 2)))
                try:
                    if not self._is_connected():
                        self._connect()
                    return op()
                except _ConnectionLost as exc:
                    last = exc
                    self._disconnect()
        raise HwnasError(f"device {self.name}: {what} failed after {self.attempts} attempt(s); last error: {last}. "
                         "Check that the device is connected and reachable (cable, Wi-Fi, 'adb devices -l'), "
                         "then retry.")


# ---- adb-shell (pure Python) ----------------------------------------------------------------------


def default_key_path() -> Path:
    """Where the ADB private key is: ``$ANDROID_USER_HOME/adbkey`` or ``~/.android/adbkey``."""
    user_home = os.environ.get("ANDROID_USER_HOME")
    if user_home:
        return Path(user_home) / "adbkey"
    return Path.home() / ".android" / "adbkey"


_KEY_LOCK = threading.Lock()


def ensure_adb_key(key_path: Path | str | None = None) -> Path:
    """Return the ADB private key path, creating the key pair there once if it does not exist.

    An existing key (the one the ``adb`` tool made, so devices that trust it trust hwnas too) is
    reused; a missing ``.pub`` is rebuilt from the private key.
    """
    path = Path(key_path).expanduser() if key_path is not None else default_key_path()
    pub = Path(str(path) + ".pub")
    with _KEY_LOCK:
        try:
            from adb_shell.auth.keygen import keygen, write_public_keyfile
        except ImportError as exc:
            raise HwnasError(f"the adb-shell transport needs the 'adb-shell' package ({exc}); "
                             "install it with: pip install adb-shell") from None
        try:
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                keygen(str(path))
                os.chmod(path, 0o600)
            elif not pub.exists():
                write_public_keyfile(str(path), str(pub))
        except (OSError, ValueError) as exc:
            raise HwnasError(f"cannot create the ADB key {path}: {exc}; pass key_path= a writable file "
                             "or set ANDROID_USER_HOME") from None
    return path


def _tcp_transport_class() -> type:
    """A ``TcpTransport`` that reports a closed connection and never sends half a message.

    The library's ``bulk_read`` returns ``b""`` forever once the device closes the socket (so a
    drop looks like a slow command until ``read_timeout_s``), and its ``bulk_write`` uses a single
    non-blocking ``send`` that may write only part of a large message.
    """
    from adb_shell.exceptions import TcpTimeoutException
    from adb_shell.transport.tcp_transport import TcpTransport

    class _RobustTcpTransport(TcpTransport):  # type: ignore[misc]
        def bulk_read(self, numbytes: int, transport_timeout_s: float | None) -> bytes:
            data: bytes = super().bulk_read(numbytes, transport_timeout_s)
            if not data:
                raise ConnectionResetError(f"connection to {self._host}:{self._port} closed by the device")
            return data

        def bulk_write(self, data: bytes, transport_timeout_s: float | None) -> int:
            view = memoryview(data)
            deadline = None if transport_timeout_s is None else time.monotonic() + transport_timeout_s
            while view:
                wait = None if deadline is None else max(0.0, deadline - time.monotonic())
                _, writable, _ = select.select([], [self._connection], [], wait)
                if not writable:
                    raise TcpTimeoutException(f"sending to {self._host}:{self._port} timed out "
                                              f"({transport_timeout_s} seconds)")
                try:
                    sent = self._connection.send(view)
                except BlockingIOError:
                    continue
                view = view[sent:]
            return len(data)

    return _RobustTcpTransport


class AdbShellTransport(_RetryingTransport):
    """A device reached with the ``adb-shell`` library, over TCP (``host``) or USB (``serial``).

    Args:
        host, port: ADB over Wi-Fi / TCP address (``port`` defaults to 5555).
        serial: USB serial (needs the ``libusb1`` package: ``pip install 'adb-shell[usb]'``).
        name: device name for messages (default: ``host:port`` or the serial).
        key_path: ADB private key (default ``$ANDROID_USER_HOME/adbkey`` or ``~/.android/adbkey``);
            created once with ``adb_shell.auth.keygen.keygen`` if missing.
        connect_timeout: seconds to open the connection; auth_timeout: seconds to wait for the user
            to accept the key on the device; io_timeout: seconds without progress in push/pull.
        attempts, base_delay, max_delay: retries on a dropped connection.
    """

    def __init__(self, *, host: str | None = None, port: int | None = None, serial: str | None = None,
                 name: str | None = None, key_path: Path | str | None = None, connect_timeout: float = 10.0,
                 auth_timeout: float = 30.0, io_timeout: float = 60.0, attempts: int = 3,
                 base_delay: float = 0.5, max_delay: float = 8.0) -> None:
        if (host is None) == (serial is None):
            raise HwnasError("the adb-shell transport needs exactly one of host (ADB over TCP) or serial (USB)")
        self.host = host
        self.port = int(port) if port is not None else DEFAULT_ADB_PORT
        self.serial = serial
        super().__init__(name or (f"{host}:{self.port}" if host else str(serial)), attempts, base_delay, max_delay)
        self.key_path = key_path
        self.connect_timeout = connect_timeout
        self.auth_timeout = auth_timeout
        self.io_timeout = io_timeout
        self._device: Any = None
        self._signer: Any = None

    # ---- connection ---------------------------------------------------------------------------
    def _is_connected(self) -> bool:
        return self._device is not None

    def _signers(self) -> list[Any]:
        if self._signer is None:
            key = ensure_adb_key(self.key_path)
            from adb_shell.auth.sign_pythonrsa import PythonRSASigner
            try:
                self._signer = PythonRSASigner.FromRSAKeyPath(str(key))
            except (OSError, ValueError) as exc:
                raise HwnasError(f"cannot read the ADB key {key}: {exc}") from None
        return [self._signer]

    def _make_device(self) -> Any:
        from adb_shell import adb_device
        if self.host is not None:
            transport = _tcp_transport_class()(self.host, self.port)
            device = adb_device.AdbDeviceTcp(self.host, self.port, default_transport_timeout_s=self.connect_timeout)
            # Same class (AdbDeviceTcp), with the drop-aware TCP transport in place of the library's.
            adb_device.AdbDevice.__init__(device, transport, self.connect_timeout)
            return device
        if getattr(adb_device, "UsbTransport", None) is None:
            raise HwnasError(f"device {self.name}: USB needs the libusb1 package, which is not available; "
                             "install it with: pip install 'adb-shell[usb]' (and the system libusb-1.0), "
                             "or use transport 'adb' or ADB over Wi-Fi (host)")
        from adb_shell.exceptions import UsbDeviceNotFoundError
        try:
            return adb_device.AdbDeviceUsb(serial=self.serial, default_transport_timeout_s=self.connect_timeout)
        except UsbDeviceNotFoundError as exc:
            raise _ConnectionLost(f"USB device {self.serial} not found ({exc})") from None

    def _connect(self) -> None:
        from adb_shell import exceptions as ex
        signers = self._signers()
        device = self._make_device()
        asked_user: list[bool] = []
        try:
            device.connect(rsa_keys=signers, transport_timeout_s=self.connect_timeout,
                           auth_timeout_s=self.auth_timeout, read_timeout_s=self.connect_timeout,
                           auth_callback=lambda _dev: asked_user.append(True))
        except (ex.DeviceAuthError, ex.TcpTimeoutException, ex.AdbTimeoutError) as exc:
            device.close()
            if asked_user or isinstance(exc, ex.DeviceAuthError):
                raise HwnasError(
                    f"device {self.name} did not accept this computer's ADB key "
                    f"({ensure_adb_key(self.key_path)}.pub) within {self.auth_timeout:g} s: unlock the device, "
                    "accept the USB debugging prompt ('Always allow from this computer'), then retry") from None
            raise _ConnectionLost(f"connect: {exc}") from None
        except (OSError, ex.AdbConnectionError, ex.InvalidResponseError, ex.InvalidCommandError,
                ex.InvalidChecksumError, ex.UsbReadFailedError, ex.UsbWriteFailedError) as exc:
            device.close()
            raise _ConnectionLost(f"connect: {type(exc).__name__}: {exc}") from None
        self._device = device

    def _disconnect(self) -> None:
        device, self._device = self._device, None
        if device is not None:
            with contextlib.suppress(Exception):  # closing a broken connection must not hide the real error
                device.close()

    def _lost_errors(self) -> tuple[type[BaseException], ...]:
        from adb_shell import exceptions as ex
        return (OSError, ex.AdbConnectionError, ex.InvalidResponseError, ex.InvalidCommandError,
                ex.InvalidChecksumError, ex.UsbReadFailedError, ex.UsbWriteFailedError)

    def _timeout_errors(self) -> tuple[type[BaseException], ...]:
        from adb_shell import exceptions as ex
        return (ex.TcpTimeoutException, ex.AdbTimeoutError)

    # ---- interface ----------------------------------------------------------------------------
    def shell(self, cmd: list[str] | str, timeout: float = DEFAULT_SHELL_TIMEOUT) -> ShellResult:
        command = quote_command(cmd)
        wrapped, marker = _wrap_with_marker(command)

        def op() -> ShellResult:
            try:
                raw = self._device.shell(wrapped, transport_timeout_s=timeout, read_timeout_s=timeout,
                                         timeout_s=timeout, decode=False)
            except self._timeout_errors():
                self._disconnect()  # closing the connection stops the command on the device
                raise HwnasError(f"device {self.name}: command timed out after {timeout:g} s: {command}") from None
            except self._lost_errors() as exc:
                raise _ConnectionLost(f"shell: {type(exc).__name__}: {exc}") from None
            parsed = _split_marker(_decode(raw), marker)
            if parsed is None:
                raise _ConnectionLost("shell: the output ended before the exit status (connection dropped?)")
            stdout, code = parsed
            return ShellResult(code, stdout, "")

        return self._retrying(f"shell command {command!r}", op)

    def push(self, local: Path, remote: str) -> None:
        local = Path(local)
        if not local.is_file():
            raise HwnasError(f"device {self.name}: cannot push {local}: no such local file")
        st = local.stat()
        mode = stat.S_IFREG | stat.S_IMODE(st.st_mode)
        from adb_shell import exceptions as ex

        def op() -> None:
            try:
                self._device.push(str(local), remote, st_mode=mode, mtime=int(st.st_mtime) or 1,
                                  transport_timeout_s=self.io_timeout, read_timeout_s=self.io_timeout)
            except (ex.PushFailedError, ex.AdbCommandFailureException) as exc:
                raise HwnasError(f"device {self.name}: push {local} -> {remote} failed: {_failure_text(exc)}") from None
            except self._timeout_errors() as exc:
                raise _ConnectionLost(f"push: no progress for {self.io_timeout:g} s ({exc})") from None
            except self._lost_errors() as exc:
                raise _ConnectionLost(f"push: {type(exc).__name__}: {exc}") from None

        self._retrying(f"push {local} -> {remote}", op)

    def pull(self, remote: str, local: Path) -> None:
        local = Path(local)
        from adb_shell import exceptions as ex

        def op() -> None:
            def writer(tmp: Path) -> None:
                try:
                    self._device.pull(remote, str(tmp), transport_timeout_s=self.io_timeout,
                                      read_timeout_s=self.io_timeout)
                except ex.AdbCommandFailureException as exc:
                    raise HwnasError(f"device {self.name}: pull {remote} -> {local} failed: "
                                     f"{_failure_text(exc)}") from None
                except self._timeout_errors() as exc:
                    raise _ConnectionLost(f"pull: no progress for {self.io_timeout:g} s ({exc})") from None
                except self._lost_errors() as exc:
                    raise _ConnectionLost(f"pull: {type(exc).__name__}: {exc}") from None

            atomic_write(local, writer)

        self._retrying(f"pull {remote} -> {local}", op)

    def is_alive(self) -> bool:
        try:
            with self._lock:
                if not self._is_connected():
                    self._connect()
                wrapped, marker = _wrap_with_marker("echo alive")
                raw = self._device.shell(wrapped, transport_timeout_s=5.0, read_timeout_s=5.0, timeout_s=5.0,
                                         decode=False)
                parsed = _split_marker(_decode(raw), marker)
                return parsed is not None and parsed[1] == 0
        except Exception:
            self._disconnect()
            return False

    def close(self) -> None:
        with self._lock:
            self._disconnect()


def _failure_text(exc: BaseException) -> str:
    text = " ".join(str(a.decode("utf-8", "replace") if isinstance(a, (bytes, bytearray)) else a)
                    for a in exc.args)
    return text or type(exc).__name__


# ---- adb command-line client ---------------------------------------------------------------------

# adb output that means the connection (not the command) failed.
_ADB_CONNECTION_ERRORS = re.compile(
    r"error: closed|device offline|device '[^']*' not found|device not found|no devices/emulators found|"
    r"protocol fault|connect failed|failed to get feature set|cannot connect|connection refused|"
    r"connection reset|broken pipe|failed to read copy response|failed to write", re.IGNORECASE)
_TCP_SERIAL = re.compile(r"^[\w.\-\[\]:]+:\d+$")


class AdbCliTransport(_RetryingTransport):
    """A device reached with the ``adb`` command-line client (``adb -s SERIAL ...``).

    Args:
        serial: the ``adb devices`` serial (USB serial, or ``host:port`` for ADB over TCP).
        host, port: ADB over TCP; the serial becomes ``host:port`` and ``adb connect`` is run.
        name: device name for messages (default: the serial).
        adb_path: the ``adb`` executable (default: found on ``PATH``).
        server_port: port of the adb server to use (sets ``ANDROID_ADB_SERVER_PORT``).
        env: extra environment variables for ``adb``.
        connect_timeout: seconds for ``adb connect`` / ``adb devices``; io_timeout: seconds for a
            push or pull.
        attempts, base_delay, max_delay: retries on a dropped connection.
    """

    def __init__(self, *, serial: str | None = None, host: str | None = None, port: int | None = None,
                 name: str | None = None, adb_path: str | os.PathLike[str] | None = None,
                 server_port: int | None = None, env: Mapping[str, str] | None = None,
                 connect_timeout: float = 20.0, io_timeout: float = 600.0, attempts: int = 3,
                 base_delay: float = 0.5, max_delay: float = 8.0) -> None:
        if serial is None and host is None:
            raise HwnasError("the adb transport needs a serial (USB or host:port) or a host (ADB over TCP)")
        if serial is not None and host is not None:
            raise HwnasError("the adb transport takes a serial or a host, not both")
        self.serial = serial if serial is not None else f"{host}:{int(port or DEFAULT_ADB_PORT)}"
        super().__init__(name or self.serial, attempts, base_delay, max_delay)
        self.is_tcp = host is not None or bool(_TCP_SERIAL.match(self.serial))
        found = str(adb_path) if adb_path is not None else shutil.which("adb")
        if found is None or not os.access(found, os.X_OK):
            raise HwnasError(f"device {self.name}: the adb client was not found ({adb_path or 'adb on PATH'}); "
                             "install Android platform-tools (Debian/Ubuntu: apt-get install adb) or pass adb_path=")
        self.adb_path = found
        self.env = dict(os.environ)
        self.env.update(env or {})
        if server_port is not None:
            self.env["ANDROID_ADB_SERVER_PORT"] = str(int(server_port))
        self.connect_timeout = connect_timeout
        self.io_timeout = io_timeout
        self._ready = False

    # ---- plumbing -----------------------------------------------------------------------------
    def _adb(self, *args: str, timeout: float) -> subprocess.CompletedProcess[bytes]:
        """Run ``adb ARGS``; a timeout kills the client (adb then closes the device stream)."""
        try:
            return subprocess.run([self.adb_path, *args], env=self.env, stdin=subprocess.DEVNULL,
                                  capture_output=True, timeout=timeout, check=False)
        except FileNotFoundError:
            raise HwnasError(f"device {self.name}: cannot run {self.adb_path}; install Android platform-tools "
                             "(Debian/Ubuntu: apt-get install adb)") from None

    def _state(self) -> tuple[str | None, list[str]]:
        """This device's state in ``adb devices -l`` and the serials listed there."""
        try:
            proc = self._adb("devices", "-l", timeout=self.connect_timeout)
        except subprocess.TimeoutExpired:
            raise _ConnectionLost(f"'adb devices' did not answer within {self.connect_timeout:g} s") from None
        state = None
        serials = []
        for line in _decode(proc.stdout).splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 2:
                serials.append(fields[0])
                if fields[0] == self.serial:
                    state = "no permissions" if fields[1] == "no" else fields[1]
        return state, serials

    def _unauthorized(self) -> HwnasError:
        return HwnasError(f"device {self.name} is unauthorized: unlock it and accept the USB debugging prompt "
                          "('Always allow from this computer'); if no prompt shows, revoke USB debugging "
                          "authorisations in Developer options and reconnect")

    def _is_connected(self) -> bool:
        return self._ready

    def _connect(self) -> None:
        state, serials = self._state()
        if self.is_tcp and state != "device":
            if state is not None:  # offline or stale: drop the old transport first
                self._adb("disconnect", self.serial, timeout=self.connect_timeout)
            try:
                proc = self._adb("connect", self.serial, timeout=self.connect_timeout)
            except subprocess.TimeoutExpired:
                raise _ConnectionLost(f"'adb connect {self.serial}' timed out") from None
            message = (_decode(proc.stdout) + _decode(proc.stderr)).strip()
            state, serials = self._state()
            if state is None:
                raise _ConnectionLost(f"adb connect {self.serial}: {message or 'failed'}")
        if state == "device":
            self._ready = True
            return
        if state == "unauthorized":
            raise self._unauthorized()
        if state == "no permissions":
            raise HwnasError(f"device {self.name}: adb has no permission to open it; add a udev rule for the "
                             "device (or run 'adb kill-server' and start adb with the right permissions)")
        if state is None:
            listed = ", ".join(serials) or "none"
            raise _ConnectionLost(f"serial {self.serial} not found by adb (devices listed: {listed}); check "
                                  "the serial (--serial), the cable and that USB debugging is on")
        raise _ConnectionLost(f"device is {state}; reconnect the cable or restart adbd on the device")

    def _disconnect(self) -> None:
        self._ready = False

    def _failure(self, what: str, proc: subprocess.CompletedProcess[bytes]) -> Exception:
        """Turn a failed adb run into ``_ConnectionLost`` (retry) or ``HwnasError`` (give up)."""
        text = (_decode(proc.stdout) + "\n" + _decode(proc.stderr)).strip()
        lines = [ln for ln in text.splitlines() if ln.strip()]
        summary = " ".join(lines[-3:]) or f"adb exited with {proc.returncode} and no message"
        if "device unauthorized" in text:
            return self._unauthorized()
        if not text or _ADB_CONNECTION_ERRORS.search(text):
            return _ConnectionLost(f"{what}: {summary}")
        state, _ = self._state()
        if state != "device":
            return _ConnectionLost(f"{what}: {summary} (device state: {state or 'not listed'})")
        return HwnasError(f"device {self.name}: {what} failed: {summary}")

    # ---- interface ----------------------------------------------------------------------------
    def shell(self, cmd: list[str] | str, timeout: float = DEFAULT_SHELL_TIMEOUT) -> ShellResult:
        command = quote_command(cmd)
        wrapped, marker = _wrap_with_marker(command)

        def op() -> ShellResult:
            try:
                proc = self._adb("-s", self.serial, "shell", wrapped, timeout=timeout)
            except subprocess.TimeoutExpired:
                raise HwnasError(f"device {self.name}: command timed out after {timeout:g} s: {command}") from None
            parsed = _split_marker(_decode(proc.stdout), marker)
            if parsed is None:
                raise self._failure("shell", proc)
            stdout, code = parsed
            return ShellResult(code, stdout, _decode(proc.stderr))

        return self._retrying(f"shell command {command!r}", op)

    def push(self, local: Path, remote: str) -> None:
        local = Path(local)
        if not local.is_file():
            raise HwnasError(f"device {self.name}: cannot push {local}: no such local file")

        def op() -> None:
            try:
                proc = self._adb("-s", self.serial, "push", str(local), remote, timeout=self.io_timeout)
            except subprocess.TimeoutExpired:
                raise _ConnectionLost(f"push took longer than {self.io_timeout:g} s") from None
            if proc.returncode != 0:
                raise self._failure(f"push {local} -> {remote}", proc)

        self._retrying(f"push {local} -> {remote}", op)

    def pull(self, remote: str, local: Path) -> None:
        local = Path(local)

        def op() -> None:
            def writer(tmp: Path) -> None:
                try:
                    proc = self._adb("-s", self.serial, "pull", remote, str(tmp), timeout=self.io_timeout)
                except subprocess.TimeoutExpired:
                    raise _ConnectionLost(f"pull took longer than {self.io_timeout:g} s") from None
                if proc.returncode != 0:
                    raise self._failure(f"pull {remote} -> {local}", proc)

            atomic_write(local, writer)

        self._retrying(f"pull {remote} -> {local}", op)

    def is_alive(self) -> bool:
        try:
            with self._lock:
                self._ready = False
                self._connect()  # runs 'adb connect' for a TCP device adb does not know yet
            wrapped, marker = _wrap_with_marker("echo alive")
            proc = self._adb("-s", self.serial, "shell", wrapped, timeout=10.0)
            parsed = _split_marker(_decode(proc.stdout), marker)
            return parsed is not None and parsed[1] == 0
        except Exception:
            return False

    def close(self) -> None:
        """Forget the connection state (the adb server keeps its own connection)."""
        self._ready = False


# ---- this machine ----------------------------------------------------------------------------------


class LocalTransport:
    """This machine as the device: commands run with ``/bin/sh -c``, push and pull are file copies.

    Relative device paths and the commands' working directory are ``root`` (default: the current
    directory).
    """

    def __init__(self, *, name: str = "host", root: Path | str | None = None) -> None:
        self.name = name
        self.root = Path(root) if root is not None else None

    def _path(self, remote: str) -> Path:
        p = Path(remote).expanduser()
        return p if p.is_absolute() or self.root is None else self.root / p

    def shell(self, cmd: list[str] | str, timeout: float = DEFAULT_SHELL_TIMEOUT) -> ShellResult:
        command = quote_command(cmd)
        proc = subprocess.Popen(["/bin/sh", "-c", command], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, cwd=self.root, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            proc.communicate()
            raise HwnasError(f"device {self.name}: command timed out after {timeout:g} s: {command}") from None
        code = proc.returncode if proc.returncode >= 0 else 128 - proc.returncode
        return ShellResult(code, _decode(out), _decode(err))

    def push(self, local: Path, remote: str) -> None:
        local = Path(local)
        if not local.is_file():
            raise HwnasError(f"device {self.name}: cannot push {local}: no such local file")
        self._copy(local, self._path(remote), f"push {local} -> {remote}")

    def pull(self, remote: str, local: Path) -> None:
        source = self._path(remote)
        if not source.is_file():
            raise HwnasError(f"device {self.name}: cannot pull {remote}: no such file")
        self._copy(source, Path(local), f"pull {remote} -> {local}")

    def _copy(self, source: Path, dest: Path, what: str) -> None:
        def writer(tmp: Path) -> None:
            shutil.copyfile(source, tmp)
            shutil.copymode(source, tmp)

        try:
            atomic_write(dest, writer)
        except OSError as exc:
            raise HwnasError(f"device {self.name}: {what} failed: {exc}") from None

    def is_alive(self) -> bool:
        return True

    def close(self) -> None:
        pass


# ---- factory -------------------------------------------------------------------------------------

_OPTIONS: dict[str, frozenset[str]] = {
    "adb-shell": frozenset({"key_path", "connect_timeout", "auth_timeout", "io_timeout", "attempts", "base_delay",
                            "max_delay"}),
    "adb": frozenset({"adb_path", "server_port", "env", "connect_timeout", "io_timeout", "attempts", "base_delay",
                      "max_delay"}),
    "local": frozenset({"root"}),
}


def open_transport(transport: str, *, serial: str | None = None, host: str | None = None, port: int | None = None,
                   name: str | None = None, **opts: Any) -> Transport:
    """Build the transport named ``transport`` (``adb-shell``, ``adb`` or ``local``).

    ``serial``/``host``/``port`` come from the profile's ``[connection]`` table; ``opts`` are the
    keyword options of the transport class. Nothing connects until the first call.
    """
    if transport not in _OPTIONS:
        raise HwnasError(f"unknown transport {transport!r}; allowed: {', '.join(TRANSPORTS)}")
    unknown = sorted(set(opts) - _OPTIONS[transport])
    if unknown:
        raise HwnasError(f"unknown option(s) {', '.join(unknown)} for transport {transport!r}; allowed: "
                         f"{', '.join(sorted(_OPTIONS[transport])) or 'none'}")
    if transport == "local":
        if serial is not None or host is not None:
            raise HwnasError("transport 'local' takes no serial or host (the device is this computer)")
        return LocalTransport(name=name or "host", **opts)
    if serial is not None and host is not None:
        raise HwnasError(f"transport {transport!r} takes a serial (USB) or a host (TCP), not both")
    if serial is None and host is None:
        raise HwnasError(f"transport {transport!r} needs a serial (USB) or a host (ADB over TCP)")
    if transport == "adb-shell":
        return AdbShellTransport(host=host, port=port, serial=serial, name=name, **opts)
    return AdbCliTransport(serial=serial, host=host, port=port, name=name, **opts)
