"""The canary guard (hwnas.runners.quiet): waits out a disturbed device, measures again a block
whose closing check failed, commits only blocks that passed, and gives up after its limits."""

from pathlib import Path

import pytest

from hwnas.runners.quiet import BASELINE_SAMPLES, QuietGuard, measure_guarded, runner_canary


def scripted(values):
    it = iter(values)
    return lambda: next(it)


def test_guard_waits_until_the_canary_is_back_near_its_best():
    pauses = []
    # baseline 1.0 1.0 1.0, then a disturbed episode (1.3, 1.25) and back to 1.02
    g = QuietGuard(scripted([1.0, 1.0, 1.0, 1.3, 1.25, 1.02]), pause_s=0.5, sleep=pauses.append)
    assert g.wait_quiet()
    assert pauses == [0.5, 0.5] and g.waited_s == 1.0 and g.best_ms == 1.0
    assert len(g.history) == BASELINE_SAMPLES + 3


def test_a_noisy_canary_widens_the_tolerance():
    """Baseline spread 20 %: a 30 % slower check passes (within 2 x 20 %), 50 % does not."""
    g = QuietGuard(scripted([1.0, 1.2, 1.1, 1.3, 1.5]), sleep=lambda s: None)
    assert g.check() and g.effective_tolerance == pytest.approx(0.4)
    assert not g.check()


def test_guard_gives_up_after_max_wait():
    g = QuietGuard(scripted([1.0] * 3 + [2.0] * 10), pause_s=1.0, max_wait_s=3.0, sleep=lambda s: None)
    assert not g.wait_quiet()
    assert g.gave_up == 1 and g.waited_s == 3.0
    # the total budget: once spent, a disturbed check no longer waits at all
    g = QuietGuard(scripted([1.0] * 3 + [2.0] * 10), pause_s=1.0, max_wait_s=10.0, max_total_wait_s=2.0,
                   sleep=lambda s: None)
    assert not g.wait_quiet() and g.waited_s == 2.0
    assert not g.wait_quiet() and g.waited_s == 2.0 and g.gave_up == 2
    with pytest.raises(ValueError, match="tolerance"):
        QuietGuard(lambda: 1.0, tolerance=0.0)


def test_guarded_blocks_are_measured_again_when_the_closing_check_fails():
    # canary: baseline + quiet before block 1, DISTURBED after block 1 -> block 1 again:
    # quiet before, quiet after; block 2: quiet before, quiet after
    canary = scripted([1.0, 1.0, 1.0, 1.0, 1.4, 1.0, 1.0, 1.0, 1.0])
    g = QuietGuard(canary, sleep=lambda s: None)
    measured, committed = [], []

    def measure(x):
        measured.append(x)
        return x * 10

    redone = measure_guarded([1, 2, 3], measure, lambda x, r: committed.append((x, r)), g, block=2)
    assert redone == 1
    assert measured == [1, 2, 1, 2, 3]
    assert committed == [(1, 10), (2, 20), (3, 30)]  # each item once, from a quiet block


def test_guarded_blocks_keep_the_last_attempt_after_max_retries():
    g = QuietGuard(scripted([1.0] * 3 + [1.0, 2.0] * 10), sleep=lambda s: None, max_wait_s=0.0)
    committed = []
    redone = measure_guarded(["a"], lambda x: x, lambda x, r: committed.append(r), g, block=4, max_retries=2)
    assert redone == 2 and committed == ["a"]


def test_without_a_guard_every_item_is_measured_once():
    committed = []
    assert measure_guarded([1, 2], lambda x: -x, lambda x, r: committed.append(r), None) == 0
    assert committed == [-1, -2]
    with pytest.raises(ValueError, match="block"):
        measure_guarded([1], lambda x: x, lambda x, r: None, None, block=0)


def test_runner_canary_times_a_real_model(tmp_path: Path):
    """The guard around a real runner and model: a quiet host passes its check."""
    import torch

    from hwnas.devices.profiles import load_profile
    from hwnas.export import export_onnx
    from hwnas.runners.base import MeasureConfig
    from hwnas.runners.registry import create_runner

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU()).eval()
    path = export_onnx(model, tmp_path / "c.onnx", torch.randn(1, 3, 32, 32), metadata=None, dynamo=False)
    runner = create_runner("onnx-host", load_profile("host"))
    g = runner_canary(runner, path, MeasureConfig(warmup=2, runs=20, cool_down=False),
                      tolerance=0.5, max_wait_s=5.0)
    quiet = g.wait_quiet()
    assert g.best_ms is not None and g.best_ms > 0 and len(g.history) > BASELINE_SAMPLES
    # the answer agrees with what the guard saw: quiet means the last check was within tolerance
    # of the best, and a False answer is counted in gave_up
    last_ok = g.history[-1] <= (1.0 + g.effective_tolerance) * g.best_ms
    assert quiet is last_ok and g.gave_up == int(not quiet)
