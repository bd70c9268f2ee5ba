"""The documentation runs: every ``python`` block of docs/spaces.md and docs/api.md is executed, page
by page and in order, in one fresh interpreter (blocks that start with ``# not run by the docs
test`` are skipped: they need a phone or minutes of CPU)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP = "# not run by the docs test"


def python_blocks(page: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", page.read_text(encoding="utf-8"), flags=re.S | re.M)


PAGES = ("spaces.md", "api.md")


def test_documented_python_runs(tmp_path):
    run = []
    for page in PAGES:
        blocks = [b for b in python_blocks(ROOT / "docs" / page) if not b.startswith(SKIP)]
        assert len(blocks) >= 2, f"docs/{page} lost its examples"
        run += blocks
    script = tmp_path / "doc.py"
    script.write_text("\n".join(run), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_relative_links_of_readme_and_docs_resolve():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not broken, "broken links: " + ", ".join(broken)
