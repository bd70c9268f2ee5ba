"""The documentation runs: every ``python`` block of docs/spaces.md and docs/api.md is executed, page
by page and in order, in one namespace (blocks that start with ``# not run by the docs test`` are
skipped: they need a phone or minutes of CPU)."""

from __future__ import annotations

import re
from pathlib import Path

from hwnas.spaces import registry

ROOT = Path(__file__).resolve().parents[1]
SKIP = "# not run by the docs test"
PAGES = ("spaces.md", "api.md")


def python_blocks(page: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", page.read_text(encoding="utf-8"), flags=re.S | re.M)


def test_documented_python_runs(tmp_path, monkeypatch):
    # the pages register a space of their own: keep it out of the registry the other tests see
    monkeypatch.setattr(registry, "_SPACES", dict(registry._SPACES))
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for page in PAGES:
        blocks = [b for b in python_blocks(ROOT / "docs" / page) if not b.startswith(SKIP)]
        assert len(blocks) >= 2, f"docs/{page} lost its examples"
        for i, block in enumerate(blocks):
            exec(compile(block, f"docs/{page} block {i}", "exec"), namespace)
