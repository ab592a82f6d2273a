"""Per-layer bit-flip targets within an accuracy budget, from a sensitivity sweep on a
real BERT-style model (MiniLM by default).

BitWave flips "weight-flip-non-sensitive layers to more zero columns (4-7), while for
weight-flip-sensitive layers to less zero columns (1-4) or leave untouched" (the paper,
as quoted in the research note, 1.5). Here sensitivity is measured, not assumed:

1. sweep: for every linear layer l and Z in 1..7, the model with only layer l INT8
   (per output channel) and flipped to Z zero columns, all else float; its loss is
   1 - cosine(sentence embedding, float model's embedding), averaged over the texts;
2. plan: each layer takes the largest Z whose own loss is at most budget / layers
   (its share of the budget); then the whole model runs with every layer flipped to
   its Z, and while its loss exceeds the budget the layer whose loss at its current Z
   is largest steps down one Z (to 0, INT8 without flips).

`zero_cols_for_codes` is what `bit-flip{budget=B}` calls: it finds which layer of the
model a tensor is (its per-channel INT8 codes equal that layer's) and returns the
plan's Z for it. Sweeps are cached per process.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from sparsec.tensors.bitcolumn import bit_flip
from sparsec.tensors.quantization import quantize_values

PROJECTIONS = ("attention.self.query", "attention.self.key", "attention.self.value",
               "attention.output.dense", "intermediate.dense", "output.dense")
ZERO_COLS = tuple(range(1, 8))
SWEEP_TOKENS = 48
"""Tokens of the default text the sweep embeds (short: the sweep runs 36 x 7 forwards)."""


class BudgetError(ValueError):
    """The budget cannot be applied (no model, tensor not one of its layers)."""


def linear_names(num_layers: int) -> list[str]:
    return [f"encoder.layer.{n}.{p}.weight" for n in range(num_layers) for p in PROJECTIONS]


def flipped_weight(weight: np.ndarray, zero_cols: int, group: int) -> np.ndarray:
    """A checkpoint weight [out, in] as INT8 per output channel with Z zero columns per
    group of `group` inputs, dequantized (float32, the model's type)."""
    w = weight.T.astype(np.float64)                         # K x N, channels along axis 1
    q = quantize_values(w, 8, True, 1)
    codes = bit_flip(q.codes, zero_cols, group, 0)
    return (codes * q.scale[None, :]).T.astype(np.float32)


@dataclass
class Sweep:
    """Per layer, the embedding-cosine loss at each Z (layer alone INT8 and flipped)."""

    losses: dict[str, dict[int, float]] = field(default_factory=dict)


@dataclass
class Plan:
    """Per layer Z, the whole model's loss with every layer flipped, and the sweep."""

    zero_cols: dict[str, int]
    loss: float
    budget: float
    sweep: Sweep

    @property
    def feasible(self) -> bool:
        """False when INT8 alone (Z = 0 everywhere) already exceeds the budget."""
        return self.loss <= self.budget

    def sensitive(self, threshold: int = 3) -> list[str]:
        """Layers the plan leaves below `threshold` zero columns."""
        return [name for name, z in self.zero_cols.items() if z < threshold]


def _loss(model, texts: list[str], reference: list[np.ndarray]) -> float:  # noqa: ANN001
    cosines = [float(np.dot(model.encode(t), r)) for t, r in zip(texts, reference, strict=True)]
    return 1.0 - float(np.mean(cosines))


def _load(model_name: str):  # noqa: ANN202
    from sparsec.tensors.workloads import BertModel, WorkloadError

    try:
        return BertModel.from_path_or_package(model_name)
    except WorkloadError as err:
        raise BudgetError(f"budget needs the model {model_name}: {err}") from None


def sweep(model, texts: list[str], group: int, zero_cols: tuple[int, ...] = ZERO_COLS,  # noqa: ANN001
          progress=None) -> Sweep:  # noqa: ANN001
    """The per-layer sensitivity sweep (restores the model's weights afterwards)."""
    reference = [model.encode(t) for t in texts]
    result = Sweep()
    for name in linear_names(model.config.num_hidden_layers):
        original = model.weights[name]
        result.losses[name] = {}
        for z in zero_cols:
            model.weights[name] = flipped_weight(original, z, group)
            result.losses[name][z] = _loss(model, texts, reference)
            if progress is not None:
                progress()
        model.weights[name] = original
    return result


def plan(model, texts: list[str], budget: float, group: int, swept: Sweep) -> Plan:  # noqa: ANN001
    """Per-layer Z within `budget` (see the module docstring)."""
    names = list(swept.losses)
    share = budget / len(names)
    chosen = {name: max([0, *[z for z, loss in swept.losses[name].items() if loss <= share]])
              for name in names}
    reference = [model.encode(t) for t in texts]
    originals = {name: model.weights[name] for name in names}
    try:
        while True:
            for name in names:
                model.weights[name] = flipped_weight(originals[name], chosen[name], group)
            loss = _loss(model, texts, reference)
            flipped = [n for n in names if chosen[n] > 0]
            if loss <= budget or not flipped:
                return Plan(chosen, loss, budget, swept)
            worst = max(flipped, key=lambda n: swept.losses[n].get(chosen[n], 0.0))
            chosen[worst] -= 1
    finally:
        model.weights.update(originals)


@functools.lru_cache(maxsize=8)
def budget_plan(model_name: str, budget: float, group: int) -> tuple[Plan, object]:
    """The plan for a model (cached per process), with the loaded model. BLAS runs one
    thread: small forwards are several times faster so on a shared machine."""
    from threadpoolctl import threadpool_limits

    model = _load(model_name)
    texts = [model.default_text(SWEEP_TOKENS)]
    with threadpool_limits(1):
        swept = sweep(model, texts, group)
        return plan(model, texts, budget, group, swept), model


def identify_layer(codes: np.ndarray, reduction_axis: int, model) -> str:  # noqa: ANN001
    """The checkpoint name of the linear layer whose per-channel INT8 codes these are."""
    kn = codes if reduction_axis == 0 else codes.T
    for name in linear_names(model.config.num_hidden_layers):
        weight = model.weights[name]
        if weight.T.shape != kn.shape:
            continue
        if np.array_equal(quantize_values(weight.T.astype(np.float64), 8, True, 1).codes, kn):
            return name
    raise BudgetError("the weight's INT8 codes match no linear layer of the model; "
                      "budget plans come from a real model's sweep: give zero_cols=Z instead")


def zero_cols_for_codes(codes: np.ndarray, reduction_axis: int, channel_axis: int | None,
                        budget: float, group: int, model_name: str) -> tuple[int, str]:
    """The plan's Z for the layer these codes belong to, and the layer's name."""
    if channel_axis is None or channel_axis == reduction_axis:
        raise BudgetError("budget plans are made for INT8 per output channel; run "
                          "quantize{bits=8 per_channel=true} first")
    model = _load(model_name)
    name = identify_layer(codes, reduction_axis, model)
    chosen, _ = budget_plan(model_name, budget, group)
    return chosen.zero_cols[name], name
