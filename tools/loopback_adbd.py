#!/usr/bin/env python3
"""A loopback ADB device: a small adbd that runs on this machine and speaks the real ADB wire protocol.

Why: hwnas measures latency on Android devices over ADB. To test that code (and the ``adb`` client
and the ``adb-shell`` library it drives) without a phone, this module serves the device side of the
protocol on ``127.0.0.1``, so ``adb connect 127.0.0.1:PORT`` and ``AdbDeviceTcp("127.0.0.1", PORT)``
talk to it exactly as they would talk to ``adbd`` over Wi-Fi.

What it implements (see AOSP ``packages/modules/adb``: ``protocol.txt``, ``SYNC.TXT``,
``shell_protocol.h``, ``file_sync_protocol.h``):

* messages ``CNXN``, ``AUTH``, ``OPEN``, ``OKAY``, ``WRTE``, ``CLSE`` (24-byte little-endian header,
  ``magic = command ^ 0xffffffff``; the data checksum is always filled in and only checked for
  clients older than ``A_VERSION`` 0x01000001, as adbd does);
* version / ``max_payload`` negotiation: the answer is ``min(client, 0x01000001)`` and
  ``min(client max, 256 KiB)``;
* optional authentication: an ``AUTH TOKEN`` (20 random bytes) is sent in answer to ``CNXN``; an
  ``AUTH SIGNATURE`` is verified (RSA PKCS#1 v1.5 over the token as a SHA-1 digest, in pure Python)
  against the trusted public keys (Android ``adbkey.pub`` format); a failed signature gets a new
  token; ``AUTH RSAPUBLICKEY`` is accepted only with ``accept_new_keys=True`` (it stands for the user
  tapping "Allow" on the USB debugging prompt), otherwise the device stays *unauthorized*;
* many streams per connection (local-id / remote-id pairs) and many connections, one outstanding
  ``WRTE`` per stream (the device waits for the client's ``OKAY`` before it writes again);
* services: ``shell:CMD`` and ``exec:CMD`` (raw: stdout and stderr merged, no exit code, as old
  clients and ``adb-shell``'s ``shell()`` expect), ``shell,v2[,raw|,pty][,TERM=..]:CMD`` (shell
  protocol v2: packets of ``id`` byte + 4-byte little-endian length; stdin=0, stdout=1, stderr=2,
  exit=3, close-stdin=4, window-size=5; so ``adb shell CMD`` returns the command's real exit code;
  a PTY is never allocated), and ``sync:`` (``STAT``, ``STA2``, ``LST2``, ``LIST``, ``SEND``, ``RECV``,
  ``QUIT`` with ``DATA``/``DONE``/``OKAY``/``FAIL``/``DENT``); any other service is refused with
  ``CLSE``. Only ``shell_v2`` and ``stat_v2`` are advertised in the banner (not ``cmd``, ``ls_v2`` or
  ``sendrecv_v2``, which are not implemented).

Sandbox and device paths (the mapping is explicit):

* Commands run on the host as ``/bin/sh -c CMD`` with the **sandbox directory as the working
  directory** and ``LOOPBACK_ADBD_SANDBOX`` set to its absolute path. Shell commands see **host
  paths**: the only rewriting is that every occurrence of the *map prefix* (default
  ``/data/local/tmp``) in the command text is replaced by the sandbox path, so
  ``adb shell cat /data/local/tmp/x`` reads ``SANDBOX/x``. Output is not rewritten back.
* ``sync:`` paths (push, pull, stat, list) are mapped the same way: ``/data/local/tmp/...`` ->
  ``SANDBOX/...``; a relative path is relative to the sandbox; an absolute path that is already inside
  the sandbox is used as it is; any other path is refused (``FAIL``, or "not found" for stat/list).
  So a test may use either ``/data/local/tmp/work`` or ``f"{sandbox}/work"`` as the device work dir;
  the second form also works for a transport that runs on the host.
* This is a test double, not a security boundary: shell commands can touch any host file.

Fault injection (for resume / retry tests), counted per TCP connection:

* ``drop_after_commands=N``: the (N+1)-th ``shell``/``exec``/``sync`` service opened on a
  connection resets the connection instead of being answered (N=0 drops on the first one).
* ``drop_after_bytes=N``: the connection is reset instead of sending the ``WRTE`` that would take the
  total ``WRTE`` payload sent on that connection past N bytes.
* ``max_faults``: how many times in the server's life a fault may fire (``None``: always), so
  ``max_faults=1`` drops once and then lets the reconnected client succeed.
  :meth:`LoopbackAdbd.set_faults` changes these at run time.

Usage::

    python tools/loopback_adbd.py --port 5555 --sandbox DIR [--auth --trusted-key ~/.android/adbkey.pub]
        [--accept-new-keys] [--drop-after-commands N] [--drop-after-bytes N] [--max-faults N]

    with LoopbackAdbd(sandbox) as dev:       # port 0: a free port is picked; serves in a thread
        subprocess.run(["adb", "connect", dev.serial])

Only the Python standard library is used.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import logging
import os
import queue
import re
import secrets
import signal
import socket
import stat as statmod
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

__all__ = ["DEFAULT_FEATURES", "DEFAULT_MAP_PREFIX", "LoopbackAdbd", "parse_android_pubkey"]

LOG = logging.getLogger("loopback_adbd")


def _wire_id(name: bytes) -> int:
    """The little-endian integer for a 4-letter ADB/sync command id (``b"CNXN"`` -> 0x4e584e43)."""
    return int.from_bytes(name, "little")


# --- ADB transport messages (protocol.txt) ---------------------------------------------------------
A_CNXN = _wire_id(b"CNXN")
A_AUTH = _wire_id(b"AUTH")
A_OPEN = _wire_id(b"OPEN")
A_OKAY = _wire_id(b"OKAY")
A_CLSE = _wire_id(b"CLSE")
A_WRTE = _wire_id(b"WRTE")
A_SYNC = _wire_id(b"SYNC")
A_STLS = _wire_id(b"STLS")
_COMMAND_NAMES = {v: k for k, v in {"CNXN": A_CNXN, "AUTH": A_AUTH, "OPEN": A_OPEN, "OKAY": A_OKAY,
                                    "CLSE": A_CLSE, "WRTE": A_WRTE, "SYNC": A_SYNC, "STLS": A_STLS}.items()}

A_VERSION_MIN = 0x01000000
A_VERSION_SKIP_CHECKSUM = 0x01000001
A_VERSION = 0x01000001
MAX_PAYLOAD = 256 * 1024
MAX_PAYLOAD_V1 = 4 * 1024
HEADER = struct.Struct("<6I")

AUTH_TOKEN = 1
AUTH_SIGNATURE = 2
AUTH_RSAPUBLICKEY = 3
TOKEN_SIZE = 20

# --- shell protocol v2 (shell_protocol.h) ----------------------------------------------------------
SHELL_STDIN = 0
SHELL_STDOUT = 1
SHELL_STDERR = 2
SHELL_EXIT = 3
SHELL_CLOSE_STDIN = 4
SHELL_WINDOW_SIZE = 5
SHELL_HEADER = struct.Struct("<BI")

# --- file sync protocol (SYNC.TXT, file_sync_protocol.h) -------------------------------------------
SYNC_HEADER = struct.Struct("<4sI")
SYNC_STAT_V1 = struct.Struct("<4sIII")
SYNC_STAT_V2 = struct.Struct("<4sIQQIIIIQqqq")
SYNC_DENT = struct.Struct("<4sIIII")
SYNC_DATA_MAX = 64 * 1024
SYNC_PATH_MAX = 1024

DEFAULT_FEATURES: tuple[str, ...] = ("shell_v2", "stat_v2")
DEFAULT_MAP_PREFIX = "/data/local/tmp"
DEFAULT_PROPS = {"ro.product.name": "loopback", "ro.product.model": "Loopback", "ro.product.device": "loopback"}
SANDBOX_ENV = "LOOPBACK_ADBD_SANDBOX"

# DER prefix of a PKCS#1 v1.5 DigestInfo for SHA-1: the AUTH token is signed as if it were a digest.
_SHA1_DIGEST_INFO = bytes.fromhex("3021300906052b0e03021a05000414")
# Android's RSAPublicKey struct: modulus_size_words, n0inv, modulus[256] (LE), rr[256] (LE), exponent.
_ANDROID_PUBKEY = struct.Struct("<II256s256sI")


class _ConnectionGone(Exception):
    """The TCP connection was closed (by the client, a fault, or :meth:`LoopbackAdbd.stop`)."""


class _StreamClosed(Exception):
    """The stream was closed before a service got the bytes it needed."""


class _OutsideSandbox(Exception):
    """A device path maps outside the sandbox directory."""


@dataclass(frozen=True)
class RsaPublicKey:
    """An RSA public key: modulus ``n`` and exponent ``e``."""

    n: int
    e: int


def parse_android_pubkey(text: str | bytes) -> RsaPublicKey:
    """Parse an Android ``adbkey.pub`` (base64 of the RSAPublicKey struct, then `` user@host``)."""
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    fields = text.strip().rstrip("\0").split()
    if not fields:
        raise ValueError("empty ADB public key")
    raw = base64.b64decode(fields[0])
    if len(raw) != _ANDROID_PUBKEY.size:
        raise ValueError(f"ADB public key has {len(raw)} bytes, expected {_ANDROID_PUBKEY.size}")
    _words, _n0inv, modulus, _rr, exponent = _ANDROID_PUBKEY.unpack(raw)
    return RsaPublicKey(n=int.from_bytes(modulus, "little"), e=exponent)


def verify_token_signature(key: RsaPublicKey, token: bytes, signature: bytes) -> bool:
    """True when ``signature`` is the RSA PKCS#1 v1.5 / SHA-1 signature of ``token`` taken as a digest.

    This is what adbd checks (``RSA_verify(NID_sha1, token, ...)``); done with ``pow`` so the
    loopback device needs no crypto library.
    """
    k = (key.n.bit_length() + 7) // 8
    if len(signature) != k:
        return False
    s = int.from_bytes(signature, "big")
    if s >= key.n:
        return False
    em = pow(s, key.e, key.n).to_bytes(k, "big")
    digest_info = _SHA1_DIGEST_INFO + token
    pad_len = k - 3 - len(digest_info)
    if pad_len < 8:
        return False
    return em == b"\x00\x01" + b"\xff" * pad_len + b"\x00" + digest_info


def _load_key(item: str | bytes | os.PathLike[str]) -> RsaPublicKey:
    """A trusted key given as the text of an ``adbkey.pub`` (str or bytes) or as a path to one."""
    if isinstance(item, bytes):
        return parse_android_pubkey(item)
    if isinstance(item, str) and not (len(item) < 4096 and "\n" not in item and os.path.isfile(item)):
        return parse_android_pubkey(item)
    return parse_android_pubkey(Path(item).read_text())


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill a service's process group (the command was started in a new session)."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


class _Stream:
    """One ADB stream: our ``local_id`` paired with the client's ``remote_id``.

    Incoming ``WRTE`` payloads are queued in :attr:`inbox` (``None`` marks the end). :meth:`write`
    sends ``WRTE`` messages no larger than the negotiated max payload and waits for the client's
    ``OKAY`` after each one, as adbd does.
    """

    def __init__(self, conn: _Connection, local_id: int, remote_id: int, service: str) -> None:
        self.conn = conn
        self.local_id = local_id
        self.remote_id = remote_id
        self.service = service
        self.inbox: queue.Queue[bytes | None] = queue.Queue()
        self.closed = False
        self._okay = threading.Event()
        self._write_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._on_abort: list[Callable[[], None]] = []

    def on_abort(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` if the client closes the stream or the connection is lost."""
        self._on_abort.append(callback)

    def write(self, data: bytes) -> bool:
        """Send ``data`` to the client; False when the stream or connection is gone."""
        if not data:
            return not self.closed
        step = self.conn.max_payload
        with self._write_lock:
            for start in range(0, len(data), step):
                chunk = data[start:start + step]
                if self.closed:
                    return False
                self._okay.clear()
                try:
                    self.conn.send(A_WRTE, self.local_id, self.remote_id, chunk)
                except _ConnectionGone:
                    return False
                while not self._okay.wait(0.25):
                    if self.closed:
                        return False
                if self.closed:
                    return False
        return True

    def got_okay(self) -> None:
        self._okay.set()

    def close(self) -> None:
        """The service is done: send ``CLSE`` (once) and forget the stream."""
        with self._state_lock:
            if self.closed:
                return
            self.closed = True
        self.conn.forget(self)
        with contextlib.suppress(_ConnectionGone):
            self.conn.send(A_CLSE, self.local_id, self.remote_id)
        self.inbox.put(None)
        self._okay.set()

    def peer_closed(self) -> None:
        """The client sent ``CLSE``: answer it (adb-shell waits for that), stop the service."""
        with self._state_lock:
            if self.closed:
                return
            self.closed = True
        self.conn.forget(self)
        with contextlib.suppress(_ConnectionGone):
            self.conn.send(A_CLSE, self.local_id, self.remote_id)
        self._abort()

    def connection_lost(self) -> None:
        with self._state_lock:
            self.closed = True
        self._abort()

    def _abort(self) -> None:
        self.inbox.put(None)
        self._okay.set()
        for callback in self._on_abort:
            callback()


class _Connection:
    """One TCP connection from an ADB client: handshake, message dispatch, streams."""

    def __init__(self, server: LoopbackAdbd, sock: socket.socket, peer: str) -> None:
        self.server = server
        self.sock = sock
        self.peer = peer
        self.version = A_VERSION_MIN
        self.max_payload = MAX_PAYLOAD_V1
        self.online = False
        self.services_opened = 0
        self.wrte_bytes_sent = 0
        self._token = b""
        self._closed = threading.Event()
        self._send_lock = threading.Lock()
        self._streams: dict[int, _Stream] = {}
        self._streams_lock = threading.Lock()
        self._next_local_id = 1

    # ---- I/O ----------------------------------------------------------------------------------
    def _recv_exact(self, n: int) -> bytes | None:
        buf = bytearray()
        while len(buf) < n:
            try:
                chunk = self.sock.recv(n - len(buf))
            except OSError:
                return None
            if not chunk:
                return None
            buf += chunk
        return bytes(buf)

    def send(self, command: int, arg0: int, arg1: int, data: bytes = b"") -> None:
        """Send one message; raises :class:`_ConnectionGone` when the connection is closed."""
        header = HEADER.pack(command, arg0, arg1, len(data), sum(data) & 0xFFFFFFFF, command ^ 0xFFFFFFFF)
        with self._send_lock:
            if self._closed.is_set():
                raise _ConnectionGone()
            if command == A_WRTE:
                limit = self.server.drop_after_bytes
                if limit is not None and self.wrte_bytes_sent + len(data) > limit and self.server._take_fault(
                        f"drop_after_bytes={limit} on {self.peer}"):
                    self.abort()
                    raise _ConnectionGone()
                self.wrte_bytes_sent += len(data)
            try:
                self.sock.sendall(header + data)
            except OSError:
                self.abort()
                raise _ConnectionGone() from None
        LOG.debug("%s <- %s %#x %#x (%d bytes)", self.peer, _COMMAND_NAMES.get(command, command), arg0, arg1,
                  len(data))

    def abort(self) -> None:
        """Reset the TCP connection (RST) and stop every stream on it."""
        if self._closed.is_set():
            return
        self._closed.set()
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            self.sock.close()
        with self._streams_lock:
            streams = list(self._streams.values())
            self._streams.clear()
        for stream in streams:
            stream.connection_lost()
        self.server._forget_connection(self)

    def forget(self, stream: _Stream) -> None:
        with self._streams_lock:
            self._streams.pop(stream.local_id, None)

    # ---- main loop ----------------------------------------------------------------------------
    def run(self) -> None:
        """Read and dispatch messages until the connection ends."""
        try:
            while not self._closed.is_set():
                header = self._recv_exact(HEADER.size)
                if header is None:
                    break
                command, arg0, arg1, length, check, magic = HEADER.unpack(header)
                if magic != command ^ 0xFFFFFFFF:
                    LOG.warning("%s: bad magic for command %#x; closing", self.peer, command)
                    break
                if length > max(self.max_payload, MAX_PAYLOAD, 1024 * 1024):
                    LOG.warning("%s: message of %d bytes is too large; closing", self.peer, length)
                    break
                data = self._recv_exact(length) if length else b""
                if data is None:
                    break
                # Like adbd, only clients older than A_VERSION_SKIP_CHECKSUM have their checksums
                # checked, and only once CNXN told us the version (a reconnecting adb server sends
                # its CNXN with a zero checksum).
                if (self.online and self.version < A_VERSION_SKIP_CHECKSUM
                        and (sum(data) & 0xFFFFFFFF) != check):
                    LOG.warning("%s: bad checksum; closing", self.peer)
                    break
                LOG.debug("%s -> %s %#x %#x (%d bytes)", self.peer, _COMMAND_NAMES.get(command, command), arg0, arg1,
                          length)
                self._dispatch(command, arg0, arg1, data)
        except _ConnectionGone:
            pass
        except Exception:  # a bug here must not kill the server, only this connection
            LOG.exception("%s: connection handler failed", self.peer)
        finally:
            self.abort()

    def _dispatch(self, command: int, arg0: int, arg1: int, data: bytes) -> None:
        if command == A_CNXN:
            self._on_cnxn(arg0, arg1, data)
        elif command == A_AUTH:
            self._on_auth(arg0, data)
        elif not self.online:
            LOG.debug("%s: ignoring %#x before the connection is authorised", self.peer, command)
        elif command == A_OPEN:
            self._on_open(arg0, data)
        elif command in (A_OKAY, A_WRTE, A_CLSE):
            with self._streams_lock:
                stream = self._streams.get(arg1)
            if stream is None or (stream.remote_id != arg0 and arg0 != 0):
                return  # a late message for a stream that is already closed
            if command == A_OKAY:
                stream.got_okay()
            elif command == A_WRTE:
                stream.inbox.put(data)
                self.send(A_OKAY, stream.local_id, stream.remote_id)
            else:
                stream.peer_closed()

    # ---- handshake ----------------------------------------------------------------------------
    def _on_cnxn(self, version: int, max_data: int, banner: bytes) -> None:
        self.version = max(A_VERSION_MIN, min(version, A_VERSION))
        self.max_payload = max(MAX_PAYLOAD_V1, min(max_data, self.server.max_payload))
        LOG.info("%s: CNXN version %#x max_data %d banner %r", self.peer, version, max_data, banner[:80])
        self.online = False
        if self.server.auth:
            self._send_token()
        else:
            self._go_online()

    def _send_token(self) -> None:
        self._token = secrets.token_bytes(TOKEN_SIZE)
        self.send(A_AUTH, AUTH_TOKEN, 0, self._token)

    def _go_online(self) -> None:
        self.online = True
        self.send(A_CNXN, self.version, self.max_payload, self.server.banner())

    def _on_auth(self, kind: int, data: bytes) -> None:
        if not self.server.auth or self.online or not self._token:
            return
        if kind == AUTH_SIGNATURE:
            if self.server._verify(self._token, data):
                LOG.info("%s: AUTH signature accepted", self.peer)
                self._go_online()
            else:
                self._send_token()
        elif kind == AUTH_RSAPUBLICKEY:
            if self.server.accept_new_keys:
                try:
                    self.server.trust_key(data.rstrip(b"\0"))
                except ValueError as exc:
                    LOG.warning("%s: bad public key: %s", self.peer, exc)
                    return
                LOG.info("%s: new public key accepted", self.peer)
                self._go_online()
            else:
                LOG.info("%s: public key not accepted; device stays unauthorized", self.peer)

    # ---- services -----------------------------------------------------------------------------
    def _on_open(self, remote_id: int, data: bytes) -> None:
        service = data.rstrip(b"\0").decode("utf-8", "replace")
        kind = _service_kind(service)
        if kind is None or remote_id == 0:
            LOG.info("%s: refusing service %r", self.peer, service)
            self.send(A_CLSE, 0, remote_id)
            return
        self.services_opened += 1
        limit = self.server.drop_after_commands
        if limit is not None and self.services_opened > limit and self.server._take_fault(
                f"drop_after_commands={limit} on {self.peer} at {service!r}"):
            self.abort()
            raise _ConnectionGone()
        self.server._record_service(service)
        with self._streams_lock:
            local_id = self._next_local_id
            self._next_local_id += 1
            stream = _Stream(self, local_id, remote_id, service)
            self._streams[local_id] = stream
        self.send(A_OKAY, local_id, remote_id)
        target = _run_shell if kind == "shell" else _run_sync
        threading.Thread(target=_service_main, args=(target, stream, self.server), daemon=True,
                         name=f"adbd-{kind}-{local_id}").start()


def _service_kind(service: str) -> str | None:
    """``"shell"`` for shell/exec services, ``"sync"`` for ``sync:``, ``None`` for anything else."""
    name = service.split(":", 1)[0]
    if ":" in service and (name == "shell" or name.startswith("shell,") or name == "exec"):
        return "shell"
    if service == "sync:":
        return "sync"
    return None


def _service_main(target: Callable[[_Stream, LoopbackAdbd], None], stream: _Stream, server: LoopbackAdbd) -> None:
    try:
        target(stream, server)
    except Exception:
        LOG.exception("service %r failed", stream.service)
    finally:
        stream.close()


def _run_shell(stream: _Stream, server: LoopbackAdbd) -> None:
    """Run a ``shell``/``exec`` service: ``/bin/sh -c CMD`` in the sandbox.

    With ``v2`` in the service options the output is framed with the shell protocol and the exit
    code is sent last; otherwise stdout and stderr are merged into the raw stream.
    """
    name, _, command = stream.service.partition(":")
    options = name.split(",")[1:]
    v2 = "v2" in options
    command = server.rewrite_command(command)
    argv = ["/bin/sh", "-c", command] if command else ["/bin/sh"]
    env = dict(os.environ)
    env[SANDBOX_ENV] = str(server.sandbox)
    for opt in options:
        if opt.startswith("TERM="):
            env["TERM"] = opt[5:]
    proc = subprocess.Popen(argv, cwd=server.sandbox, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE if v2 else subprocess.STDOUT, start_new_session=True,
                            bufsize=0)
    server._track_process(proc)
    stream.on_abort(lambda: _kill_group(proc))
    if stream.closed:  # the client went away before the callback was registered
        _kill_group(proc)

    def pump(fd: int, packet_id: int) -> None:
        while True:
            try:
                chunk = os.read(fd, SYNC_DATA_MAX)
            except OSError:
                break
            if not chunk:
                break
            payload = SHELL_HEADER.pack(packet_id, len(chunk)) + chunk if v2 else chunk
            if not stream.write(payload):
                _kill_group(proc)
                break

    def feed_stdin() -> None:
        buf = bytearray()
        stdin = proc.stdin
        while True:
            item = stream.inbox.get()
            if item is None:
                break
            if not v2:
                _write_stdin(stdin, item)
                continue
            buf += item
            while len(buf) >= SHELL_HEADER.size:
                packet_id, length = SHELL_HEADER.unpack_from(buf)
                if len(buf) < SHELL_HEADER.size + length:
                    break
                body = bytes(buf[SHELL_HEADER.size:SHELL_HEADER.size + length])
                del buf[:SHELL_HEADER.size + length]
                if packet_id == SHELL_STDIN:
                    _write_stdin(stdin, body)
                elif packet_id == SHELL_CLOSE_STDIN and stdin is not None:
                    _close_quietly(stdin)
        if stdin is not None:
            _close_quietly(stdin)

    assert proc.stdout is not None
    pumps = [threading.Thread(target=pump, args=(proc.stdout.fileno(), SHELL_STDOUT), daemon=True)]
    if v2:
        assert proc.stderr is not None
        pumps.append(threading.Thread(target=pump, args=(proc.stderr.fileno(), SHELL_STDERR), daemon=True))
    threading.Thread(target=feed_stdin, daemon=True).start()
    for t in pumps:
        t.start()
    for t in pumps:
        t.join()
    rc = proc.wait()
    for f in (proc.stdout, proc.stderr):
        if f is not None:
            _close_quietly(f)
    if rc < 0:
        rc = 128 - rc  # killed by a signal: report it as a shell would
    if v2 and not stream.closed:
        stream.write(SHELL_HEADER.pack(SHELL_EXIT, 1) + bytes([rc & 0xFF]))


def _write_stdin(stdin: IO[bytes] | None, data: bytes) -> None:
    """Feed a command's stdin; a command that exited or closed its stdin just loses the data."""
    if stdin is not None:
        with contextlib.suppress(OSError, ValueError):
            stdin.write(data)


def _close_quietly(f: IO[bytes]) -> None:
    with contextlib.suppress(OSError):
        f.close()


class _SyncSession:
    """The ``sync:`` service: a loop of file-sync requests on one stream (SYNC.TXT)."""

    def __init__(self, stream: _Stream, server: LoopbackAdbd) -> None:
        self.stream = stream
        self.server = server
        self._buf = bytearray()

    def read_exact(self, n: int) -> bytes:
        while len(self._buf) < n:
            item = self.stream.inbox.get()
            if item is None:
                raise _StreamClosed()
            self._buf += item
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def reply(self, data: bytes) -> None:
        if not self.stream.write(data):
            raise _StreamClosed()

    def fail(self, message: str) -> None:
        raw = message.encode("utf-8", "replace")
        self.reply(SYNC_HEADER.pack(b"FAIL", len(raw)) + raw)

    def run(self) -> None:
        try:
            while True:
                request_id, length = SYNC_HEADER.unpack(self.read_exact(SYNC_HEADER.size))
                if request_id == b"QUIT":
                    return
                if request_id not in (b"STAT", b"STA2", b"LST2", b"LIST", b"SEND", b"RECV"):
                    self.fail(f"unknown sync request {request_id!r}")
                    return
                if length > SYNC_PATH_MAX:
                    self.fail(f"path too long ({length} bytes, the limit is {SYNC_PATH_MAX})")
                    return
                path = self.read_exact(length).decode("utf-8", "surrogateescape")
                LOG.debug("sync %s %s", request_id.decode(), path)
                getattr(self, "_do_" + request_id.decode().lower())(path)
        except _StreamClosed:
            return

    def _host(self, path: str) -> Path:
        return self.server.host_path(path)

    def _do_stat(self, path: str) -> None:
        try:
            st = os.lstat(self._host(path))
            self.reply(SYNC_STAT_V1.pack(b"STAT", st.st_mode & 0xFFFFFFFF, st.st_size & 0xFFFFFFFF,
                                         int(st.st_mtime) & 0xFFFFFFFF))
        except (OSError, _OutsideSandbox):
            self.reply(SYNC_STAT_V1.pack(b"STAT", 0, 0, 0))

    def _stat_v2(self, tag: bytes, path: str, follow: bool) -> None:
        try:
            host = self._host(path)
            st = os.stat(host) if follow else os.lstat(host)
            self.reply(SYNC_STAT_V2.pack(tag, 0, st.st_dev, st.st_ino, st.st_mode, st.st_nlink, st.st_uid, st.st_gid,
                                         st.st_size, int(st.st_atime), int(st.st_mtime), int(st.st_ctime)))
        except _OutsideSandbox:
            self.reply(SYNC_STAT_V2.pack(tag, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))  # ENOENT
        except OSError as exc:
            self.reply(SYNC_STAT_V2.pack(tag, exc.errno or 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))

    def _do_sta2(self, path: str) -> None:
        self._stat_v2(b"STA2", path, follow=True)

    def _do_lst2(self, path: str) -> None:
        self._stat_v2(b"LST2", path, follow=False)

    def _do_list(self, path: str) -> None:
        out = bytearray()
        try:
            host = self._host(path)
            with os.scandir(host) as entries:
                for entry in entries:
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    name = os.fsencode(entry.name)
                    out += SYNC_DENT.pack(b"DENT", st.st_mode & 0xFFFFFFFF, st.st_size & 0xFFFFFFFF,
                                          int(st.st_mtime) & 0xFFFFFFFF, len(name)) + name
        except (OSError, _OutsideSandbox):
            pass
        out += SYNC_DENT.pack(b"DONE", 0, 0, 0, 0)
        self.reply(bytes(out))

    def _do_recv(self, path: str) -> None:
        try:
            f = open(self._host(path), "rb")  # noqa: SIM115 - closed by the "with f" below
        except _OutsideSandbox:
            self.fail(f"{path}: outside the loopback device sandbox {self.server.sandbox}")
            return
        except OSError as exc:
            self.fail(f"{path}: {exc.strerror}")
            return
        # Several DATA packets go in one WRTE when the max payload allows: fewer round trips.
        limit = max(self.stream.conn.max_payload, SYNC_HEADER.size + SYNC_DATA_MAX)
        out = bytearray()
        with f:
            while True:
                chunk = f.read(SYNC_DATA_MAX)
                if not chunk:
                    break
                if len(out) + SYNC_HEADER.size + len(chunk) > limit:
                    self.reply(bytes(out))
                    out.clear()
                out += SYNC_HEADER.pack(b"DATA", len(chunk)) + chunk
        if len(out) + SYNC_HEADER.size > limit:
            self.reply(bytes(out))
            out.clear()
        self.reply(bytes(out + SYNC_HEADER.pack(b"DONE", 0)))

    def _do_send(self, spec: str) -> None:
        path, _, mode_text = spec.rpartition(",")
        if not path:
            path, mode_text = spec, "33188"  # 0o100644
        error: str | None = None
        tmp: Path | None = None
        out = None
        try:
            mode = int(mode_text)
            host = self._host(path)
            host.parent.mkdir(parents=True, exist_ok=True)
            if statmod.S_ISDIR(os.stat(host).st_mode if host.exists() else 0):
                raise IsADirectoryError(21, "Is a directory")
            tmp = host.with_name(f".{host.name}.loopback-{secrets.token_hex(4)}")
            out = open(tmp, "wb")  # noqa: SIM115 - closed in the "finally" below
        except _OutsideSandbox:
            error = f"{path}: outside the loopback device sandbox {self.server.sandbox}"
        except ValueError:
            error = f"bad SEND request {spec!r}"
        except OSError as exc:
            error = f"{path}: {exc.strerror}"
        symlink = error is None and statmod.S_ISLNK(mode)
        link_target = bytearray()
        mtime = 0
        try:
            while True:
                packet_id, length = SYNC_HEADER.unpack(self.read_exact(SYNC_HEADER.size))
                if packet_id == b"DONE":
                    mtime = length
                    break
                if packet_id != b"DATA" or length > SYNC_DATA_MAX:
                    error = error or f"unexpected sync packet {packet_id!r} ({length} bytes) during SEND"
                    if out is not None:
                        out.close()
                    if tmp is not None:
                        tmp.unlink(missing_ok=True)
                    self.fail(error)
                    raise _StreamClosed()
                data = self.read_exact(length)
                if error is not None:
                    continue
                if symlink:
                    link_target += data
                    continue
                try:
                    assert out is not None
                    out.write(data)
                except OSError as exc:
                    error = f"{path}: {exc.strerror}"
        finally:
            if out is not None:
                out.close()
        if error is None:
            try:
                assert tmp is not None
                if symlink:
                    tmp.unlink(missing_ok=True)
                    host.unlink(missing_ok=True)
                    os.symlink(os.fsdecode(bytes(link_target)), host)
                else:
                    os.chmod(tmp, statmod.S_IMODE(mode) or 0o644)
                    os.utime(tmp, (mtime, mtime))
                    os.replace(tmp, host)
            except OSError as exc:
                error = f"{path}: {exc.strerror}"
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        if error is not None:
            self.fail(error)
        else:
            self.reply(SYNC_HEADER.pack(b"OKAY", 0))


def _run_sync(stream: _Stream, server: LoopbackAdbd) -> None:
    _SyncSession(stream, server).run()


class LoopbackAdbd:
    """A loopback ADB device served from a background thread (see the module docstring).

    Args:
        sandbox: host directory that stands for the device's storage (created if missing).
        port: TCP port on ``host``; 0 picks a free one (read :attr:`port` after :meth:`start`).
        auth: require ADB authentication.
        trusted_keys: public keys (``adbkey.pub`` text or paths) whose signatures are accepted.
        accept_new_keys: accept an ``AUTH RSAPUBLICKEY`` (as if the user allowed the prompt).
        drop_after_commands, drop_after_bytes, max_faults: fault injection, see :meth:`set_faults`.
        map_prefix: device path prefix mapped onto the sandbox (``None``: no mapping).
        features: feature names advertised in the ``CNXN`` banner.
        max_payload: the device's largest message payload (the client's may be smaller).
    """

    def __init__(self, sandbox: str | os.PathLike[str], port: int = 0, *, host: str = "127.0.0.1",
                 auth: bool = False, trusted_keys: Iterable[str | bytes | os.PathLike[str]] = (),
                 accept_new_keys: bool = False, drop_after_commands: int | None = None,
                 drop_after_bytes: int | None = None, max_faults: int | None = None,
                 map_prefix: str | None = DEFAULT_MAP_PREFIX, features: Iterable[str] = DEFAULT_FEATURES,
                 max_payload: int = MAX_PAYLOAD, props: dict[str, str] | None = None) -> None:
        self.sandbox = Path(sandbox).resolve()
        self.sandbox.mkdir(parents=True, exist_ok=True)
        self.host = host
        self._requested_port = port
        self.port = port
        self.auth = auth
        self.accept_new_keys = accept_new_keys
        self.map_prefix = map_prefix.rstrip("/") if map_prefix else None
        self.features = tuple(features)
        self.max_payload = max_payload
        self.props = dict(DEFAULT_PROPS if props is None else props)
        self.drop_after_commands = drop_after_commands
        self.drop_after_bytes = drop_after_bytes
        self.max_faults = max_faults
        self.faults_fired = 0
        self.connections_accepted = 0
        self.services: list[str] = []
        self._trusted: list[RsaPublicKey] = [_load_key(k) for k in trusted_keys]
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[_Connection] = set()
        self._processes: list[subprocess.Popen[bytes]] = []
        self._stopping = threading.Event()

    # ---- public API ---------------------------------------------------------------------------
    @property
    def serial(self) -> str:
        """The ``adb`` serial of this device, ``host:port``."""
        return f"{self.host}:{self.port}"

    def banner(self) -> bytes:
        """The ``CNXN`` banner: ``device::`` properties and the advertised features."""
        props = "".join(f"{k}={v};" for k, v in self.props.items())
        return f"device::{props}features={','.join(self.features)}".encode()

    def start(self) -> LoopbackAdbd:
        """Listen and serve connections in a daemon thread; returns ``self``."""
        if self._thread is not None:
            return self
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self._requested_port))
        listener.listen(16)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._stopping.clear()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True, name=f"loopback-adbd-{self.port}")
        self._thread.start()
        LOG.info("loopback adbd listening on %s, sandbox %s", self.serial, self.sandbox)
        return self

    def stop(self) -> None:
        """Close the listener and every connection, kill running commands, join the thread."""
        self._stopping.set()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._thread = None
        self._listener = None
        self.drop_connections()
        with self._lock:
            procs, self._processes = self._processes, []
        for proc in procs:
            _kill_group(proc)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)

    def drop_connections(self) -> int:
        """Reset every open connection now (as a cable pull would); returns how many."""
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            conn.abort()
        return len(conns)

    @property
    def connection_count(self) -> int:
        """How many client connections are open now."""
        with self._lock:
            return len(self._connections)

    def set_faults(self, *, drop_after_commands: int | None = None, drop_after_bytes: int | None = None,
                   max_faults: int | None = None) -> None:
        """Configure fault injection (applies at once, also to open connections).

        ``drop_after_commands=N``: reset a connection when its (N+1)-th shell/exec/sync service is
        opened. ``drop_after_bytes=N``: reset a connection instead of sending the ``WRTE`` that takes
        its total ``WRTE`` payload past N bytes. ``max_faults``: how many more faults may fire
        (``None``: no limit). Call with no arguments to switch faults off.
        """
        with self._lock:
            self.drop_after_commands = drop_after_commands
            self.drop_after_bytes = drop_after_bytes
            self.max_faults = None if max_faults is None else self.faults_fired + max_faults

    def trust_key(self, key: str | bytes | os.PathLike[str]) -> None:
        """Add a public key (``adbkey.pub`` text or path) to the trusted keys."""
        parsed = _load_key(key)
        with self._lock:
            self._trusted.append(parsed)

    def host_path(self, device_path: str) -> Path:
        """Map a device path to the host path it stands for (see the module docstring).

        Raises :class:`_OutsideSandbox` when the result is not inside the sandbox.
        """
        root = str(self.sandbox)
        p = device_path
        prefix = self.map_prefix
        if prefix and (p == prefix or p.startswith(prefix + "/")):
            p = root + p[len(prefix):]
        if not os.path.isabs(p):
            p = os.path.join(root, p)
        p = os.path.normpath(p)
        if p != root and not p.startswith(root + os.sep):
            raise _OutsideSandbox(device_path)
        return Path(p)

    def rewrite_command(self, command: str) -> str:
        """Replace the map prefix by the sandbox path in a shell command's text."""
        if not self.map_prefix:
            return command
        pattern = re.escape(self.map_prefix) + r"(?![\w.-])"
        root = str(self.sandbox)
        return re.sub(pattern, lambda _m: root, command)

    def __enter__(self) -> LoopbackAdbd:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- internals ----------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                sock, addr = self._listener.accept()
            except OSError:
                break
            if self._stopping.is_set():
                sock.close()
                break
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Connection(self, sock, f"{addr[0]}:{addr[1]}")
            with self._lock:
                self._connections.add(conn)
                self.connections_accepted += 1
            threading.Thread(target=conn.run, daemon=True, name=f"adbd-conn-{addr[1]}").start()

    def _forget_connection(self, conn: _Connection) -> None:
        with self._lock:
            self._connections.discard(conn)

    def _take_fault(self, what: str) -> bool:
        """Consume one fault from the budget; True if the fault should fire."""
        with self._lock:
            if self.max_faults is not None and self.faults_fired >= self.max_faults:
                return False
            self.faults_fired += 1
        LOG.info("fault injected: %s", what)
        return True

    def _record_service(self, service: str) -> None:
        with self._lock:
            self.services.append(service)

    def _track_process(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._processes = [p for p in self._processes if p.poll() is None]
            self._processes.append(proc)

    def _verify(self, token: bytes, signature: bytes) -> bool:
        with self._lock:
            keys = list(self._trusted)
        return any(verify_token_signature(k, token, signature) for k in keys)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: serve until interrupted."""
    parser = argparse.ArgumentParser(description="Serve a loopback ADB device on 127.0.0.1.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5555, help="TCP port (0: pick a free one; default 5555)")
    parser.add_argument("--sandbox", required=True, help="host directory that stands for the device storage")
    parser.add_argument("--auth", action="store_true", help="require ADB authentication")
    parser.add_argument("--trusted-key", action="append", default=[], metavar="ADBKEY_PUB",
                        help="public key file whose signatures are accepted (repeatable)")
    parser.add_argument("--accept-new-keys", action="store_true",
                        help="accept keys sent with AUTH RSAPUBLICKEY (as if the user allowed the prompt)")
    parser.add_argument("--drop-after-commands", type=int, default=None, metavar="N")
    parser.add_argument("--drop-after-bytes", type=int, default=None, metavar="N")
    parser.add_argument("--max-faults", type=int, default=None, metavar="N")
    parser.add_argument("--map-prefix", default=DEFAULT_MAP_PREFIX,
                        help=f"device path prefix mapped onto the sandbox (default {DEFAULT_MAP_PREFIX}; '' for none)")
    parser.add_argument("-v", "--verbose", action="count", default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING - 10 * min(args.verbose, 2),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    server = LoopbackAdbd(args.sandbox, args.port, host=args.host, auth=args.auth, trusted_keys=args.trusted_key,
                          accept_new_keys=args.accept_new_keys, drop_after_commands=args.drop_after_commands,
                          drop_after_bytes=args.drop_after_bytes, max_faults=args.max_faults,
                          map_prefix=args.map_prefix or None)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server.start()
    print(f"loopback adbd listening on {server.serial} (sandbox {server.sandbox}); "
          f"connect with: adb connect {server.serial}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
