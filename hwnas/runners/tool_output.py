"""Line handling shared by the parsers of benchmark tools (``benchmark_model``,
``onnxruntime_perf_test``): decoding, ``adb logcat`` and ``INFO:`` prefixes, quoting a tool's
first lines in error messages."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from hwnas.devices.parsers import NUM, decode_output

KV_RE = re.compile(rf"([A-Za-z][A-Za-z0-9_]*)=({NUM})")

# adb logcat prefixes: "-v time", "-v threadtime" and "-v brief".
_LOGCAT_PREFIXES = (
    re.compile(r"^\d\d-\d\d\s+\d\d:\d\d:\d\d\.\d+\s+([VDIWEF])/[^(]*\(\s*\d+\):\s?"),
    re.compile(r"^\d\d-\d\d\s+\d\d:\d\d:\d\d\.\d+\s+\d+\s+\d+\s+([VDIWEF])\s+[^:]*?:\s?"),
    re.compile(r"^([VDIWEF])/[^(]*\(\s*\d+\):\s?"),
)
_LOGCAT_LEVELS = {"V": "VERBOSE", "D": "DEBUG", "I": "INFO", "W": "WARNING", "E": "ERROR",
                  "F": "FATAL"}
_LEVEL_RE = re.compile(r"^(INFO|VERBOSE|WARNING|ERROR|DEBUG|FATAL): ?")
ERRORISH_RE = re.compile(r"(?i)\b(failed|error|not found|cannot|could not|unable)\b")


@dataclass(frozen=True)
class Line:
    level: str | None  # INFO / VERBOSE / WARNING / ERROR ... or None for bare lines
    text: str  # the line without logcat and level prefixes; leading tabs kept (tables)

    @property
    def display(self) -> str:
        return f"{self.level}: {self.text.strip()}" if self.level else self.text.strip()


def split_lines(text: str | bytes) -> list[Line]:
    lines: list[Line] = []
    for raw in decode_output(text).split("\n"):
        raw = raw.rstrip()
        level: str | None = None
        for prefix in _LOGCAT_PREFIXES:
            m = prefix.match(raw)
            if m:
                level = _LOGCAT_LEVELS[m.group(1)]
                raw = raw[m.end():]
                break
        m = _LEVEL_RE.match(raw)
        if m:
            level = m.group(1)
            raw = raw[m.end():]
        lines.append(Line(level, raw))
    return lines


def quote(lines: Iterable[str], limit: int = 5, width: int = 200) -> str:
    picked = [ln.strip()[:width] for ln in lines if ln.strip()][:limit]
    return " | ".join(picked) if picked else "(no output)"


def num(text: str) -> float:
    return float(text)
