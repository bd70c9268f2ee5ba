"""Path samplers: seeding, checkpointable state, the constrained range, the GreedyNAS pool,
epsilon schedule, multi-path filtering and stopping principle."""

import io
import json

import numpy as np
import pytest
import torch

from conftest import tiny_space
from hwnas.cost import CostModel
from hwnas.errors import HwnasError
from hwnas.train.config import TrainConfig, parse_range
from hwnas.train.loop import write_pool_json
from hwnas.train.samplers import (CandidatePool, GreedySampler, SamplerContext, create_sampler,
                                  sampler_names)



def _roundtrip(state):
    """Through torch.save / torch.load(weights_only=True), as in a checkpoint."""
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def test_registry_and_unknown_strategy():
    assert {"uniform", "constrained", "greedy"} <= set(sampler_names())
    with pytest.raises(HwnasError, match="unknown strategy 'spos'; allowed: uniform, constrained, greedy"):
        create_sampler("spos", tiny_space("mbv2"))


def test_uniform_is_seeded_and_resumes_exactly():
    s = tiny_space("mbv2")
    a = create_sampler("uniform", s, SamplerContext(seed=5))
    b = create_sampler("uniform", s, SamplerContext(seed=5))
    c = create_sampler("uniform", s, SamplerContext(seed=6))
    seq_a = [a.paths(i)[0] for i in range(20)]
    assert seq_a == [b.paths(i)[0] for i in range(20)]
    assert seq_a != [c.paths(i)[0] for i in range(20)]
    assert all(len(g) == s.num_genes for g in seq_a) and len(set(seq_a)) == 20
    state = _roundtrip(a.state_dict())
    d = create_sampler("uniform", s, SamplerContext(seed=999))
    d.load_state_dict(state)
    assert [a.paths(i)[0] for i in range(10)] == [d.paths(i)[0] for i in range(10)]
    g = create_sampler("greedy", s, SamplerContext(score_fn=lambda p: np.zeros(len(p))))
    with pytest.raises(HwnasError, match="sampler state is for strategy 'uniform', not 'greedy'"):
        g.load_state_dict(state)


def test_constrained_respects_the_macs_range():
    s = tiny_space("mbv2")
    macs = CostModel(s)(s.sample_many(np.random.default_rng(0), 2000))["macs"]
    lo, hi = np.percentile(macs, [40, 60])
    smp = create_sampler("constrained", s, SamplerContext(seed=1), cost_range=(lo, hi))
    paths = [smp.paths(i)[0] for i in range(60)]
    got = CostModel(s)(np.array(paths))["macs"]
    assert ((got >= lo) & (got <= hi)).all()
    assert len(set(paths)) > 50  # still random within the range
    assert 0.05 < smp.stats()["acceptance"] < 0.5  # ~20 % of uniform paths fall in the band
    state = _roundtrip(smp.state_dict())
    twin = create_sampler("constrained", s, SamplerContext(seed=7), cost_range=(lo, hi))
    twin.load_state_dict(state)
    assert [smp.paths(i)[0] for i in range(5)] == [twin.paths(i)[0] for i in range(5)]


def test_constrained_impossible_range_names_the_space_limits():
    s = tiny_space("mbv2")
    cm = CostModel(s)
    lo_macs = int(cm(np.array([s.smallest()]))["macs"][0])
    hi_macs = int(cm(np.array([s.largest()]))["macs"][0])
    with pytest.raises(HwnasError) as exc:
        create_sampler("constrained", s, cost_range=(hi_macs + 1, hi_macs * 2))
    msg = str(exc.value)
    assert f"{lo_macs:,}" in msg and f"{hi_macs:,}" in msg and "MACs" in msg
    with pytest.raises(HwnasError, match="needs a MACs range"):
        create_sampler("constrained", s)
    with pytest.raises(HwnasError, match="lower bound .* above the upper bound"):
        create_sampler("constrained", s, cost_range=(5, 1))
    # the range of the smallest architecture alone is feasible but (almost) never drawn uniformly
    tight = create_sampler("constrained", s, cost_range=(lo_macs, lo_macs))
    tight.max_draws = 2048
    with pytest.raises(HwnasError, match="widen the range"):
        tight.paths(0)


def test_constrained_uses_a_latency_predictor_hook():
    s = tiny_space("mbv2")
    calls = []

    def fake_latency_ms(m):  # a stand-in predictor: 1 ms per non-skip layer
        calls.append(m.shape)
        skip = np.array([s.choices[i] - 1 if s.choices[i] == 7 else -1 for i in range(s.num_genes)])
        return (m != skip).sum(axis=1).astype(float)

    smp = create_sampler("constrained", s, SamplerContext(cost_fn=fake_latency_ms), cost_range=(14, 15))
    paths = np.array([smp.paths(i)[0] for i in range(20)])
    assert set(fake_latency_ms(paths)) <= {14.0, 15.0} and calls
    with pytest.raises(HwnasError, match=r"no architecture .* cost in \[100, 200\].*over 4096 sampled"):
        create_sampler("constrained", s, SamplerContext(cost_fn=fake_latency_ms), cost_range=(100, 200))


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


def _greedy(space, score, total=100, **kw):
    opts = dict(m=6, k=3, pool_size=8, warmup_steps=10)
    opts.update(kw)
    return create_sampler("greedy", space, SamplerContext(seed=3, total_steps=total, score_fn=score), **opts)


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
    for step in range(10):
        smp.paths(step)
    assert calls == []  # warm-up is plain uniform sampling: nothing scored
    smp.paths(10)
    assert calls == [6]
    paper = GreedySampler(s, score_fn=score, total_steps=1)
    assert (paper.m, paper.k, paper.pool.capacity, paper.eps_max, paper.alpha, paper.warmup_steps) == \
        (10, 5, 1000, 0.8, 0.08, 10_000)


def test_greedy_trains_the_best_k_of_m_and_fills_the_pool():
    s = tiny_space("mbv2")
    rounds = []

    def score(paths):
        rounds.append(list(paths))
        return _sum_score(paths)

    smp = _greedy(s, score, warmup_steps=0)
    trained = [smp.paths(step)[0] for step in range(9)]  # 3 rounds of k=3 single-path steps
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


def test_greedy_stopping_principle():
    s = tiny_space("mbv2")
    # a fixed loss per path: the pool converges to the best paths seen and stops changing
    smp = _greedy(s, _sum_score, total=10_000, warmup_steps=0, m=10, k=5, pool_size=20, eps_max=0.8)
    freqs, stopped_at = [], None
    for epoch in range(400):
        for step in range(epoch * 25, (epoch + 1) * 25):
            smp.paths(step)
        out = smp.end_epoch(epoch)
        if "pool_update_freq" in out:
            freqs.append(out["pool_update_freq"])
        if smp.should_stop:
            stopped_at = epoch
            break
    assert stopped_at is not None and freqs[-1] <= 0.08 < max(freqs)
    assert "GreedyNAS stopping principle" in smp.stop_reason
    # same run without early stopping, or with alpha=0, keeps going
    never = _greedy(s, _sum_score, total=10_000, warmup_steps=0, m=10, k=5, pool_size=20, early_stop=False)
    for epoch in range(stopped_at + 2):
        for step in range(epoch * 25, (epoch + 1) * 25):
            never.paths(step)
        never.end_epoch(epoch)
    assert not never.should_stop


def test_greedy_does_not_stop_on_a_pool_that_is_not_full():
    s = tiny_space("mbv2")
    smp = _greedy(s, _sum_score, warmup_steps=0, pool_size=1000)
    for epoch in range(5):
        for step in range(epoch * 6, (epoch + 1) * 6):
            smp.paths(step)
        smp.end_epoch(epoch)
    assert not smp.should_stop and len(smp.pool) < 1000


def test_greedy_state_roundtrip_continues_identically(tmp_path):
    s = tiny_space("mbv2")
    a = _greedy(s, _sum_score, warmup_steps=2)
    for step in range(7):  # mid-round: the queue of kept paths is part of the state
        a.paths(step)
    a.end_epoch(0)
    b = _greedy(s, _sum_score, warmup_steps=2)
    b.load_state_dict(_roundtrip(a.state_dict()))
    assert [a.paths(i)[0] for i in range(7, 30)] == [b.paths(i)[0] for i in range(7, 30)]
    assert a.pool.sorted() == b.pool.sorted()
    write_pool_json(tmp_path / "pool.json", a.pool_json())
    data = json.loads((tmp_path / "pool.json").read_text())
    losses = [e["loss"] for e in data["entries"]]
    assert losses == sorted(losses) and len(losses) == len(a.pool)
    assert data["space"] == s.config() and data["strategy"] == "greedy"
    assert all(len(e["genes"]) == s.num_genes for e in data["entries"])


def test_config_scales_greedy_defaults_for_short_runs():
    cfg = TrainConfig(strategy="greedy")
    assert cfg.resolved_warmup_steps(1_000_000) == 10_000  # the paper's 10K iterations
    assert cfg.resolved_warmup_steps(400) == 60  # capped at 15 % of a short run
    assert cfg.replace(warmup_steps=0.25).resolved_warmup_steps(400) == 100
    assert cfg.resolved_pool_size(1251) == 1000 and cfg.resolved_pool_size(19) == 19
    assert cfg.base_lr(1) == pytest.approx(0.12) and cfg.replace(batch_size=256).base_lr(2) == pytest.approx(0.06)
    assert parse_range("2M,4.5M") == (2e6, 4.5e6) and parse_range("100k:0.2G") == (1e5, 2e8)
    with pytest.raises(HwnasError, match="--greedy-k must lie in 1..--greedy-m"):
        TrainConfig(greedy_m=3, greedy_k=4)
