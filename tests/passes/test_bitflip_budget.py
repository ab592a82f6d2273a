"""bit-flip{budget=B}: the per-layer plan from a sensitivity sweep, on a small stand-in
model (the real MiniLM sweep runs in benchmarks/bitwave_real_layers.py)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from sparsec.compiler.driver import CompileOptions, compile_text
from sparsec.tensors import bitflip_budget as budget
from sparsec.tensors.datastore import store_key


class StandIn:
    """A one-layer 'model' whose embedding is its normalised weights: flipping a layer
    with larger weights (relative to the rest) costs more cosine."""

    def __init__(self, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.config = SimpleNamespace(num_hidden_layers=1)
        names = budget.linear_names(1)
        self.weights = {name: (rng.normal(0, 1 + 3 * i, (24, 32))).astype(np.float32)
                        for i, name in enumerate(names)}

    def encode(self, text: str) -> np.ndarray:
        v = np.concatenate([self.weights[n].ravel() for n in budget.linear_names(1)])
        return (v / np.linalg.norm(v)).astype(np.float64)

    def default_text(self, tokens: int) -> str:
        return "stand-in"


def test_plan_meets_its_budget_and_grows_with_it() -> None:
    model = StandIn()
    swept = budget.sweep(model, ["t"], 16)
    before = {k: v.copy() for k, v in model.weights.items()}
    plans = [budget.plan(model, ["t"], b, 16, swept) for b in (1e-5, 1e-3, 1e-1)]
    for p in plans:      # within budget, or INT8 alone (no flips anywhere) exceeds it
        assert p.loss <= p.budget or not any(p.zero_cols.values())
    assert plans[-1].loss <= plans[-1].budget and any(plans[-1].zero_cols.values())
    for small, large in zip(plans, plans[1:], strict=False):
        assert all(large.zero_cols[n] >= small.zero_cols[n] for n in small.zero_cols)
    assert all(np.array_equal(before[k], model.weights[k]) for k in before)   # restored
    # losses grow with Z for every layer
    for losses in swept.losses.values():
        values = [losses[z] for z in sorted(losses)]
        assert values[-1] >= values[0]


def test_budget_pass_flips_each_layer_to_its_planned_zero_columns(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = StandIn()
    monkeypatch.setattr(budget, "_load", lambda name: model)
    budget.budget_plan.cache_clear()
    name = budget.linear_names(1)[4]
    np.save(tmp_path / "w.npy", model.weights[name].T.astype(np.float64))
    text = ("kernel k {\n  in X: f64[2, 32] = random(seed=1)\n"
            f"  param W: f64[32, 24] = load(\"{tmp_path / 'w.npy'}\")\n"
            "  Y = matmul(X, W)\n  out Y\n}\n")
    compiled = compile_text(text, CompileOptions(
        pipeline="quantize{bits=8 per_channel=true},bit-flip{budget=0.001 group=16}", lower=False))
    planned, _ = budget.budget_plan("stand-in", 0.001, 16)
    z = planned.zero_cols[name]
    effects = str(next(op for op in compiled.module.walk() if op.name == "sparsec.param").effect_list())
    assert f"bit-flip{{zero_cols={z} group=16}}" in effects and name in effects
    codes = compiled.store.get(store_key("k", "W") + "#q")
    from sparsec.tensors import bitcolumn as bc
    kept = bc.kept_magnitude_columns(bc.column_masks(codes, 16, 0))
    assert kept.max() <= 7 - z
    budget.budget_plan.cache_clear()


def test_unknown_weight_is_refused() -> None:
    model = StandIn()
    with pytest.raises(budget.BudgetError, match="match no linear layer"):
        budget.identify_layer(np.zeros((32, 24), dtype=np.int64), 0, model)
