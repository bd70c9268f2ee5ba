"""Shared fixtures: tiny versions of the spaces so tests run in seconds on a laptop CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hwnas.spaces import create_space, space_names

#: every registered space: generic tests iterate the registry, so a new space is tested by them at once.
SPACE_NAMES = tuple(space_names())


def tiny_space(name: str, resolution: int = 32, num_classes: int = 10, width: float = 0.25):
    return create_space(name, width=width, resolution=resolution, num_classes=num_classes)


@pytest.fixture(params=SPACE_NAMES)
def space_name(request) -> str:
    return request.param


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _user_tables(tmp_path_factory, monkeypatch):
    """Your-tables folder of every test (and its subprocesses): a fresh temporary one, never the
    home folder of whoever runs the tests."""
    monkeypatch.setenv("HWNAS_TABLES_DIR", str(tmp_path_factory.mktemp("user-tables")))


@pytest.fixture(autouse=True)
def _seed_torch():
    torch.manual_seed(0)
    torch.set_num_threads(1)  # deterministic and no oversubscription on a 2-core machine
    yield


def run_cli(args, capsys):
    """Run the ``hwnas`` CLI in process: ``(exit code, stdout, stderr)``."""
    from hwnas.cli import main

    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code
    o = capsys.readouterr()
    return code, o.out, o.err
