"""``python tests/plugin_main.py ARGS``: the ``hwnas`` CLI with the test plug-in strategies registered
(what a user's own launcher script does; used under torchrun by test_ddp.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import plugin_strategies  # noqa: E402,F401  (registers test-distill)
from hwnas.cli import main  # noqa: E402

if __name__ == "__main__":
    main(sys.argv[1:])
