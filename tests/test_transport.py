"""The three transports through the common interface, against real parts.

``adb-shell`` talks to the loopback ADB device with the ``adb-shell`` library, ``adb`` drives
Debian's real ``adb`` client (private server, see ``tests/conftest_adb.py``), ``local`` runs here.
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import adb_shell.adb_device
import pytest

from hwnas.devices.transport import (
    AdbCliTransport,
    AdbShellTransport,
    LocalTransport,
    ShellResult,
    Transport,
    default_key_path,
    ensure_adb_key,
    open_transport,
    quote_command,
)
from hwnas.errors import HwnasError

try:  # the lead's tests/conftest.py may also load these as a plugin; importing them here is harmless
    from tests.conftest_adb import AdbEnv, adb_env, adb_test_key, loopback_adbd, make_loopback_adbd
except ImportError:  # tests/ is not a package: pytest put tests/ itself on sys.path
    from conftest_adb import AdbEnv, adb_env, adb_test_key, loopback_adbd, make_loopback_adbd  # type: ignore[no-redef]  # noqa: F401

FAST_RETRY = {"attempts": 3, "base_delay": 0.01, "max_delay": 0.05}
ALL = ["adb-shell", "adb", "local"]
ADB = ["adb-shell", "adb"]


@dataclass
class Target:
    """A transport under test and where its device-side work dir is on this machine."""

    kind: str
    transport: Any
    workdir: str  # device-side path used in commands
    host_dir: Path  # the same folder seen from this machine
    device: Any = None  # the LoopbackAdbd behind an ADB transport


def _make_target(kind: str, request: pytest.FixtureRequest, tmp_path: Path, **device_kwargs: Any) -> Target:
    if kind == "local":
        work = tmp_path / "local-work"
        work.mkdir()
        return Target(kind, open_transport("local", name="host"), str(work), work)
    device = request.getfixturevalue("make_loopback_adbd")(**device_kwargs)
    # The device-side work dir is a host path inside the sandbox: it means the same to shell and sync.
    work = device.sandbox / "work"
    if kind == "adb-shell":
        key = request.getfixturevalue("adb_test_key")
        transport = open_transport("adb-shell", host="127.0.0.1", port=device.port, name="loopback-tcp",
                                   key_path=key, connect_timeout=5, auth_timeout=1, io_timeout=10, **FAST_RETRY)
    else:
        env: AdbEnv = request.getfixturevalue("adb_env")
        transport = open_transport("adb", serial=device.serial, name="loopback-adb", env=env.env,
                                   connect_timeout=10, io_timeout=30, **FAST_RETRY)
    request.addfinalizer(transport.close)
    return Target(kind, transport, str(work), work, device)


@pytest.fixture(params=ALL)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    return _make_target(request.param, request, tmp_path)


@pytest.fixture(params=ADB)
def adb_target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    return _make_target(request.param, request, tmp_path)


# ---- common interface ----------------------------------------------------------------------------


def test_satisfies_the_protocol(target: Target) -> None:
    assert isinstance(target.transport, Transport)
    assert target.transport.name in ("host", "loopback-tcp", "loopback-adb")


def test_exit_codes(target: Target) -> None:
    t = target.transport
    assert t.shell("exit 3").exit_code == 3
    assert t.shell(["true"]) == ShellResult(0, "", "")
    assert t.shell(["sh", "-c", "exit 7"]).exit_code == 7
    assert t.shell("kill -9 $$").exit_code == 137


def test_stdout_and_stderr(target: Target) -> None:
    result = target.transport.shell("echo to-out; echo to-err >&2; exit 4")
    assert result.exit_code == 4 and not result.ok
    if target.kind == "adb-shell":  # the raw shell service has one stream: stderr is merged
        assert result.stdout.splitlines() == ["to-out", "to-err"] and result.stderr == ""
    else:
        assert (result.stdout, result.stderr) == ("to-out\n", "to-err\n")


def test_arguments_are_quoted(target: Target) -> None:
    nasty = "it's a \"test\" with $HOME, `echo x`, $(id), ; | & * and\na newline"
    assert target.transport.shell(["printf", "%s", nasty]).stdout == nasty
    assert target.transport.shell(["echo", "two  spaces"]).stdout == "two  spaces\n"


def test_output_keeps_its_exact_ending(target: Target) -> None:
    assert target.transport.shell(["printf", "abc"]).stdout == "abc"
    assert target.transport.shell(["printf", "abc\n\n"]).stdout == "abc\n\n"
    big = target.transport.shell("head -c 300000 /dev/zero | tr '\\0' x")
    assert big.stdout == "x" * 300000


def test_push_pull_roundtrip(target: Target, tmp_path: Path) -> None:
    data = os.urandom(300_000)
    src = tmp_path / "data.bin"
    src.write_bytes(data)
    remote = f"{target.workdir}/sub/data.bin"
    target.transport.push(src, remote)  # parents are created
    assert (target.host_dir / "sub" / "data.bin").read_bytes() == data
    assert target.transport.shell(["wc", "-c", remote]).stdout.split()[0] == "300000"
    back = tmp_path / "out" / "back.bin"
    target.transport.pull(remote, back)
    assert back.read_bytes() == data


def test_pushed_program_keeps_its_executable_bit(target: Target, tmp_path: Path) -> None:
    tool = tmp_path / "tool.sh"
    tool.write_text('#!/bin/sh\necho "ran with [$1]"\n')
    tool.chmod(0o755)
    remote = f"{target.workdir}/bin/tool.sh"
    target.transport.push(tool, remote)
    assert target.transport.shell([remote, "a b"]).stdout == "ran with [a b]\n"
    assert stat.S_IMODE((target.host_dir / "bin" / "tool.sh").stat().st_mode) & 0o100


def test_missing_files_raise_hwnas_error(target: Target, tmp_path: Path) -> None:
    missing = f"{target.workdir}/no-such-file"
    with pytest.raises(HwnasError, match=rf"{target.transport.name}.*no-such-file"):
        target.transport.pull(missing, tmp_path / "never.bin")
    assert not (tmp_path / "never.bin").exists()
    assert list(tmp_path.glob(".never.bin*")) == []  # no temporary file is left behind
    with pytest.raises(HwnasError, match=rf"{target.transport.name}.*no such local file"):
        target.transport.push(tmp_path / "nope.bin", f"{target.workdir}/x")


def test_timeout_kills_and_transport_recovers(target: Target) -> None:
    start = time.monotonic()
    with pytest.raises(HwnasError, match=rf"{target.transport.name}: command timed out after 0.5 s: sleep 5"):
        target.transport.shell("sleep 5", timeout=0.5)
    assert time.monotonic() - start < 3
    assert target.transport.shell(["echo", "again"]).stdout == "again\n"


def test_is_alive_and_close(target: Target) -> None:
    assert target.transport.is_alive()
    target.transport.close()
    assert target.transport.shell(["echo", "reopened"]).stdout == "reopened\n"  # close, then reconnect


# ---- dropped connections (fault injection on the loopback device) ---------------------------------


def test_retries_then_names_device_and_last_error(adb_target: Target) -> None:
    adb_target.device.set_faults(drop_after_commands=0)  # every shell/sync service drops the connection
    with pytest.raises(HwnasError, match=rf"device {adb_target.transport.name}: shell command 'echo hi' failed "
                                         r"after 3 attempt\(s\); last error: "):
        adb_target.transport.shell(["echo", "hi"])
    assert adb_target.device.faults_fired == 3


def test_reconnects_and_succeeds_after_one_drop(adb_target: Target) -> None:
    assert adb_target.transport.shell(["echo", "before"]).stdout == "before\n"
    connections = adb_target.device.connections_accepted
    adb_target.device.set_faults(drop_after_commands=0, max_faults=1)
    assert adb_target.transport.shell("echo after; exit 2") == ShellResult(2, "after\n", "")
    assert adb_target.device.faults_fired == 1
    assert adb_target.device.connections_accepted > connections


def test_pull_cut_mid_transfer_is_retried(adb_target: Target, tmp_path: Path) -> None:
    data = os.urandom(400_000)
    (adb_target.host_dir).mkdir(parents=True)
    (adb_target.host_dir / "big.bin").write_bytes(data)
    adb_target.device.set_faults(drop_after_bytes=150_000, max_faults=1)
    adb_target.transport.pull(f"{adb_target.workdir}/big.bin", tmp_path / "big.bin")
    assert adb_target.device.faults_fired == 1
    assert (tmp_path / "big.bin").read_bytes() == data


def test_push_after_a_drop_is_retried(adb_target: Target, tmp_path: Path) -> None:
    data = os.urandom(100_000)
    (tmp_path / "p.bin").write_bytes(data)
    adb_target.device.set_faults(drop_after_commands=0, max_faults=1)
    adb_target.transport.push(tmp_path / "p.bin", f"{adb_target.workdir}/p.bin")
    assert adb_target.device.faults_fired == 1
    assert (adb_target.host_dir / "p.bin").read_bytes() == data


def test_device_gone(adb_target: Target) -> None:
    assert adb_target.transport.is_alive()
    adb_target.device.stop()
    assert not adb_target.transport.is_alive()
    with pytest.raises(HwnasError, match=rf"device {adb_target.transport.name}: .*after 3 attempt"):
        adb_target.transport.shell(["echo", "hi"])


# ---- adb client specifics ---------------------------------------------------------------------------


def test_adb_unauthorized_says_what_to_do(adb_env: AdbEnv, make_loopback_adbd: Any) -> None:
    device = make_loopback_adbd(auth=True)
    t = AdbCliTransport(serial=device.serial, env=adb_env.env, **FAST_RETRY)
    with pytest.raises(HwnasError, match=rf"device {device.serial} is unauthorized: .*accept the USB debugging prompt"):
        t.shell(["echo", "hi"])
    assert device.services == []


def test_adb_device_not_found(adb_env: AdbEnv) -> None:
    t = AdbCliTransport(serial="HWNAS-NO-SUCH-DEVICE", env=adb_env.env, attempts=2, base_delay=0.0)
    with pytest.raises(HwnasError, match=r"device HWNAS-NO-SUCH-DEVICE: .*after 2 attempt.*not found by adb"):
        t.shell(["true"])
    assert not t.is_alive()


def test_adb_missing_client(tmp_path: Path) -> None:
    with pytest.raises(HwnasError, match=r"adb client was not found.*apt-get install adb"):
        AdbCliTransport(serial="x", adb_path=tmp_path / "no-adb")


def test_adb_host_port_connects_itself(adb_env: AdbEnv, loopback_adbd: Any) -> None:
    t = open_transport("adb", host="127.0.0.1", port=loopback_adbd.port, env=adb_env.env)
    assert isinstance(t, AdbCliTransport) and t.serial == loopback_adbd.serial and t.name == loopback_adbd.serial
    assert t.shell("echo $LOOPBACK_ADBD_SANDBOX").stdout == f"{loopback_adbd.sandbox}\n"
    assert adb_env.state(loopback_adbd.serial) == "device"


# ---- adb-shell specifics ----------------------------------------------------------------------------


def test_adb_shell_key_is_created_once_and_reused(make_loopback_adbd: Any, tmp_path: Path) -> None:
    key = tmp_path / "keys" / "adbkey"
    prompt = make_loopback_adbd(auth=True, accept_new_keys=True)  # the user allows the new key
    t = AdbShellTransport(host="127.0.0.1", port=prompt.port, key_path=key, auth_timeout=2)
    assert t.shell(["echo", "first"]).stdout == "first\n"
    assert key.exists() and Path(f"{key}.pub").exists()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    private = key.read_bytes()
    t.close()
    strict = make_loopback_adbd(auth=True, trusted_keys=[Path(f"{key}.pub")])  # only signatures now
    t2 = AdbShellTransport(host="127.0.0.1", port=strict.port, key_path=key, auth_timeout=1)
    assert t2.shell(["echo", "second"]).stdout == "second\n"
    assert key.read_bytes() == private
    t2.close()


def test_adb_shell_default_key_path_honours_android_user_home(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANDROID_USER_HOME", str(tmp_path / "android"))
    assert default_key_path() == tmp_path / "android" / "adbkey"
    assert ensure_adb_key() == tmp_path / "android" / "adbkey"
    assert (tmp_path / "android" / "adbkey.pub").read_text().split()[0]


def test_adb_shell_unauthorized_says_what_to_do(make_loopback_adbd: Any, adb_test_key: Path) -> None:
    device = make_loopback_adbd(auth=True)
    t = AdbShellTransport(host="127.0.0.1", port=device.port, key_path=adb_test_key, auth_timeout=0.5, **FAST_RETRY)
    start = time.monotonic()
    with pytest.raises(HwnasError, match=r"did not accept this computer's ADB key .*accept the USB debugging prompt"):
        t.shell(["true"])
    assert time.monotonic() - start < 3  # not retried: waiting again would not help
    assert device.services == []


def test_adb_shell_usb_needs_libusb1(monkeypatch: pytest.MonkeyPatch, adb_test_key: Path) -> None:
    monkeypatch.setattr(adb_shell.adb_device, "UsbTransport", None)
    t = open_transport("adb-shell", serial="R5CT000000", key_path=adb_test_key)
    with pytest.raises(HwnasError, match=r"device R5CT000000: USB needs the libusb1 package"):
        t.shell(["true"])


# ---- factory and helpers ------------------------------------------------------------------------------


def test_open_transport_rejects_unknown_and_inconsistent_settings() -> None:
    with pytest.raises(HwnasError, match=r"unknown transport 'ssh'; allowed: adb-shell, adb, local"):
        open_transport("ssh", host="x")
    with pytest.raises(HwnasError, match=r"transport 'adb' needs a serial"):
        open_transport("adb")
    with pytest.raises(HwnasError, match=r"transport 'adb-shell' takes a serial .* not both"):
        open_transport("adb-shell", serial="a", host="b")
    with pytest.raises(HwnasError, match=r"transport 'local' takes no serial"):
        open_transport("local", serial="a")
    with pytest.raises(HwnasError, match=r"unknown option\(s\) colour for transport 'adb-shell'; allowed: .*key_path"):
        open_transport("adb-shell", host="h", colour="red")
    assert isinstance(open_transport("local"), LocalTransport)


def test_quote_command() -> None:
    assert quote_command(["ls", "-l", "a b", "$X"]) == "ls -l 'a b' '$X'"
    assert quote_command("echo $HOME | wc") == "echo $HOME | wc"
    with pytest.raises(HwnasError, match="empty shell command"):
        quote_command([])
    with pytest.raises(HwnasError, match="every argument must be a str"):
        quote_command(["sleep", 1])  # type: ignore[list-item]
