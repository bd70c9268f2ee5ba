"""Packaging: the built wheel carries the device profiles and shipped latency tables, and they are
found from the installed package (not from a source checkout); the dependency bounds in
pyproject.toml hold for the environment the tests run in; ``hwnas --version``."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import hwnas
from conftest import run_cli
from hwnas.latency.table import LatencyTable

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_ships_profiles_and_tables_and_finds_them_installed(tmp_path: Path) -> None:
    src = tmp_path / "src"  # a clean copy: no build/ leftovers of the checkout get into the wheel
    shutil.copytree(REPO / "hwnas", src / "hwnas", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist"), str(src)], check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("hwnas-*.whl")
    assert wheel.name.startswith(f"hwnas-{hwnas.__version__}-")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        z.extractall(tmp_path / "site")  # a pure-Python wheel installs by unpacking
    shipped = {p.relative_to(REPO / "hwnas").as_posix()
               for d in ("device_profiles", "latency_tables") for p in (REPO / "hwnas" / d).rglob("*") if p.is_file()}
    assert shipped and {f"hwnas/{s}" for s in shipped} <= names
    probe = textwrap.dedent("""
        import hwnas, sys
        from hwnas.devices.profiles import list_profiles, load_profile
        from hwnas.latency.table import LatencyTable, default_table_dir, table_path
        assert hwnas.__file__.startswith(sys.argv[1]), hwnas.__file__
        print(",".join(list_profiles()))
        t = LatencyTable.load(table_path("host", "mbv2", "tflite", default_table_dir()))
        print(len(t.entries), load_profile("s22").runtime("tflite").delegates[0])
    """)
    out = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(tmp_path / 'site')!r}); "
                          f"exec({probe!r})", str(tmp_path / "site")],
                         check=True, capture_output=True, text=True).stdout.split("\n")
    assert out[0].split(",") == ["host", "mate50", "s22", "sd855-hdk", "tab-s8", "watch"]
    shipped_table = LatencyTable.load(REPO / "hwnas" / "latency_tables" / "host" / "mbv2-tflite.json")
    assert out[1].split() == [str(len(shipped_table.entries)), "xnnpack"]


def test_dependency_bounds_hold_for_the_tested_environment() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    for text in project["dependencies"] + project["optional-dependencies"]["dev"]:
        req = Requirement(text)
        version = metadata.version(req.name)
        assert req.specifier.contains(version, prereleases=True), f"{req.name} {version} outside {req.specifier}"


def test_version_option(capsys) -> None:
    code, out, _ = run_cli(["--version"], capsys)
    assert code == 0 and out.strip() == f"hwnas {hwnas.__version__}"
