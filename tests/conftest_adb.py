"""Pytest fixtures for ADB tests: a loopback ADB device and a private, real ``adb`` client.

Load with ``pytest_plugins = ["tests.conftest_adb"]`` (or ``from tests.conftest_adb import *``) in
``tests/conftest.py``. Fixtures:

* ``make_loopback_adbd(**kwargs)``: start a :class:`LoopbackAdbd` (sandbox under ``tmp_path``);
  every device started is stopped at teardown.
* ``loopback_adbd``: one started device with default options.
* ``adb_env``: Debian's real ``adb`` client with a private adb server (``ANDROID_ADB_SERVER_PORT`` =
  a free port) and a private ``HOME`` holding a pre-made key (``adb_env.key_path``), so tests never
  touch the user's adb server or keys; ``adb kill-server`` runs at teardown.
* ``adb_client``: ``adb_env`` after ``adb connect`` to ``loopback_adbd``.

When ``adb`` is not installed the fixtures FAIL (they never skip): CI must install it
(``apt-get install -y adb``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
LOOPBACK_PATH = REPO_ROOT / "tools" / "loopback_adbd.py"
ADB_MISSING = ("Debian's real adb client is required for the ADB tests but 'adb' is not on PATH: "
               "install it with 'apt-get install -y adb' (CI does this)")


def _load_loopback() -> ModuleType:
    """Import ``tools/loopback_adbd.py`` (``tools`` is not a package) as module ``loopback_adbd``."""
    if "loopback_adbd" in sys.modules:
        return sys.modules["loopback_adbd"]
    spec = importlib.util.spec_from_file_location("loopback_adbd", LOOPBACK_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["loopback_adbd"] = module
    spec.loader.exec_module(module)
    return module


loopback = _load_loopback()
LoopbackAdbd = loopback.LoopbackAdbd


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_adb() -> str:
    """Path of the ``adb`` client; fails the test (not skip) when it is missing."""
    adb = shutil.which("adb")
    if adb is None:
        pytest.fail(ADB_MISSING, pytrace=False)
    return adb


@pytest.fixture(scope="session")
def adb_test_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ADB RSA key pair made once per test session (``adbkey`` and ``adbkey.pub``)."""
    from adb_shell.auth.keygen import keygen

    path = tmp_path_factory.mktemp("adbkey") / "adbkey"
    keygen(str(path))
    return path


@pytest.fixture
def make_loopback_adbd(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Factory: ``make_loopback_adbd(**LoopbackAdbd kwargs)`` -> a started device."""
    started: list[Any] = []

    def make(**kwargs: Any) -> Any:
        sandbox = kwargs.pop("sandbox", tmp_path / f"device{len(started)}")
        device = LoopbackAdbd(sandbox, **kwargs).start()
        started.append(device)
        return device

    yield make
    for device in started:
        device.stop()


@pytest.fixture
def loopback_adbd(make_loopback_adbd: Callable[..., Any]) -> Any:
    """A started loopback ADB device without authentication."""
    return make_loopback_adbd()


@dataclass
class AdbEnv:
    """A real ``adb`` client bound to a private adb server and a private ``HOME``."""

    adb: str
    server_port: int
    home: Path
    key_path: Path
    env: dict[str, str] = field(default_factory=dict)
    serial: str | None = None

    def run(self, *args: str, timeout: float = 30.0, input: bytes | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``adb ARGS`` (stdin is /dev/null unless ``input`` is given) and capture its output."""
        return subprocess.run([self.adb, *args], env=self.env, capture_output=True, timeout=timeout,
                              stdin=None if input is not None else subprocess.DEVNULL, input=input,
                              check=False, text=input is None)

    def connect(self, serial: str) -> subprocess.CompletedProcess[str]:
        """``adb connect SERIAL``; asserts that adb reports a connection."""
        proc = self.run("connect", serial)
        assert "connected to" in proc.stdout, f"adb connect {serial} failed: {proc.stdout!r} {proc.stderr!r}"
        self.serial = serial
        return proc

    def wait_state(self, serial: str, want: str, timeout: float = 10.0) -> str | None:
        """Poll ``adb devices`` until ``serial`` is in state ``want`` or ``timeout`` passes."""
        import time

        deadline = time.monotonic() + timeout
        state = self.state(serial)
        while state != want and time.monotonic() < deadline:
            time.sleep(0.05)
            state = self.state(serial)
        return state

    def state(self, serial: str) -> str | None:
        """The state column of ``adb devices`` for ``serial`` (``device``, ``offline``, ...)."""
        for line in self.run("devices").stdout.splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 2 and fields[0] == serial:
                return fields[1]
        return None


@pytest.fixture
def adb_env(tmp_path: Path, adb_test_key: Path) -> Iterator[AdbEnv]:
    """A private adb server (free port, private HOME with a known key); killed at teardown."""
    adb = require_adb()
    home = tmp_path / "adb-home"
    android = home / ".android"
    android.mkdir(parents=True)
    shutil.copy(adb_test_key, android / "adbkey")
    shutil.copy(str(adb_test_key) + ".pub", android / "adbkey.pub")
    env = {k: v for k, v in os.environ.items()
           if k not in ("ADB_VENDOR_KEYS", "ANDROID_SERIAL", "ADB_TRACE", "ADB_SERVER_SOCKET")}
    port = free_port()
    env.update(HOME=str(home), ANDROID_SDK_HOME=str(home), ANDROID_USER_HOME=str(android),
               ANDROID_ADB_SERVER_PORT=str(port))
    client = AdbEnv(adb=adb, server_port=port, home=home, key_path=android / "adbkey", env=env)
    try:
        yield client
    finally:
        with contextlib.suppress(subprocess.TimeoutExpired):
            client.run("kill-server", timeout=15)


@pytest.fixture
def adb_client(adb_env: AdbEnv, loopback_adbd: Any) -> AdbEnv:
    """``adb_env`` connected (``adb connect``) to ``loopback_adbd``; ``adb_client.serial`` is set."""
    adb_env.connect(loopback_adbd.serial)
    return adb_env
