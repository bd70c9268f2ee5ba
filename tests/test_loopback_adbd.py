"""The loopback ADB device against real clients: Debian's ``adb`` and the ``adb-shell`` library.

Nothing here is mocked: ``adb`` runs with a private server (see ``tests/conftest_adb.py``) and the
device is ``tools/loopback_adbd.py`` serving on 127.0.0.1.
"""

from __future__ import annotations

import io
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from adb_shell.adb_device import AdbDeviceTcp
from adb_shell.auth.sign_pythonrsa import PythonRSASigner

try:  # the lead's tests/conftest.py may also load these as a plugin; importing them here is harmless
    from tests.conftest_adb import (
        LOOPBACK_PATH,
        AdbEnv,
        adb_client,
        adb_env,
        adb_test_key,
        loopback,
        loopback_adbd,
        make_loopback_adbd,
    )
except ImportError:  # tests/ is not a package: pytest put tests/ itself on sys.path
    from conftest_adb import (  # type: ignore[no-redef]  # noqa: F401
        LOOPBACK_PATH,
        AdbEnv,
        adb_client,
        adb_env,
        adb_test_key,
        loopback,
        loopback_adbd,
        make_loopback_adbd,
    )

def _random_file(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return data


# ---- raw wire protocol -------------------------------------------------------------------------


class RawClient:
    """A minimal ADB host side on a socket, to check the wire format byte by byte."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)

    def send(self, cmd: bytes, arg0: int, arg1: int, data: bytes = b"") -> None:
        c = int.from_bytes(cmd, "little")
        self.sock.sendall(struct.pack("<6I", c, arg0, arg1, len(data), sum(data) & 0xFFFFFFFF, c ^ 0xFFFFFFFF) + data)

    def recv(self) -> tuple[bytes, int, int, bytes]:
        header = self._exact(24)
        c, arg0, arg1, length, check, magic = struct.unpack("<6I", header)
        assert magic == c ^ 0xFFFFFFFF
        data = self._exact(length)
        assert check == sum(data) & 0xFFFFFFFF, "the checksum field must be filled"
        return c.to_bytes(4, "little"), arg0, arg1, data

    def _exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            assert chunk, "connection closed"
            buf += chunk
        return buf

    def close(self) -> None:
        self.sock.close()


def test_cnxn_negotiates_version_and_max_payload(loopback_adbd: Any) -> None:
    client = RawClient(loopback_adbd.port)
    client.send(b"CNXN", 0x01000001, 1024 * 1024, b"host::features=shell_v2\0")
    cmd, version, max_data, banner = client.recv()
    assert (cmd, version, max_data) == (b"CNXN", 0x01000001, 256 * 1024)
    assert banner.startswith(b"device::ro.product.name=loopback;ro.product.model=Loopback;")
    assert banner.endswith(b"features=shell_v2,stat_v2")
    client.close()

    old = RawClient(loopback_adbd.port)  # an old client: its version and smaller max are respected
    old.send(b"CNXN", 0x01000000, 4096, b"host::\0")
    cmd, version, max_data, _ = old.recv()
    assert (cmd, version, max_data) == (b"CNXN", 0x01000000, 4096)
    old.close()


def test_wrte_respects_client_max_payload_and_shell_v2_framing(loopback_adbd: Any) -> None:
    client = RawClient(loopback_adbd.port)
    client.send(b"CNXN", 0x01000001, 4096, b"host::\0")
    assert client.recv()[0] == b"CNXN"
    client.send(b"OPEN", 7, 0, b"shell,v2,raw:head -c 20000 /dev/zero; echo oops >&2; exit 42\0")
    cmd, local_id, remote_id, _ = client.recv()
    assert (cmd, remote_id) == (b"OKAY", 7)
    stream = b""
    while True:
        cmd, arg0, arg1, data = client.recv()
        assert (arg0, arg1) == (local_id, 7)
        if cmd == b"CLSE":
            break
        assert cmd == b"WRTE" and len(data) <= 4096
        stream += data
        client.send(b"OKAY", 7, local_id)
    packets: dict[int, bytes] = {}
    while stream:
        pid, length = struct.unpack_from("<BI", stream)
        packets[pid] = packets.get(pid, b"") + stream[5:5 + length]
        stream = stream[5 + length:]
    assert packets == {1: b"\0" * 20000, 2: b"oops\n", 3: bytes([42])}
    client.close()


def test_unknown_service_is_refused_with_clse(loopback_adbd: Any) -> None:
    client = RawClient(loopback_adbd.port)
    client.send(b"CNXN", 0x01000001, 256 * 1024, b"host::\0")
    client.recv()
    client.send(b"OPEN", 3, 0, b"framebuffer:\0")
    assert client.recv()[:3] == (b"CLSE", 0, 3)
    client.send(b"OPEN", 4, 0, b"shell:echo still here\0")  # the connection is still usable
    assert client.recv()[0] == b"OKAY"
    cmd, _, _, data = client.recv()
    assert (cmd, data) == (b"WRTE", b"still here\n")
    client.close()


# ---- Debian's adb client ---------------------------------------------------------------------------


def test_adb_connect_lists_the_device(adb_client: AdbEnv, loopback_adbd: Any) -> None:
    out = adb_client.run("devices", "-l").stdout
    line = next(ln for ln in out.splitlines() if ln.startswith(loopback_adbd.serial))
    assert line.split()[1] == "device"
    assert "model:Loopback" in line and "device:loopback" in line


def test_adb_shell_returns_the_real_exit_code(adb_client: AdbEnv, loopback_adbd: Any) -> None:
    assert adb_client.run("-s", loopback_adbd.serial, "shell", "exit 3").returncode == 3
    assert adb_client.run("-s", loopback_adbd.serial, "shell", "true").returncode == 0
    assert adb_client.run("-s", loopback_adbd.serial, "shell", "kill -9 $$").returncode == 137


def test_adb_shell_separates_stdout_and_stderr(adb_client: AdbEnv, loopback_adbd: Any) -> None:
    proc = adb_client.run("-s", loopback_adbd.serial, "shell", "echo to-out; echo to-err >&2; exit 5")
    assert (proc.returncode, proc.stdout, proc.stderr) == (5, "to-out\n", "to-err\n")


def test_adb_shell_forwards_stdin(adb_client: AdbEnv, loopback_adbd: Any) -> None:
    proc = adb_client.run("-s", loopback_adbd.serial, "shell", "tr a-z A-Z", input=b"hello stdin\n")
    assert proc.returncode == 0 and proc.stdout == b"HELLO STDIN\n"


def test_adb_push_pull_roundtrip_larger_than_max_payload(adb_client: AdbEnv, loopback_adbd: Any,
                                                         tmp_path: Path) -> None:
    data = _random_file(tmp_path / "big.bin", 700_000)  # > 256 KiB max payload, > 64 KiB sync chunks
    serial = loopback_adbd.serial
    proc = adb_client.run("-s", serial, "push", str(tmp_path / "big.bin"), "/data/local/tmp/w/big.bin")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (loopback_adbd.sandbox / "w" / "big.bin").read_bytes() == data  # /data/local/tmp -> sandbox
    proc = adb_client.run("-s", serial, "pull", "/data/local/tmp/w/big.bin", str(tmp_path / "back.bin"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "back.bin").read_bytes() == data
    # the same file through its host path, which is inside the sandbox
    host_path = f"{loopback_adbd.sandbox}/w/big.bin"
    proc = adb_client.run("-s", serial, "pull", host_path, str(tmp_path / "back2.bin"))
    assert proc.returncode == 0 and (tmp_path / "back2.bin").read_bytes() == data
    # shell commands see the same file through the same mapped prefix
    proc = adb_client.run("-s", serial, "shell", "wc -c < /data/local/tmp/w/big.bin; pwd")
    assert proc.stdout.split() == ["700000", str(loopback_adbd.sandbox)]


def test_adb_pull_directory_and_mode(adb_client: AdbEnv, loopback_adbd: Any, tmp_path: Path) -> None:
    tool = tmp_path / "tool.sh"
    tool.write_text("#!/bin/sh\necho tool-ran \"$@\"\n")
    tool.chmod(0o755)
    assert adb_client.run("-s", loopback_adbd.serial, "push", str(tool), "/data/local/tmp/d/tool.sh").returncode == 0
    proc = adb_client.run("-s", loopback_adbd.serial, "shell", "/data/local/tmp/d/tool.sh a")
    assert proc.stdout == "tool-ran a\n"  # the executable bit survived the push
    assert adb_client.run("-s", loopback_adbd.serial, "pull", "/data/local/tmp/d", str(tmp_path / "d")).returncode == 0
    assert (tmp_path / "d" / "tool.sh").read_text() == tool.read_text()


def test_adb_push_outside_sandbox_and_missing_pull_fail(adb_client: AdbEnv, loopback_adbd: Any,
                                                        tmp_path: Path) -> None:
    _random_file(tmp_path / "f.bin", 1000)
    outside = "/hwnas-loopback-outside-sandbox/f.bin"
    proc = adb_client.run("-s", loopback_adbd.serial, "push", str(tmp_path / "f.bin"), outside)
    assert proc.returncode != 0 and "outside the loopback device sandbox" in proc.stdout + proc.stderr
    assert not Path(outside).exists()
    proc = adb_client.run("-s", loopback_adbd.serial, "pull", "/data/local/tmp/missing", str(tmp_path / "m"))
    assert proc.returncode != 0 and "No such file or directory" in proc.stdout + proc.stderr


def test_killing_the_adb_client_kills_the_device_command(adb_client: AdbEnv, loopback_adbd: Any) -> None:
    pid_file = loopback_adbd.sandbox / "pid"
    proc = subprocess.Popen([adb_client.adb, "-s", loopback_adbd.serial, "shell", "echo $$ > pid; exec sleep 30"],
                            env=adb_client.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 5
    while not (pid_file.exists() and pid_file.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    pid = int(pid_file.read_text())
    proc.kill()
    proc.wait()
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"device command {pid} still runs after the adb client was killed")


def test_concurrent_streams_on_one_connection(adb_client: AdbEnv, loopback_adbd: Any) -> None:
    results: dict[int, subprocess.CompletedProcess[str]] = {}

    def run(i: int) -> None:
        results[i] = adb_client.run("-s", loopback_adbd.serial, "shell", f"sleep 0.4; echo stream-{i}; exit {i}")

    start = time.monotonic()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    assert {i: (r.returncode, r.stdout) for i, r in results.items()} == {i: (i, f"stream-{i}\n") for i in range(6)}
    assert elapsed < 2.0, f"6 commands of 0.4 s took {elapsed:.1f} s: streams did not run concurrently"
    assert loopback_adbd.connections_accepted == 1  # the adb server multiplexed them on one connection


def test_adb_auth_with_trusted_key(adb_env: AdbEnv, make_loopback_adbd: Any) -> None:
    device = make_loopback_adbd(auth=True, trusted_keys=[str(adb_env.key_path) + ".pub"])
    adb_env.connect(device.serial)
    assert adb_env.state(device.serial) == "device"
    assert adb_env.run("-s", device.serial, "shell", "echo signed-in").stdout == "signed-in\n"


def test_adb_auth_unknown_key_leaves_device_unauthorized(adb_env: AdbEnv, make_loopback_adbd: Any) -> None:
    device = make_loopback_adbd(auth=True)
    adb_env.run("connect", device.serial)
    assert adb_env.state(device.serial) == "unauthorized"
    proc = adb_env.run("-s", device.serial, "shell", "echo no")
    assert proc.returncode != 0 and "unauthorized" in proc.stderr
    assert device.services == []  # nothing ran


def test_adb_auth_new_key_accepted_like_the_prompt(adb_env: AdbEnv, make_loopback_adbd: Any) -> None:
    device = make_loopback_adbd(auth=True, accept_new_keys=True)
    # adb prints "failed to authenticate" once its key is refused, then the device comes online
    # when the user (here: accept_new_keys) allows the key it sent with AUTH RSAPUBLICKEY.
    adb_env.run("connect", device.serial)
    assert adb_env.wait_state(device.serial, "device") == "device"
    assert adb_env.run("-s", device.serial, "shell", "echo allowed").stdout == "allowed\n"


def test_fault_drop_after_commands(adb_client: AdbEnv, loopback_adbd: Any) -> None:
    serial = loopback_adbd.serial
    loopback_adbd.set_faults(drop_after_commands=1, max_faults=1)
    assert adb_client.run("-s", serial, "shell", "echo first").stdout == "first\n"
    proc = adb_client.run("-s", serial, "shell", "echo second")
    assert proc.returncode != 0 and "second" not in proc.stdout
    assert loopback_adbd.faults_fired == 1
    adb_client.run("disconnect", serial)
    adb_client.connect(serial)  # the fault budget is spent: the new connection works
    assert adb_client.run("-s", serial, "shell", "echo third").stdout == "third\n"


def test_fault_drop_after_bytes_cuts_a_pull(adb_client: AdbEnv, loopback_adbd: Any, tmp_path: Path) -> None:
    data = _random_file(loopback_adbd.sandbox / "f.bin", 300_000)
    loopback_adbd.set_faults(drop_after_bytes=100_000)
    proc = adb_client.run("-s", loopback_adbd.serial, "pull", "/data/local/tmp/f.bin", str(tmp_path / "f.bin"))
    assert proc.returncode != 0
    assert loopback_adbd.faults_fired == 1
    assert not (tmp_path / "f.bin").exists() or (tmp_path / "f.bin").read_bytes() != data


# ---- the adb-shell library -------------------------------------------------------------------------


def test_adb_shell_library_without_auth(loopback_adbd: Any) -> None:
    dev = AdbDeviceTcp("127.0.0.1", loopback_adbd.port, default_transport_timeout_s=5)
    assert dev.connect(rsa_keys=None)
    assert dev.shell("echo out; echo err >&2") == "out\nerr\n"  # raw shell: one merged stream
    data = os.urandom(300_000)
    dev.push(io.BytesIO(data), "/data/local/tmp/lib/x.bin")
    assert (loopback_adbd.sandbox / "lib" / "x.bin").read_bytes() == data
    back = io.BytesIO()
    dev.pull("/data/local/tmp/lib/x.bin", back)
    assert back.getvalue() == data
    mode, size, _mtime = dev.stat("/data/local/tmp/lib/x.bin")
    assert size == 300_000 and mode & 0o170000 == 0o100000
    assert [bytes(f.filename) for f in dev.list("/data/local/tmp/lib")] == [b"x.bin"]
    dev.close()


def test_adb_shell_library_auth_signature(make_loopback_adbd: Any, adb_test_key: Path) -> None:
    device = make_loopback_adbd(auth=True, trusted_keys=[Path(str(adb_test_key) + ".pub")])
    dev = AdbDeviceTcp("127.0.0.1", device.port, default_transport_timeout_s=5)
    assert dev.connect(rsa_keys=[PythonRSASigner.FromRSAKeyPath(str(adb_test_key))], auth_timeout_s=2)
    assert dev.shell("echo signed") == "signed\n"
    dev.close()


def test_adb_shell_library_auth_rejected_then_accepted(make_loopback_adbd: Any, adb_test_key: Path) -> None:
    signer = PythonRSASigner.FromRSAKeyPath(str(adb_test_key))
    strict = make_loopback_adbd(auth=True)
    dev = AdbDeviceTcp("127.0.0.1", strict.port, default_transport_timeout_s=1)
    with pytest.raises(Exception, match=r"timed out|Never got"):
        dev.connect(rsa_keys=[signer], auth_timeout_s=0.5)
    dev.close()
    assert strict.services == []

    prompt = make_loopback_adbd(auth=True, accept_new_keys=True)
    dev = AdbDeviceTcp("127.0.0.1", prompt.port, default_transport_timeout_s=5)
    assert dev.connect(rsa_keys=[signer], auth_timeout_s=2)  # via AUTH RSAPUBLICKEY
    assert dev.shell("echo ok") == "ok\n"
    dev.close()


def test_several_connections_in_parallel(loopback_adbd: Any) -> None:
    outputs: dict[int, str] = {}

    def run(i: int) -> None:
        dev = AdbDeviceTcp("127.0.0.1", loopback_adbd.port, default_transport_timeout_s=5)
        dev.connect()
        outputs[i] = dev.shell(f"sleep 0.3; echo conn-{i}")
        dev.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outputs == {i: f"conn-{i}\n" for i in range(4)}
    assert loopback_adbd.connections_accepted == 4


# ---- sandbox mapping and command line ------------------------------------------------------------


def test_path_mapping(loopback_adbd: Any) -> None:
    root = loopback_adbd.sandbox
    assert loopback_adbd.host_path("/data/local/tmp/a/b") == root / "a" / "b"
    assert loopback_adbd.host_path("rel/x") == root / "rel" / "x"
    assert loopback_adbd.host_path(f"{root}/y") == root / "y"
    for bad in ("/etc/passwd", "/data/local/tmp/../../etc", "/data/local/tmpfoo"):
        with pytest.raises(loopback._OutsideSandbox):
            loopback_adbd.host_path(bad)
    assert loopback_adbd.rewrite_command("cat '/data/local/tmp/x y' /data/local/tmpfoo") == \
        f"cat '{root}/x y' /data/local/tmpfoo"


def test_command_line_server(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, str(LOOPBACK_PATH), "--port", "0", "--sandbox", str(tmp_path / "sb")],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "listening on 127.0.0.1:" in line, line
        port = int(line.split("127.0.0.1:")[1].split()[0])
        dev = AdbDeviceTcp("127.0.0.1", port, default_transport_timeout_s=5)
        dev.connect()
        assert dev.shell("echo $LOOPBACK_ADBD_SANDBOX") == f"{tmp_path / 'sb'}\n"
        dev.close()
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
