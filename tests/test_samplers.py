"""Strategy path sampling: seeding, checkpointable state, options validated by each strategy, SPOS
uniform-constraint sampling over MACs / latency ranges, the GreedyNAS pool, epsilon schedule,
multi-path filtering and the stopping principle (only after the exploration schedule, full pool)."""

import io
import json

import numpy as np
import pytest
import torch

from conftest import tiny_space
from hwnas.cost import CostModel
from hwnas.errors import HwnasError
from hwnas.train.config import TrainConfig, parse_range
from hwnas.train.loop import lr_factor, write_pool_json
from hwnas.train.strategies import (RunContext, create_strategy, parse_assignments,
                                    parse_strategy_options, strategy_names)
from hwnas.train.strategies.greedy import GreedyStrategy
from hwnas.train.strategies.pool import CandidatePool


def _roundtrip(state):
    """Through torch.save / torch.load(weights_only=True), as in a checkpoint."""
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def make(name, space, options=None, *, seed=0, epochs=1, steps_per_epoch=1, costs=None, **kw):
    run = RunContext.for_sampling(space, seed=seed, epochs=epochs, steps_per_epoch=steps_per_epoch,
                                  costs=costs, **kw)
    return create_strategy(name, options or {}, run)


def genes(strategy, step):
    (run,) = strategy.paths(step)
    return run.genes


def test_registry_unknown_strategy_and_options_are_one_line_errors():
    assert {"uniform", "constrained", "greedy"} <= set(strategy_names())
    s = tiny_space("mbv2")
    with pytest.raises(HwnasError, match="unknown strategy 'spos'; allowed: uniform, constrained, greedy"):
        make("spos", s)
    cases = [
        ("uniform", {"m": 3}, "strategy 'uniform' has no option 'm'; allowed: paths=1"),
        ("greedy", {"q": 3}, "strategy 'greedy' has no option 'q'; allowed: m=10, k=5, pool_size=auto"),
        ("greedy", {"k": "20"}, "strategy 'greedy': option k must lie in 1..m (10), got 20"),
        ("greedy", {"m": "ten"}, "strategy 'greedy': option m must be an integer, got 'ten'"),
        ("greedy", {"early_stop": "maybe"}, "option early_stop must be true or false, got 'maybe'"),
        ("constrained", {"cost": "energy"}, "option cost must be macs or latency, got 'energy'"),
        ("constrained", {"range": "4M,2M"}, "option range must be LO,HI with 0 <= LO <= HI, got 4e+06,2e+06"),
        ("constrained", {"range": "abc"}, "option range: range must be LO,HI"),
        ("constrained", {"bins": 0}, "option bins must be >= 1, got 0"),
    ]
    for name, opts, msg in cases:
        with pytest.raises(HwnasError) as exc:
            parse_strategy_options(name, opts)
        assert msg in str(exc.value) and "\n" not in str(exc.value), str(exc.value)
    typed = parse_strategy_options("greedy", {"m": "12", "k": "3", "early_stop": "false", "warmup_steps": "0.1"})
    assert (typed.m, typed.k, typed.early_stop, typed.warmup_steps) == (12, 3, False, 0.1)
    assert parse_strategy_options("constrained", {"range": "2M,4.5M"}).range == (2e6, 4.5e6)
    assert parse_assignments(["m=10", "pool-size=5", "range=2M,4M"]) == {"m": "10", "pool_size": "5", "range": "2M,4M"}
    with pytest.raises(HwnasError, match="--opt takes KEY=VALUE"):
        parse_assignments(["m"])


def test_uniform_is_seeded_and_resumes_exactly():
    s = tiny_space("mbv2")
    a, b, c = make("uniform", s, seed=5), make("uniform", s, seed=5), make("uniform", s, seed=6)
    seq_a = [genes(a, i) for i in range(20)]
    assert seq_a == [genes(b, i) for i in range(20)]
    assert seq_a != [genes(c, i) for i in range(20)]
    assert all(len(g) == s.num_genes for g in seq_a) and len(set(seq_a)) == 20
    state = _roundtrip(a.state_dict())
    d = make("uniform", s, seed=999)
    d.load_state_dict(state)
    assert [genes(a, i) for i in range(10)] == [genes(d, i) for i in range(10)]
    g = GreedyStrategy(parse_strategy_options("greedy", {}), RunContext.for_sampling(s),
                       score_fn=lambda p: np.zeros(len(p)))
    with pytest.raises(HwnasError, match="strategy state is for 'uniform', not 'greedy'"):
        g.load_state_dict(state)


def test_constrained_fixed_range_respects_it():
    s = tiny_space("mbv2")
    macs = CostModel(s)(s.sample_many(np.random.default_rng(0), 2000))["macs"]
    lo, hi = np.percentile(macs, [40, 60])
    smp = make("constrained", s, {"range": (lo, hi), "bins": 1}, seed=1)
    paths = [genes(smp, i) for i in range(60)]
    got = CostModel(s)(np.array(paths))["macs"]
    assert ((got >= lo) & (got <= hi)).all()
    assert len(set(paths)) > 50  # still random within the range
    assert 0.05 < smp.stats()["acceptance"] < 0.5  # ~20 % of uniform paths fall in the band
    state = _roundtrip(smp.state_dict())
    twin = make("constrained", s, {"range": (lo, hi), "bins": 1}, seed=7)
    twin.load_state_dict(state)
    assert [genes(smp, i) for i in range(5)] == [genes(twin, i) for i in range(5)]


def test_constrained_as_published_draws_a_random_range_per_step_and_covers_every_level():
    """SPOS Sec. 3.2: a random range per step, then uniform paths until one is inside it. Uniform
    sampling concentrates on the middle of the MACs span; per-range sampling spreads evenly."""
    s = tiny_space("mbv2")
    smp = make("constrained", s, {"bins": 5}, seed=2)
    assert len(smp.bins) == 5 and smp.skipped == []
    lo, hi = smp.lo, smp.hi
    probe = CostModel(s)(s.sample_many(np.random.default_rng(3), 4096))["macs"]
    assert np.mean((probe >= lo) & (probe <= hi)) == pytest.approx(0.98, abs=0.01)  # central 98 %
    paths = [genes(smp, i) for i in range(300)]
    got = CostModel(s)(np.array(paths))["macs"]
    assert ((got >= lo) & (got <= hi)).all()
    counts = smp.end_epoch(0)["bin_counts"]
    assert sum(counts) == 300 and min(counts) >= 40  # each of 5 ranges ~60 times
    edges = np.linspace(lo, hi, 6)
    per_bin = np.histogram(got, bins=edges)[0]
    uniform = np.histogram(probe[(probe >= lo) & (probe <= hi)], bins=edges)[0] / 4096 * 300
    assert per_bin.min() >= 40 and uniform.min() < 25  # uniform sampling starves the extreme ranges
    state = _roundtrip(smp.state_dict())
    twin = make("constrained", s, {"bins": 5}, seed=2)
    twin.load_state_dict(state)
    assert [genes(smp, i) for i in range(5)] == [genes(twin, i) for i in range(5)]
    assert smp.describe()["bins_used"] == [list(b) for b in smp.bins]


def test_constrained_impossible_range_names_the_space_limits():
    s = tiny_space("mbv2")
    cm = CostModel(s)
    lo_macs = int(cm(np.array([s.smallest()]))["macs"][0])
    hi_macs = int(cm(np.array([s.largest()]))["macs"][0])
    with pytest.raises(HwnasError) as exc:
        make("constrained", s, {"range": (hi_macs + 1, hi_macs * 2)})
    msg = str(exc.value)
    assert f"{lo_macs:,}" in msg and f"{hi_macs:,}" in msg and "MACs" in msg
    # the range of the smallest architecture alone is feasible but (almost) never drawn uniformly
    tight = make("constrained", s, {"range": (lo_macs, lo_macs), "bins": 1})
    tight.max_draws = 2048
    with pytest.raises(HwnasError, match="widen the range"):
        tight.paths(0)


def test_constrained_latency_ranges_come_from_the_latency_cost():
    s = tiny_space("mbv2")
    calls = []

    def fake_latency_ms(m):  # a stand-in predictor: 1 ms per non-skip layer
        calls.append(m.shape)
        skip = np.array([s.choices[i] - 1 if s.choices[i] == 7 else -1 for i in range(s.num_genes)])
        return (m != skip).sum(axis=1).astype(float)

    smp = make("constrained", s, {"cost": "latency", "range": (14, 15), "bins": 1},
               costs={"latency": fake_latency_ms})
    paths = np.array([genes(smp, i) for i in range(20)])
    assert set(fake_latency_ms(paths)) <= {14.0, 15.0} and calls
    with pytest.raises(HwnasError, match=r"no architecture .* latency \(ms\) in \[100, 200\].*over 4096 sampled"):
        make("constrained", s, {"cost": "latency", "range": (100, 200)}, costs={"latency": fake_latency_ms})
    with pytest.raises(HwnasError, match="a latency range needs --device"):
        make("constrained", s, {"cost": "latency"})


def test_candidate_pool_keeps_the_lowest_losses_in_order():
    rng = np.random.default_rng(0)
    pool = CandidatePool(10)
    offered = {}
    for i in range(200):
        g = (i, int(rng.integers(5)))
        loss = float(rng.random())
        offered[g] = loss
        pool.push(g, loss)
    assert len(pool) == 10
    best = sorted(offered.items(), key=lambda kv: kv[1])[:10]
    assert pool.sorted() == best
    assert pool.worst_loss() == best[-1][1]
    assert not pool.push((999, 0), best[-1][1] + 1.0)  # worse than all: rejected
    assert pool.push((998, 0), -1.0) and pool.sorted()[0] == ((998, 0), -1.0)  # evicts the worst
    assert best[-1][0] not in pool
    g0 = pool.sorted()[3][0]
    pool.push(g0, 5.0)  # re-scored: takes the newest loss, stays in the pool
    assert pool.sorted()[-1] == (g0, 5.0) and len(pool) == 10
    twin = CandidatePool(1)
    twin.load_state_dict(_roundtrip(pool.state_dict()))
    assert twin.sorted() == pool.sorted() and twin.capacity == 10
    picks = {pool.sample(np.random.default_rng(i)) for i in range(200)}
    assert picks == pool.genes()  # U(P) reaches every entry


def _greedy(space, score, total=100, per_epoch=None, **kw):
    opts = dict(m=6, k=3, pool_size=8, warmup_steps=10, eps_ramp=1.0)
    opts.update(kw)
    run = RunContext.for_sampling(space, seed=3, epochs=1 if per_epoch is None else total // per_epoch,
                                  steps_per_epoch=total if per_epoch is None else per_epoch)
    return GreedyStrategy(parse_strategy_options("greedy", opts), run, score_fn=score)


def _sum_score(paths):
    return np.array([float(sum(p)) for p in paths])


def test_greedy_eps_schedule_and_uniform_warmup():
    s = tiny_space("mbv2")
    calls = []

    def score(paths):
        calls.append(len(paths))
        return _sum_score(paths)

    smp = _greedy(s, score, total=110, warmup_steps=10, eps_max=0.8)
    assert smp.eps(0) == smp.eps(10) == 0.0
    assert smp.eps(60) == pytest.approx(0.4)
    assert smp.eps(110) == pytest.approx(0.8) and smp.eps(500) == pytest.approx(0.8)
    half = _greedy(s, score, total=110, warmup_steps=10, eps_ramp=0.5)
    assert half.eps(35) == pytest.approx(0.4) and half.eps(60) == pytest.approx(0.8) and half.ramp_end == 60
    for step in range(10):
        smp.paths(step)
    assert calls == []  # warm-up is plain uniform sampling: nothing scored
    smp.paths(10)
    assert calls == [6]
    paper = GreedyStrategy(parse_strategy_options("greedy", {}),
                           RunContext.for_sampling(s, epochs=100, steps_per_epoch=1251), score_fn=score)
    assert (paper.m, paper.k, paper.pool.capacity, paper.eps_max, paper.alpha, paper.warmup_steps) == \
        (10, 5, 1000, 0.8, 0.08, 10_000)


def test_greedy_pool_size_explicit_then_recipe_then_paper_proportion():
    o = parse_strategy_options("greedy", {})
    assert o.resolved_pool_size(1251) == 1000 and o.resolved_pool_size(5000) == 1000
    assert o.resolved_pool_size(39) == 31  # 0.8 of the steps per epoch, as 1000 of ImageNet's 1251
    assert o.resolved_pool_size(1) == 5  # never below k
    assert o.resolved_pool_size(39, recipe_pool_size=32) == 32
    assert parse_strategy_options("greedy", {"pool_size": 7}).resolved_pool_size(39, 32) == 7
    assert o.resolved_warmup_steps(1_000_000) == 10_000  # the paper's 10K iterations
    assert o.resolved_warmup_steps(400) == 60  # capped at 15 % of a short run
    assert parse_strategy_options("greedy", {"warmup_steps": 0.25}).resolved_warmup_steps(400) == 100


def test_greedy_trains_the_best_k_of_m_and_fills_the_pool():
    s = tiny_space("mbv2")
    rounds = []

    def score(paths):
        rounds.append(list(paths))
        return _sum_score(paths)

    smp = _greedy(s, score, warmup_steps=0)
    trained = [genes(smp, step) for step in range(9)]  # 3 rounds of k=3 single-path steps
    assert len(rounds) == 3
    for r, cands in enumerate(rounds):
        best3 = sorted(cands, key=lambda p: (sum(p)))[:3]
        assert sorted(trained[3 * r:3 * r + 3], key=sum) == best3
    entries = smp.pool.sorted()
    assert len(entries) == 8 and [v for _, v in entries] == sorted(v for _, v in entries)
    assert all(v == sum(g) for g, v in entries)


def test_greedy_samples_from_the_pool_with_probability_eps():
    s = tiny_space("mbv2")
    smp = _greedy(s, _sum_score, total=4000, warmup_steps=0, eps_max=0.8, m=10, k=5, pool_size=50)
    for step in range(4000):
        smp.paths(step)
    # eps rises linearly 0 -> 0.8: on average 0.4 of the candidates come from the pool
    assert smp.from_pool / smp.candidates == pytest.approx(0.4, abs=0.03)


def _run_epochs(smp, epochs, per_epoch):
    freqs = []
    for epoch in range(epochs):
        for step in range(epoch * per_epoch, (epoch + 1) * per_epoch):
            smp.paths(step)
        out = smp.end_epoch(epoch)
        if "pool_update_freq" in out:
            freqs.append((epoch, out["pool_update_freq"]))
        if smp.should_stop:
            return epoch, freqs
    return None, freqs


def test_greedy_stopping_principle_fires_only_after_the_exploration_schedule():
    s = tiny_space("mbv2")
    # a fixed loss per path: the pool converges to the best paths seen and stops changing
    smp = _greedy(s, _sum_score, total=10_000, per_epoch=25, warmup_steps=0, m=10, k=5, pool_size=20,
                  eps_ramp=0.5)
    stopped_at, freqs = _run_epochs(smp, 400, 25)
    assert stopped_at is not None and freqs[-1][1] <= 0.08 < max(f for _, f in freqs)
    assert "GreedyNAS Sec. 4.1.2 stopping principle" in smp.stop_reason and "full pool of 20" in smp.stop_reason
    # the pool settled long before eps reached 0.8 at step 5000 (epoch 200), yet no stop before it
    assert (stopped_at + 1) * 25 >= smp.ramp_end == 5000
    assert any(f <= 0.08 for e, f in freqs if (e + 1) * 25 < 5000)
    assert smp.earliest_stop_epoch() <= stopped_at + 1
    # same run without early stopping keeps going
    never = _greedy(s, _sum_score, total=10_000, per_epoch=25, warmup_steps=0, m=10, k=5, pool_size=20,
                    eps_ramp=0.5, early_stop=False)
    assert _run_epochs(never, stopped_at + 2, 25)[0] is None
    assert "stopping rule off" in never.notes()[0]


def test_greedy_does_not_stop_on_a_pool_that_is_not_full_and_says_so():
    s = tiny_space("mbv2")
    smp = _greedy(s, _sum_score, total=30, per_epoch=6, warmup_steps=0, pool_size=1000)
    assert _run_epochs(smp, 5, 6)[0] is None and len(smp.pool) < 1000
    note = smp.notes()[0]
    assert "cannot fire within 5 epochs" in note and "full pool of 1000" in note and "all epochs train" in note


def test_greedy_state_roundtrip_continues_identically(tmp_path):
    s = tiny_space("mbv2")
    a = _greedy(s, _sum_score, warmup_steps=2)
    for step in range(7):  # mid-round: the queue of kept paths is part of the state
        a.paths(step)
    a.end_epoch(0)
    b = _greedy(s, _sum_score, warmup_steps=2)
    b.load_state_dict(_roundtrip(a.state_dict()))
    assert [genes(a, i) for i in range(7, 30)] == [genes(b, i) for i in range(7, 30)]
    assert a.pool.sorted() == b.pool.sorted()
    write_pool_json(tmp_path / "pool.json", a.pool_json())
    data = json.loads((tmp_path / "pool.json").read_text())
    losses = [e["loss"] for e in data["entries"]]
    assert losses == sorted(losses) and len(losses) == len(a.pool)
    assert data["space"] == s.config() and data["strategy"] == "greedy"
    assert all(len(e["genes"]) == s.num_genes for e in data["entries"])


def test_config_recipes_lr_scaling_and_warmup_schedule():
    digits = TrainConfig(data="digits")
    resolved, record = digits.resolve()
    assert (resolved.batch_size, resolved.epochs) == (64, 30) and record["recipe"]["name"] == "digits"
    assert record["from_recipe"] == ["batch_size", "epochs", "lr"]
    assert resolved.base_lr(1) == pytest.approx(0.1) and resolved.base_lr(2) == pytest.approx(0.2)
    mine, rec = TrainConfig(data="digits", batch_size=64, epochs=3, lr=0.2).resolve()
    assert (mine.batch_size, mine.epochs, mine.base_lr(4)) == (64, 3, 0.2) and rec["from_recipe"] == []
    assert TrainConfig(data="digits", batch_size=32).base_lr(1) == pytest.approx(0.05)  # scaled to the batch
    paper, rec = TrainConfig(data="imagefolder:/x").resolve()
    assert (paper.batch_size, paper.epochs, paper.base_lr(1)) == (1024, 120, pytest.approx(0.12))
    assert rec["recipe"]["name"] == "paper"
    assert parse_range("2M,4.5M") == (2e6, 4.5e6) and parse_range("100k:0.2G") == (1e5, 2e8)
    # linear warm-up from 0 over 4 steps, then cosine to 0 at step 12
    f = [lr_factor(s, 12, 4) for s in range(13)]
    assert f[:4] == [0.25, 0.5, 0.75, 1.0] and f[4] == 1.0 and f[8] == pytest.approx(0.5) and f[12] == 0.0
    assert [lr_factor(s, 12) for s in range(3)] == [1.0, pytest.approx(0.9829629), pytest.approx(0.9330127)]


def test_configs_stored_before_the_seam_still_load(tmp_path):
    from pathlib import Path

    fx = json.loads((Path(__file__).parent / "fixtures" / "legacy_train_configs.json").read_text())
    g = TrainConfig.from_dict(fx["greedy"])
    assert g.strategy == "greedy" and g.options == {"m": 6, "k": 3, "pool_size": 50, "score_batch": 1000,
                                                    "eps_max": 0.8, "warmup_steps": 0.1, "alpha": 0.1,
                                                    "early_stop": False, "eps_ramp": 1.0}
    assert (g.batch_size, g.epochs) == (1024, 120)
    c = TrainConfig.from_dict(fx["constrained"])
    assert c.options == {"range": [2e5, 4e5], "bins": 1}
    assert TrainConfig.from_dict(c.to_dict()) == c


def test_greedy_one_epoch_run_resumed_to_eight_does_not_stop_at_epoch_two():
    """The new-user case: 19 steps per epoch, pool 16; a 1-epoch run resumed with 8 epochs. Fixed
    path losses make the pool settle at once, so only the schedule can hold the rule back."""
    s = tiny_space("mbv2")

    def build(epochs):
        run = RunContext.for_sampling(s, seed=1, epochs=epochs, steps_per_epoch=19)
        return GreedyStrategy(parse_strategy_options("greedy", {"pool_size": 16, "alpha": 1.0}), run,
                              score_fn=_sum_score)

    first = build(1)
    assert _run_epochs(first, 1, 19)[0] is None
    resumed = build(8)
    resumed.load_state_dict(_roundtrip(first.state_dict()))
    assert resumed.earliest_stop_epoch() == 5 and "may end the run from epoch 5" in resumed.notes()[0]
    stopped = None
    for epoch in range(1, 8):
        for step in range(epoch * 19, (epoch + 1) * 19):
            resumed.paths(step)
        resumed.end_epoch(epoch)
        if resumed.should_stop:
            stopped = epoch + 1
            break
    assert stopped == 5  # alpha=1 fires at the first chance: after the exploration schedule
