"""`prune-runtime`: runtime importance pruning of the activations entering matmuls.

Every `sparsec.matmul` whose selected operand (`operand=a`, the activation, by default)
is a runtime value gets `sparsec.prune_activations` in front of it (dialects/kv.py;
semantics tensors/runtime_pruning.py): activations whose estimated contribution is below
`threshold` are zeroed as they arrive, so the products they feed are skipped. Estimates:
`abs` (|a|) or `abs_w` (|a| * max_n |W[k, n]|, the weight's offline row magnitude; the
weight must be a `param`); `relative=true` makes the threshold a fraction of each row's
largest estimate.

`tokens=T` (> 0) instead prunes the *tokens* of every decode attention (RTP-like): the
kernel carries the accumulated-importance state of its cached tokens as an input (`state`,
default `importance`, f32[3, S]: attention received summed over heads, steps seen, alive;
S the cached tokens, the step's own tokens are new), `sparsec.prune_tokens` decides from it
which tokens stay (threshold T relative to uniform attention; the `sink` first, the
`recent` last and tokens seen fewer than `min_seen` steps are kept) and the attention
takes the flags as its `keep` operand. The decode loop (tensors/controller.py) decides
with the same function (tensors/runtime_pruning.py `decide_tokens`) on the same state.

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
from xdsl.dialects.builtin import (
    DictionaryAttr,
    FloatAttr,
    IntegerAttr,
    ModuleOp,
    StringAttr,
    f64,
    i64,
)
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter
from xdsl.utils.exceptions import PassFailedException

from sparsec.dialects import block
from sparsec.dialects.kv import ESTIMATES, KvCompressOp, PruneActivationsOp, PruneTokensOp
from sparsec.dialects.sparsec import InputOp, MatmulOp, ParamOp
from sparsec.tensors.datastore import (
    current_store,
    enclosing_function,
    enclosing_kernel,
    store_key,
)
from sparsec.tensors.runtime_pruning import decide_tokens, prune_activations

NAME = "prune-runtime"
TOKEN_ATTR = "sparsec.token_pruning"
"""Attention-op attribute: the token-pruning rule, its state input and (when the state's
values are known at compile time) how many cached tokens it drops."""


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
    tokens: float = 0.0
    sink: int = 4
    recent: int = 32
    min_seen: int = 1
    state: str = "importance"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if self.tokens:
            self._prune_tokens(op)
            return
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

    # -- tokens -------------------------------------------------------------------------

    def _prune_tokens(self, module: ModuleOp) -> None:
        from sparsec.passes.kv_quantize import decode_attentions

        if not self.tokens > 0 or self.sink < 0 or self.recent < 0 or self.min_seen < 0:
            raise _fail(f"tokens must be > 0 and sink, recent, min_seen >= 0, got tokens="
                        f"{self.tokens} sink={self.sink} recent={self.recent} "
                        f"min_seen={self.min_seen}")
        for attention in list(decode_attentions(module, NAME)):
            self._prune_attention(attention)

    def _prune_attention(self, attention) -> None:
        where = f" {attention.name}:"
        if not isinstance(attention, block.GqaAttentionOp):
            raise PassFailedException(f"{NAME}:{where} token pruning needs a decode attention "
                                      "over a KV cache (sparsec.gqa_attention: give `start`)")
        if attention.keep:
            raise PassFailedException(f"{NAME}:{where} its tokens are already pruned at run "
                                      "time; prune once")
        for operand in (attention.key, attention.value):
            owner = operand.owner
            if isinstance(owner, KvCompressOp) and owner.policy().evicts:
                raise PassFailedException(
                    f"{NAME}:{where} its cache is evicted (kv-evict): the importance state "
                    "covers every cached position; prune tokens or evict, not both")
        state = self._state_input(attention)
        q_rows = attention.query.type.get_shape()[-2]
        length = attention.key.type.get_shape()[-2]
        cached = length - q_rows
        shape = tuple(state.result.type.get_shape())
        if shape != (3, cached):
            raise PassFailedException(
                f"{NAME}:{where} the state input @{self.state} must be [3, {cached}] (one "
                f"column per cached token: {length} keys minus the step's {q_rows}), got "
                f"{list(shape)}")
        heads = attention.query.type.get_shape()[0]
        decide = PruneTokensOp(state.result, q_rows, self.tokens, self.sink, self.recent,
                               self.min_seen, heads)
        # Right after the state arrives: the decision needs nothing of this step, so every
        # read of the cache (a policy's kv_compress included) can take the flags.
        Rewriter.insert_op(decide, InsertPoint.after(state))
        attention.operands = [*attention.operands[:3], decide.result]
        self._report_tokens(attention, state, heads)

    def _state_input(self, attention) -> InputOp:
        found = [op for op in enclosing_function(attention).walk()
                 if isinstance(op, InputOp) and op.sym_name == self.state]
        if not found:
            raise PassFailedException(
                f"{NAME}: token pruning needs the accumulated-importance state as a kernel "
                f"input: declare `in {self.state}: f32[3, S]` (or name it with state=NAME)")
        return found[0]

    def _report_tokens(self, attention, state: InputOp, heads: int) -> None:
        entries = {"threshold": FloatAttr(self.tokens, f64), "sink": IntegerAttr(self.sink, i64),
                   "recent": IntegerAttr(self.recent, i64),
                   "min_seen": IntegerAttr(self.min_seen, i64),
                   "state": StringAttr(self.state)}
        values = _values(state.result)
        if values is not None and values.shape[0] == 3:
            alive = values[2] > 0
            kept = decide_tokens(values, heads, self.tokens, self.sink, self.recent,
                                 self.min_seen)
            entries["cached"] = IntegerAttr(int(alive.size), i64)
            entries["dropped_before"] = IntegerAttr(int((~alive).sum()), i64)
            entries["dropped"] = IntegerAttr(int((~kept).sum()), i64)
        attention.attributes[TOKEN_ATTR] = DictionaryAttr(entries)
