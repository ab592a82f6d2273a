"""`prune-runtime`: runtime importance pruning of the activations entering matmuls.

Every `sparsec.matmul` whose selected operand (`operand=a`, the activation, by default)
is a runtime value gets `sparsec.prune_activations` in front of it (dialects/kv.py;
semantics tensors/runtime_pruning.py): activations whose estimated contribution is below
`threshold` are zeroed as they arrive, so the products they feed are skipped. Estimates:
`abs` (|a|) or `abs_w` (|a| * max_n |W[k, n]|, the weight's offline row magnitude; the
weight must be a `param`); `relative=true` makes the threshold a fraction of each row's
largest estimate. Token pruning by accumulated attention (RTP) needs the attention of
earlier decode steps, so it runs in the decode loop (tensors/controller.py), not here.

Error report: each pruned activation's op records the pass, and, when its values are
known at compile time (an `in` tensor's default source stands in), the fraction pruned,
the skipped fraction of products and the relative error of the product
||X W - X' W|| / ||X W||.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter
from xdsl.utils.exceptions import PassFailedException

from sparsec.dialects.kv import ESTIMATES, PruneActivationsOp
from sparsec.dialects.sparsec import InputOp, MatmulOp, ParamOp
from sparsec.tensors.datastore import current_store, enclosing_kernel, store_key
from sparsec.tensors.runtime_pruning import prune_activations

NAME = "prune-runtime"


def _fail(rule: str, op: MatmulOp | None = None) -> PassFailedException:
    where = f" {op.name}:" if op is not None else ""
    return PassFailedException(f"{NAME}:{where} {rule}")


def _values(value) -> np.ndarray | None:
    owner = value.owner
    if not isinstance(owner, (InputOp, ParamOp)):
        return None
    store = current_store()
    key = store_key(enclosing_kernel(owner), owner.sym_name)
    return np.asarray(store.get(key), dtype=np.float64) if key in store else None


@dataclass(frozen=True)
class PruneRuntimePass(ModulePass):
    """Runtime activation pruning, e.g. `prune-runtime{threshold=0.1 estimate=abs_w relative=true}`."""

    name: ClassVar[str] = NAME

    threshold: float = 0.05
    estimate: str = "abs"
    relative: bool = False
    operand: str = "a"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if self.estimate not in ESTIMATES:
            raise _fail(f"estimate must be abs or abs_w, got '{self.estimate}'")
        if not self.threshold >= 0 or (self.relative and self.threshold > 1):
            raise _fail(f"threshold must be >= 0 (and <= 1 when relative), got {self.threshold}")
        if self.operand not in ("a", "b"):
            raise _fail(f"operand must be a or b (the activation side), got '{self.operand}'")
        matmuls = [m for m in op.walk() if isinstance(m, MatmulOp)]
        if not matmuls:
            raise _fail("no sparsec.matmul to prune the activations of")
        for matmul in matmuls:
            self._prune(matmul)

    def _prune(self, matmul: MatmulOp) -> None:
        index = 0 if self.operand == "a" else 1
        activation = matmul.operands[index]
        weight = matmul.operands[1 - index]
        if isinstance(activation.owner, ParamOp):
            raise _fail(f"operand {self.operand} is a param (known at compile time): prune it "
                        "offline with prune-magnitude; prune-runtime is for activations", matmul)
        if isinstance(activation.owner, PruneActivationsOp):
            raise _fail("its activation is already pruned at run time; prune once", matmul)
        transposed = (matmul.transpose_a is not None) if index == 0 else (matmul.transpose_b is not None)
        if transposed or index == 1:
            raise _fail("prune-runtime takes the activation as the [M, K] left operand "
                        "(operand=a, no transpose_a)", matmul)
        use_weight = self.estimate == "abs_w"
        if use_weight and not isinstance(weight.owner, ParamOp):
            raise _fail("estimate abs_w needs the weight's row magnitudes offline: the weight "
                        "must be a param", matmul)
        transpose_w = matmul.transpose_b is not None
        pruned = PruneActivationsOp(activation, self.threshold, self.estimate, self.relative,
                                    weight if use_weight else None, transpose_w)
        Rewriter.insert_op(pruned, InsertPoint.before(matmul))
        matmul.operands[index] = pruned.result
        self._report(matmul, activation, weight, transpose_w)

    def _report(self, matmul: MatmulOp, activation, weight, transpose_w: bool) -> None:
        owner = activation.owner
        if not isinstance(owner, (InputOp, ParamOp)):
            return
        x, w = _values(activation), _values(weight)
        label = (f"{NAME}{{threshold={self.threshold:g} estimate={self.estimate}"
                 f"{' relative=true' if self.relative else ''}}}")
        if x is None or w is None or x.ndim != 2:
            owner.record_effect({"pass": label, "note": "values unknown at compile time"})
            return
        w = w.T if transpose_w else w
        result = prune_activations(x, self.threshold, w, self.estimate, self.relative)
        exact = x @ w
        norm = float(np.linalg.norm(exact))
        error = float(np.linalg.norm(exact - result.values @ w)) / norm if norm else 0.0
        owner.record_effect({"pass": label, "pruned": float(1 - result.kept.mean()),
                             "skipped_products": result.skipped_fraction,
                             "rel_error": error, "decide_ops": result.decide_ops})
