"""`encode-diagonal`: ASADI's diagonal (DIA) format for attention masks and scores.

Acts on the mask of every attention-family op (`sparsec.attention`, `sddmm`, `softmax`;
one mask shared by a decomposed chain is encoded once) and on a `param` lhs of a
standalone `sparsec.spmm`. The mask becomes an i8 `param` pattern `[T, S]` with the
`#sparsec.diagonal<w = .., diagonals = ..>` encoding (a `none`, `causal` or `window` mask
is first written out as that pattern, so the ops take `mask = "pattern"`); the scores
and probabilities of an sddmm/softmax chain get the same encoding, since ASADI stores
them in the mask's diagonals.

Semantics, exactly (so the numpy reference of the executed program is what ASADI runs):

1. M = the op's mask as a 0/1 [T, S] matrix (a standalone spmm lhs: its nonzeros).
2. With `threshold` > 0, M &= predicted: (i, j) is kept when some head's probability
   softmax(scale * Q' K'^T) on M is >= threshold, Q' and K' being Q and K rounded to
   `bits`-bit symmetric per-tensor integers (Sanger's quantize-and-prune, the offline
   pre-processing of ASADI Sec. VI); Q and K are the values the tensors have at compile
   time.
3. w = the band (0: T // 8, ASADI's omega = n/8). `compiler.storage.place_diagonals`
   keeps the central w diagonals and moves each off-band element, column kept, to the
   nearest free bubble of its column in the band; what does not fit goes to overflow
   diagonals (`overflow=extend`, lossless) or is removed from M (`overflow=drop`).
4. The executed program uses the final M as its pattern: attention on the kept pairs.
   A dropped pair of a standalone spmm lhs is zeroed in its values.

The pass records, on the pattern (or lhs) binding op: w, diagonals, overflow diagonals,
elements moved into bubbles, elements dropped, storage bits of the DIA pattern against
CSR (64-bit indices) and dense, and the density / retained energy / error of the mask.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

from sparsec.dialects import sparse_tensor as st
from sparsec.dialects.formats import DiagonalAttr
from sparsec.dialects.sparsec import (
    AttentionOp,
    InputOp,
    ParamOp,
    SddmmOp,
    SoftmaxOp,
    SpmmOp,
    tensor_type,
)
from sparsec.passes.common import Target, fail, param_values, set_type, update_param_values
from sparsec.tensors.attention import mask_matrix, masked_softmax
from sparsec.tensors.datastore import DataStore, current_store, store_key
from sparsec.tensors.quantization import quantize_dynamic
from sparsec.tensors.storage import (
    DIAGONAL_OVERFLOW,
    DiagonalPlacement,
    pack,
    place_diagonals,
)

MaskedOp = AttentionOp | SddmmOp | SoftmaxOp
AUX = ("offsets", "moved")
"""DataStore suffixes (`<kernel>.<symbol>#offsets`, `#moved`) of a DIA layout."""


@dataclass
class MaskGroup:
    """The attention-family ops of one kernel that share one mask."""

    kernel: str
    ops: list[MaskedOp] = field(default_factory=list)

    @property
    def first(self) -> MaskedOp:
        return self.ops[0]

    @property
    def pattern(self) -> SSAValue | None:
        return self.first.pattern[0] if self.first.pattern else None

    @property
    def scores_shape(self) -> tuple[int, int]:
        op = self.first
        if isinstance(op, AttentionOp):
            return (op.query.type.get_shape()[-2],  # type: ignore[union-attr]
                    op.key.type.get_shape()[-2])  # type: ignore[union-attr]
        shape = op.results[0].type.get_shape()  # type: ignore[union-attr]
        return shape[-2], shape[-1]

    def names(self) -> set[str]:
        """Names that select this group: its ops' results and its pattern's symbol."""
        names = {op.results[0].name_hint for op in self.ops if op.results[0].name_hint}
        owner = self.pattern.owner if self.pattern is not None else None
        if isinstance(owner, (InputOp, ParamOp)):
            names.add(owner.sym_name)
        return names

    def describe(self) -> str:
        name = self.first.results[0].name_hint or "?"
        return f"{self.first.name} {name}"


def _kernel_functions(module: ModuleOp) -> Iterator[func.FuncOp]:
    yield from (op for op in module.ops if isinstance(op, func.FuncOp))


def mask_groups(module: ModuleOp) -> list[MaskGroup]:
    """The masks of every kernel: ops sharing a pattern operand (or, without one, the
    same mask kind, window and shape) form one group, in program order."""
    groups: list[MaskGroup] = []
    for function in _kernel_functions(module):
        by_key: dict[object, MaskGroup] = {}
        for op in function.walk():
            if not isinstance(op, (AttentionOp, SddmmOp, SoftmaxOp)):
                continue
            key = (op.pattern[0] if op.pattern else
                   (op.mask_kind, op.window_size, group_shape(op)))
            by_key.setdefault(key, MaskGroup(function.sym_name.data)).ops.append(op)
        groups.extend(by_key.values())
    return groups


def group_shape(op: MaskedOp) -> tuple[int, int]:
    """(T, S) of an attention-family op's scores."""
    return MaskGroup("", [op]).scores_shape


def spmm_params(module: ModuleOp) -> list[tuple[str, SpmmOp, ParamOp]]:
    """(kernel, op, lhs binding) of every spmm whose lhs is a param."""
    found: list[tuple[str, SpmmOp, ParamOp]] = []
    for function in _kernel_functions(module):
        for op in function.walk():
            if isinstance(op, SpmmOp) and isinstance(op.lhs.owner, ParamOp):
                found.append((function.sym_name.data, op, op.lhs.owner))
    return found


def quantized_scores(q: np.ndarray, k: np.ndarray, scale: float, bits: int) -> np.ndarray:
    """scale * Q' K'^T with Q', K' rounded to `bits`-bit symmetric per-tensor codes."""
    qq = quantize_dynamic(np.asarray(q, dtype=np.float64), bits, True)
    kk = quantize_dynamic(np.asarray(k, dtype=np.float64), bits, True)
    return np.matmul(qq, np.swapaxes(kk, -1, -2)) * scale


def predict_mask(q: np.ndarray, k: np.ndarray, scale: float, base: np.ndarray, bits: int,
                 threshold: float) -> np.ndarray:
    """Sanger's dynamic mask: pairs whose predicted probability reaches `threshold` in
    some head, among those `base` allows."""
    probs = masked_softmax(quantized_scores(q, k, scale, bits), base, "f64")
    keep = probs >= threshold
    return (keep.any(axis=0) if keep.ndim == 3 else keep) & base


@dataclass(frozen=True)
class EncodeDiagonalPass(ModulePass):
    """Put attention masks in ASADI's diagonal format, e.g.
    `encode-diagonal{w=64 overflow=extend}` or `encode-diagonal{threshold=0.02}`.

    `w`: central diagonals kept (0: T // 8); `overflow`: extend (overflow diagonals,
    lossless) or drop (lossy); `threshold`, `bits`: Sanger-style mask prediction from
    `bits`-bit Q and K (0: keep the op's mask); `operand`: `mask` (every mask and every
    param spmm lhs), or the name of a pattern, an attention-family result or a spmm lhs.
    """

    name: ClassVar[str] = "encode-diagonal"

    w: int = 0
    overflow: str = "extend"
    threshold: float = 0.0
    bits: int = 4
    operand: str = "mask"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        self._check_options()
        groups = [g for g in mask_groups(op) if self._selects_group(g)]
        lhs = [t for t in spmm_params(op) if self.operand in ("mask", t[2].sym_name)]
        if not groups and not lhs:
            raise fail(self.name, None, f"no attention mask or spmm operand matches "
                       f"operand={self.operand} (use mask, the name of a pattern, of an "
                       "attention/sddmm/softmax result or of a spmm lhs param)")
        store = current_store()
        for group in groups:
            self._encode_group(group, store)
        for kernel, spmm, binder in lhs:
            self._encode_spmm_lhs(kernel, spmm, binder, store)

    def _check_options(self) -> None:
        if self.w < 0:
            raise fail(self.name, None, f"w must be >= 0 (0: T // 8), got {self.w}")
        if self.overflow not in DIAGONAL_OVERFLOW:
            raise fail(self.name, None, f"overflow must be {' or '.join(DIAGONAL_OVERFLOW)}, "
                       f"got '{self.overflow}'")
        if not 0.0 <= self.threshold < 1.0:
            raise fail(self.name, None, f"threshold must lie in [0, 1), got {self.threshold}")
        if not 2 <= self.bits <= 16:
            raise fail(self.name, None, f"bits must lie in [2, 16], got {self.bits}")

    def _selects_group(self, group: MaskGroup) -> bool:
        return self.operand == "mask" or self.operand in group.names()

    def band(self, t: int) -> int:
        """The band width for T queries: `w`, or ASADI's default T // 8 when 0."""
        return self.w if self.w else max(1, t // 8)

    def label(self) -> str:
        parts = [f"w={self.w}" if self.w else "w=T/8", f"overflow={self.overflow}"]
        if self.threshold:
            parts.append(f"threshold={self.threshold:g} bits={self.bits}")
        return f"{self.name}{{{' '.join(parts)}}}"

    # -- masks of attention-family ops --------------------------------------------------

    def _encode_group(self, group: MaskGroup, store: DataStore) -> None:
        t, s = group.scores_shape
        given = self._group_mask(group, store)
        mask = self._predicted(group, store, given) if self.threshold else given
        placement = place_diagonals(mask, self.band(t), self.overflow)
        final = mask.copy()
        final[placement.dropped[:, 0], placement.dropped[:, 1]] = False
        binder = self._pattern_param(group, store, given)
        target = Target(binder, group.kernel, 0, group.first)
        encoding = DiagonalAttr(placement.layout.band, placement.layout.count)
        effect = self._effect(placement, final, encoding, (t, s))
        update_param_values(target, store, final.astype(np.int8), effect)
        self._store_layout(target, store, placement)
        set_type(target, tensor_type((t, s), "i8", encoding))
        self._retype_chain(group, encoding)

    def _group_mask(self, group: MaskGroup, store: DataStore) -> np.ndarray:
        """The group's mask as a boolean [T, S] matrix."""
        t, s = group.scores_shape
        pattern = group.pattern
        if pattern is None:
            op = group.first
            found = mask_matrix(op.mask_kind, t, s, op.window_size)
            return np.ones((t, s), dtype=bool) if found is None else found
        owner = pattern.owner
        if not isinstance(owner, ParamOp):
            raise fail(self.name, None, f"the pattern of {group.describe()} must be a param "
                       "(its 0/1 values known at compile time)")
        target = Target(owner, group.kernel, 0, group.first)
        return param_values(store, target) != 0

    def _predicted(self, group: MaskGroup, store: DataStore, mask: np.ndarray) -> np.ndarray:
        """The mask narrowed to Sanger's prediction from the group's Q and K."""
        scorer = next((op for op in group.ops if isinstance(op, (AttentionOp, SddmmOp))), None)
        if scorer is None:
            raise fail(self.name, None, f"threshold needs the scores' Q and K, but the mask of "
                       f"{group.describe()} has no sddmm or attention op")
        q, k = (scorer.query, scorer.key) if isinstance(scorer, AttentionOp) else (
            scorer.lhs, scorer.rhs)
        values = [self._bound_values(v, group, store, role) for v, role in ((q, "Q"), (k, "K"))]
        return predict_mask(values[0], values[1], scorer.scale.value.data, mask, self.bits,
                            self.threshold)

    def _bound_values(self, value: SSAValue, group: MaskGroup, store: DataStore,
                      role: str) -> np.ndarray:
        owner = value.owner
        if not isinstance(owner, (InputOp, ParamOp)):
            raise fail(self.name, None, f"threshold needs the values of {role} of "
                       f"{group.describe()}, but it is computed by the kernel")
        return np.asarray(store.get(store_key(group.kernel, owner.sym_name)))

    def _pattern_param(self, group: MaskGroup, store: DataStore, given: np.ndarray) -> ParamOp:
        """The group's pattern param; a mask given by kind becomes a new param (holding
        `given`) that the group's ops take as `mask = "pattern"`."""
        owner = group.pattern.owner if group.pattern is not None else None
        if isinstance(owner, ParamOp):
            return owner
        t, s = group.scores_shape
        base = f"{group.first.results[0].name_hint or 'attn'}_mask"
        name = _fresh_symbol(store, group.kernel, base)
        mask = given.astype(np.int8)
        store.put(store_key(group.kernel, name), mask, "i8")
        nnz = int(np.count_nonzero(mask))
        param = ParamOp(name, tensor_type((t, s), "i8"), nnz=nnz, density=nnz / mask.size)
        param.result.name_hint = name
        Rewriter.insert_op(param, InsertPoint.before(group.first))
        for index, op in enumerate(group.ops):
            group.ops[index] = _with_pattern(op, param.result)
        return param

    def _retype_chain(self, group: MaskGroup, encoding: DiagonalAttr) -> None:
        """Scores and probabilities the group's sddmm/softmax ops pass on inside the
        kernel are stored in the mask's diagonals: their result types get the encoding
        (a kernel's outputs keep the type it declares)."""
        for op in group.ops:
            result = op.results[0]
            if isinstance(op, AttentionOp) or not _internal(result):
                continue
            if isinstance(op, SoftmaxOp) and not isinstance(op.input.owner, SddmmOp):
                continue
            rtype = result.type
            assert isinstance(rtype, TensorType)
            new_type = TensorType(rtype.element_type, rtype.get_shape(), encoding)
            Rewriter.replace_value_with_new_type(result, new_type)

    def _effect(self, placement: DiagonalPlacement, final: np.ndarray, encoding: DiagonalAttr,
                shape: tuple[int, int]) -> dict[str, float | int | str]:
        layout = placement.layout
        values = final.astype(np.int8)
        aux = layout.aux()
        csr_bits = pack(values, st.csr(), value_bits=8).bits
        return {
            "pass": self.label(), "w": layout.band, "diagonals": layout.count,
            "overflow_diagonals": layout.count - layout.band, "off_band": placement.off_band,
            "moved": placement.into_bubbles, "dropped": int(placement.dropped.shape[0]),
            "overflowed": placement.off_band - placement.into_bubbles
            - int(placement.dropped.shape[0]),
            "storage_bits": pack(values, encoding, value_bits=8, aux=aux).bits,
            "csr_bits": csr_bits, "dense_bits": 8 * shape[0] * shape[1],
        }

    def _store_layout(self, target: Target, store: DataStore,
                      placement: DiagonalPlacement) -> None:
        for suffix, array in placement.layout.aux().items():
            store.put(f"{target.key}#{suffix}", array.astype(np.int64), "i32")

    # -- a param lhs of a standalone spmm ----------------------------------------------

    def _encode_spmm_lhs(self, kernel: str, spmm: SpmmOp, binder: ParamOp,
                         store: DataStore) -> None:
        target = Target(binder, kernel, 0, spmm)
        values = param_values(store, target)
        t, s = values.shape[-2:]
        nonzero = (values != 0).reshape(-1, t, s).any(axis=0)
        placement = place_diagonals(nonzero, self.band(t), self.overflow)
        kept = values.copy()
        kept[..., placement.dropped[:, 0], placement.dropped[:, 1]] = 0
        encoding = DiagonalAttr(placement.layout.band, placement.layout.count)
        effect = self._effect(placement, (kept != 0).reshape(-1, t, s).any(axis=0), encoding,
                              (t, s))
        update_param_values(target, store, kept, effect)
        self._store_layout(target, store, placement)
        set_type(target, TensorType(target.ttype.element_type, target.ttype.get_shape(),
                                    encoding))


def _internal(value: SSAValue) -> bool:
    """Whether only attention-family ops use `value` (it is not a kernel output)."""
    return all(isinstance(use.operation, (SoftmaxOp, SpmmOp)) for use in value.uses)


def _fresh_symbol(store: DataStore, kernel: str, base: str) -> str:
    """`base`, or `base_1`, `base_2`, ... if the kernel already binds that symbol."""
    name, index = base, 0
    while store_key(kernel, name) in store:
        index += 1
        name = f"{base}_{index}"
    return name


def _with_pattern(op: MaskedOp, pattern: SSAValue) -> MaskedOp:
    """The same op reading its mask from `pattern`, replacing `op` in the IR."""
    new: Operation
    if isinstance(op, AttentionOp):
        new = AttentionOp(op.query, op.key, op.value, op.result.type,  # type: ignore[arg-type]
                          op.scale.value.data, "pattern", None, pattern)
    elif isinstance(op, SddmmOp):
        new = SddmmOp(op.lhs, op.rhs, op.result.type,  # type: ignore[arg-type]
                      op.scale.value.data, "pattern", None, pattern)
    else:
        new = SoftmaxOp(op.input, "pattern", None, pattern)
    new.results[0].name_hint = op.results[0].name_hint
    Rewriter.replace_op(op, new)
    return new  # type: ignore[return-value]
