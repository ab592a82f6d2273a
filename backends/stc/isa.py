"""The sparse tensor core ISA: one op per thread-block tile, plus the 2:4 compression.

A GEMM C[M x N] = A[M x K] . B[K x N] lowers to:

    %acc0 = stc.zeros : tensor<MxNxT>
    %Wc = stc.compress %W : tensor<KxNxT, #W24>              // only when running 2:4
    %acc1 = stc.tile %X, %Wc, %acc0 {index = 0 : i64, m = array<i64: m0, m1>,
              n = array<i64: n0, n1>, tile = array<i64: tm, tn, tk>, sparse = "rhs"}
              : (tensor<MxKxT>, tensor<KxNxT, #W24>, tensor<MxNxT>) -> tensor<MxNxT>
    ...                                                      // one op per output tile
    %C = stc.store %accF : tensor<MxNxT> -> tensor<MxNxT>

The hardware's sparse operand is mma's A (rows x K, 2:4 along K). A 2:4 lhs is that A
directly. A 2:4 rhs W (K x N, 2:4 along K) is fed as A by computing the transpose,
C^T = W^T . X^T: `sparse = "rhs"` tiles are thread blocks of that swapped problem, whose
rows are N and columns M, so `tile` = (rows, columns, k-chunk) is in hardware order.

Semantics (numpy): compress: (values, indices) = the two kept entries of every 4-block
along K and their 2-bit positions; tile: acc[m0:m1, n0:n1] = A[m0:m1, :] @ B[:, n0:n1]
over the whole K (the sparse operand rebuilt from values and indices), accumulated in
f32 (floats) or exactly (integers); store: round(acc) to the result element type.

The library path (`path=library`, what PyTorch runs through cuSPARSELt) adds around a
2:4 GEMM on X (1 x K) . W^T:

    stc.launch {kernel = "pad"}
    %X_pad = stc.pad %X {dim = 0, multiple = 32} : tensor<1xKxf16> -> tensor<32xKxf16>
    stc.launch {kernel = "sparse_gemm"}
    ... zeros, compress, tiles on the 32-row problem ...
    %Yt = stc.store %acc {transpose} : tensor<32xNxf16> -> tensor<Nx32xf16>
    %Y = stc.copy_out %Yt {transpose, view} : tensor<Nx32xf16> -> tensor<1xNxf16>

launch: none on values (the stream's in-order kernel launch); pad: zeros with the source
in the top-left corner; store {transpose}: round(acc)^T; copy_out: (source^T if
transpose else source)[:rows, :cols]. Durations come from the target spec and the tile
shape (backends/stc/README.md).
"""

from __future__ import annotations

import functools
from typing import ClassVar

from xdsl.dialects.builtin import (
    DenseArrayBase,
    IntegerAttr,
    StringAttr,
    TensorType,
    UnitAttr,
    i64,
)
from xdsl.ir import Attribute, Dialect, SSAValue
from xdsl.ir.affine import (
    AffineBinaryOpExpr,
    AffineBinaryOpKind,
    AffineConstantExpr,
    AffineDimExpr,
    AffineMap,
)
from xdsl.irdl import (
    IRDLOperation,
    ParsePropInAttrDict,
    VarConstraint,
    base,
    irdl_op_definition,
    operand_def,
    opt_prop_def,
    prop_def,
    result_def,
)
from xdsl.utils.exceptions import VerifyException

from sparsec.backends.common.isa import AccumulatorZerosOp
from sparsec.backends.stc.spec import CUDA_CORE_DTYPES, TENSOR_DTYPES
from sparsec.dialects.formats import QuantizedAttr, layout_of
from sparsec.dialects.sparse_tensor import (
    LevelType,
    SparseTensorEncodingAttr,
    aff_floordiv,
    aff_mod,
)
from sparsec.dialects.sparsec import element_type_name

SPARSE_OPERANDS = ("lhs", "rhs")
BLOCK = 4
"""Elements per 2:4 block along K."""
KEPT = 2
"""Entries kept (values stored) per 2:4 block."""


def two_four_encoding(axis: int) -> SparseTensorEncodingAttr:
    """The MLIR 2:4 encoding of a rank-2 tensor with its 4-blocks along dimension `axis`.

    axis 1 (A, M x K): (d0, d1) -> (d0 : dense, d1 floordiv 4 : dense, d1 mod 4 : structured[2, 4])
    axis 0 (W, K x N): (d0, d1) -> (d1 : dense, d0 floordiv 4 : dense, d0 mod 4 : structured[2, 4])
    Both are accepted by mlir-opt-22 as written.
    """
    if axis not in (0, 1):
        raise ValueError(f"2:4 blocks run along dimension 0 or 1 of a matrix, not {axis}")
    block = AffineDimExpr(axis)
    size = AffineConstantExpr(BLOCK)
    amap = AffineMap(2, 0, (AffineDimExpr(1 - axis), aff_floordiv(block, size),
                            aff_mod(block, size)))
    levels = [LevelType.dense(), LevelType.dense(), LevelType.structured(KEPT, BLOCK)]
    return SparseTensorEncodingAttr(levels, amap)


@functools.lru_cache(maxsize=256)
def nm_layout(ttype: Attribute) -> tuple[int, int, int] | None:
    """(n, m, axis) when `ttype` is a rank-2 tensor whose encoding is n:m structured
    along dimension `axis` (levels dense, dense, structured[n, m], the last one
    `d_axis mod m`); None for any other type. Cached: every tile asks about one type."""
    if not isinstance(ttype, TensorType) or ttype.get_num_dims() != 2:
        return None
    encoding = layout_of(ttype.encoding)
    if not isinstance(encoding, SparseTensorEncodingAttr):
        return None
    levels = encoding.level_types
    if len(levels) != 3 or not levels[2].is_structured:
        return None
    if not (levels[0].is_dense and levels[1].is_dense):
        return None
    last = encoding.dim_to_lvl_map.results[2]
    if not isinstance(last, AffineBinaryOpExpr) or last.kind is not AffineBinaryOpKind.Mod:
        return None
    if not isinstance(last.lhs, AffineDimExpr):
        return None
    return levels[2].n, levels[2].m, last.lhs.position


def math_dtype(lhs_type: Attribute, rhs_type: Attribute) -> str:
    """The element type the tensor cores multiply in: i8 when both operands are quantized
    to at most 8 bits (`quantize` on both; the codes feed IMMA), else the declared type.
    Values are still computed from the stored (dequantized) numbers, which the codes
    represent exactly."""
    declared = element_type_name(lhs_type.element_type)  # type: ignore[attr-defined]
    encodings = [getattr(t, "encoding", None) for t in (lhs_type, rhs_type)]
    if all(isinstance(e, QuantizedAttr) and e.bit_width <= 8 for e in encodings):
        return "i8"
    return declared


def runs_on_two_four(ttype: Attribute, reduction_axis: int) -> bool:
    """Whether a tensor of this type can be the 2:4 operand: blocks of 4 along its
    reduction axis keeping at most 2 entries (1:4 data is 2:4 data too)."""
    layout = nm_layout(ttype)
    if layout is None:
        return False
    n, m, axis = layout
    return m == BLOCK and 1 <= n <= KEPT and axis == reduction_axis


def reduction_axis(role: str, transposed: bool) -> int:
    """Dimension of the lhs (M x K, or K x M transposed) or rhs (K x N, or N x K) that is K."""
    if role == "lhs":
        return 0 if transposed else 1
    return 1 if transposed else 0


@functools.lru_cache(maxsize=8192)
def _array(values: tuple[int, ...]) -> DenseArrayBase:
    """An i64 array attribute; cached, since tiles share few distinct ranges and building
    a DenseArrayBase dominates the cost of lowering large GEMMs."""
    return DenseArrayBase.from_list(i64, values)


@functools.lru_cache(maxsize=8192)
def _values(attr: DenseArrayBase) -> tuple[int, ...]:
    """The integers of an array attribute; cached like `_array` (decoding is slow)."""
    return tuple(int(v) for v in attr.get_values())


def _bounds(attr: DenseArrayBase, what: str, op: str) -> tuple[int, int]:
    values = _values(attr)
    if len(values) != 2 or not 0 <= values[0] < values[1]:
        raise VerifyException(f"{op}: {what} must be array<i64: lo, hi> with 0 <= lo < hi, "
                              f"got {list(values)}")
    return int(values[0]), int(values[1])


@irdl_op_definition
class ZerosOp(AccumulatorZerosOp):
    """A zero accumulator (the thread blocks' registers): `acc = 0` in f32 or i32."""

    name = "stc.zeros"


@irdl_op_definition
class CompressOp(IRDLOperation):
    """Compress a 2:4 operand into the sparse tensor core's format, once, before the GEMM
    (cuSPARSELt's `cusparseLtSpMMACompress`).

    Semantics (numpy), with S the operand as rows x K (K = the encoding's blocked axis):
        blocks = S.reshape(rows, K / 4, 4)                 # K padded with zeros to 4
        indices[r, b] = the (at most 2) nonzero positions of blocks[r, b], padded with
                        zero positions, ascending         # 2-bit metadata
        values[r, b]  = blocks[r, b, indices[r, b]]        # half the entries
    The result is the same tensor, now held as (values, indices); a block with more than
    2 nonzeros is a run-time error.
    """

    name = "stc.compress"
    T: ClassVar = VarConstraint("T", base(TensorType))
    source = operand_def(T)
    result = result_def(T)
    assembly_format = "$source attr-dict `:` type($source)"

    def __init__(self, source: SSAValue):
        super().__init__(operands=[source], result_types=[source.type])

    def verify_(self) -> None:
        layout = nm_layout(self.source.type)
        if layout is None or layout[1] != BLOCK or not 1 <= layout[0] <= KEPT:
            raise VerifyException(
                "stc.compress: operand must be a matrix with a 2:4 #sparse_tensor.encoding "
                f"(levels dense, dense, structured[2, 4]), got {self.source.type}")


@irdl_op_definition
class TileOp(IRDLOperation):
    """One thread-block tile on one SM: acc[m0:m1, n0:n1] = A[m0:m1, :] . B[:, n0:n1].

    A = lhs (or lhs^T with `transpose_a`), B = rhs (or rhs^T with `transpose_b`). K is
    streamed through shared memory in chunks of `tile`[2] elements, double-buffered.
    `sparse` names the 2:4 operand (the result of stc.compress), run as mma.sp:
    `lhs` computes the tile as A_tile(2:4) . B_tile; `rhs` computes its transpose,
    W^T_tile(2:4) . A^T_tile. `tile` = (rows, cols, k-chunk) of the thread block in the
    hardware's orientation (rows of the 2:4 operand first when `sparse = "rhs"`).
    """

    name = "stc.tile"
    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    acc = operand_def(TensorType)
    result = result_def(TensorType)
    index = prop_def(IntegerAttr)
    m = prop_def(DenseArrayBase)
    n = prop_def(DenseArrayBase)
    tile = prop_def(DenseArrayBase)
    sparse = opt_prop_def(StringAttr)
    transpose_a = opt_prop_def(UnitAttr)
    transpose_b = opt_prop_def(UnitAttr)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = (
        "$lhs `,` $rhs `,` $acc attr-dict `:` "
        "`(` type($lhs) `,` type($rhs) `,` type($acc) `)` `->` type($result)"
    )

    def __init__(self, lhs: SSAValue, rhs: SSAValue, acc: SSAValue, index: int,
                 m: tuple[int, int], n: tuple[int, int], tile: tuple[int, int, int],
                 sparse: str | None = None, transpose_a: bool = False,
                 transpose_b: bool = False):
        properties: dict[str, Attribute] = {
            "index": IntegerAttr(index, i64), "m": _array(m), "n": _array(n),
            "tile": _array(tile),
        }
        if sparse is not None:
            properties["sparse"] = StringAttr(sparse)
        if transpose_a:
            properties["transpose_a"] = UnitAttr()
        if transpose_b:
            properties["transpose_b"] = UnitAttr()
        super().__init__(operands=[lhs, rhs, acc], result_types=[acc.type],
                         properties=properties)

    def ranges(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """(m, n) half-open output ranges of this tile."""
        return _bounds(self.m, "m", self.name), _bounds(self.n, "n", self.name)

    def tile_shape(self) -> tuple[int, int, int]:
        """(rows, cols, k-chunk) of the thread block, in the hardware's orientation."""
        values = _values(self.tile)
        if len(values) != 3 or min(values) <= 0:
            raise VerifyException(f"{self.name}: tile must be array<i64: rows, cols, k> of "
                                  f"positive sizes, got {list(values)}")
        return values  # type: ignore[return-value]

    @property
    def sparse_operand(self) -> str | None:
        """`lhs`, `rhs` or None (dense mma)."""
        return self.sparse.data if self.sparse is not None else None

    def problem_k(self) -> int:
        shape = self.lhs.type.get_shape()  # type: ignore[union-attr]
        return shape[0] if self.transpose_a else shape[1]

    def verify_(self) -> None:
        (m0, m1), (n0, n1) = self.ranges()
        rows, cols, _ = self.tile_shape()
        if self.result.type != self.acc.type:
            raise VerifyException("stc.tile: result type must equal the accumulator's")
        acc_shape = self.acc.type.get_shape()  # type: ignore[union-attr]
        if m1 > acc_shape[0] or n1 > acc_shape[1]:
            raise VerifyException(f"stc.tile: tile m={m0}:{m1} n={n0}:{n1} exceeds the "
                                  f"accumulator {acc_shape[0]}x{acc_shape[1]}")
        extents = (n1 - n0, m1 - m0) if self.sparse_operand == "rhs" else (m1 - m0, n1 - n0)
        if extents[0] > rows or extents[1] > cols:
            raise VerifyException(f"stc.tile: {extents[0]}x{extents[1]} outputs (hardware "
                                  f"order) exceed the {rows}x{cols} thread-block tile")
        self._verify_element_type()
        self._verify_sparse_operand()

    def _verify_element_type(self) -> None:
        dtype = element_type_name(self.lhs.type.element_type)  # type: ignore[union-attr]
        if self.sparse_operand is not None and dtype not in TENSOR_DTYPES:
            raise VerifyException(f"stc.tile: 2:4 sparse mma takes {'/'.join(TENSOR_DTYPES)} "
                                  f"operands, got {dtype}")
        if dtype not in TENSOR_DTYPES + CUDA_CORE_DTYPES:
            raise VerifyException(f"stc.tile: operands must be "
                                  f"{'/'.join(TENSOR_DTYPES + CUDA_CORE_DTYPES)}, got {dtype}")

    def _verify_sparse_operand(self) -> None:
        role = self.sparse_operand
        if role is None:
            return
        if role not in SPARSE_OPERANDS:
            raise VerifyException(f"stc.tile: sparse must be one of {SPARSE_OPERANDS}, got "
                                  f"'{role}'")
        value = self.lhs if role == "lhs" else self.rhs
        transposed = (self.transpose_a if role == "lhs" else self.transpose_b) is not None
        axis = reduction_axis(role, transposed)
        if not runs_on_two_four(value.type, axis):
            raise VerifyException(f"stc.tile: sparse operand {role} must be 2:4 along its "
                                  f"reduction dimension (dim {axis}), got {value.type}")
        if not isinstance(value.owner, CompressOp):
            raise VerifyException(f"stc.tile: sparse operand {role} must be the result of "
                                  "stc.compress")


@irdl_op_definition
class StoreOp(IRDLOperation):
    """The GEMM's output: result = round(acc) to the result element type, or its transpose
    with `transpose` (a library computing Y = X . W^T as Y^T = W . X^T writes Y^T).

    Each tile's epilogue writes its C tile to memory as the tile finishes; store waits for
    the last wave and adds no traffic of its own.
    """

    name = "stc.store"
    acc = operand_def(TensorType)
    result = result_def(TensorType)
    transpose = opt_prop_def(UnitAttr)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$acc attr-dict `:` type($acc) `->` type($result)"

    def __init__(self, acc: SSAValue, transpose: bool = False):
        result_type = acc.type
        properties: dict[str, Attribute] = {}
        if transpose:
            result_type = _transposed(acc.type)  # type: ignore[arg-type]
            properties["transpose"] = UnitAttr()
        super().__init__(operands=[acc], result_types=[result_type], properties=properties)

    def verify_(self) -> None:
        expected = _transposed(self.acc.type) if self.transpose else self.acc.type  # type: ignore[arg-type]
        if self.result.type != expected:
            which = "the accumulator's transpose" if self.transpose else "the accumulator's"
            raise VerifyException(f"stc.store: result type must equal {which} type, "
                                  f"{expected}")


def _transposed(ttype: TensorType) -> TensorType:
    """The rank-2 tensor type with its two dimensions swapped (element type and encoding kept)."""
    rows, cols = ttype.get_shape()
    return TensorType(ttype.element_type, [cols, rows], ttype.encoding)


def _matrix_shape(value: SSAValue, op: str, what: str) -> tuple[int, int]:
    shape = value.type.get_shape()  # type: ignore[union-attr]
    if len(shape) != 2:
        raise VerifyException(f"{op}: {what} must be a matrix, got {value.type}")
    return shape[0], shape[1]


KERNELS = ("pad", "gemm", "sparse_gemm", "copy_out")
"""What a launch starts: the pad kernel, the dense GEMM (cuBLAS), the 2:4 GEMM
(cuSPARSELt or CUTLASS), the copy of the result into a contiguous tensor."""


@irdl_op_definition
class LaunchOp(IRDLOperation):
    """A kernel launch on the stream: the GPU finishes the previous kernel, spends the
    launch (`launch_us`) on the stream, then runs the kernel the next ops form.

    Semantics: none on values; a stream runs its kernels one after another.
    """

    name = "stc.launch"
    kernel = prop_def(StringAttr)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "attr-dict"

    def __init__(self, kernel: str):
        super().__init__(properties={"kernel": StringAttr(kernel)})

    def verify_(self) -> None:
        if self.kernel.data not in KERNELS:
            raise VerifyException(f"stc.launch: kernel must be one of {KERNELS}, got "
                                  f"'{self.kernel.data}'")


@irdl_op_definition
class PadOp(IRDLOperation):
    """Zero-pad dimension `dim` of a dense matrix up to a multiple of `multiple` (PyTorch
    pads a matmul's dense operand to a shape its 2:4 library supports).

    Semantics (numpy): result = zeros(result shape); result[:rows, :cols] = source.
    One kernel: it reads the source and writes the whole padded copy.
    """

    name = "stc.pad"
    source = operand_def(TensorType)
    result = result_def(TensorType)
    dim = prop_def(IntegerAttr)
    multiple = prop_def(IntegerAttr)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$source attr-dict `:` type($source) `->` type($result)"

    def __init__(self, source: SSAValue, dim: int, multiple: int):
        ttype = source.type
        assert isinstance(ttype, TensorType)
        shape = list(ttype.get_shape())
        shape[dim] = -(-shape[dim] // multiple) * multiple
        super().__init__(operands=[source],
                         result_types=[TensorType(ttype.element_type, shape, ttype.encoding)],
                         properties={"dim": IntegerAttr(dim, i64),
                                     "multiple": IntegerAttr(multiple, i64)})

    def verify_(self) -> None:
        source = _matrix_shape(self.source, self.name, "source")
        result = _matrix_shape(self.result, self.name, "result")
        dim, multiple = self.dim.value.data, self.multiple.value.data
        if dim not in (0, 1) or multiple < 1:
            raise VerifyException(f"stc.pad: dim must be 0 or 1 and multiple >= 1, got dim "
                                  f"{dim}, multiple {multiple}")
        expected = list(source)
        expected[dim] = -(-source[dim] // multiple) * multiple
        if list(result) != expected:
            raise VerifyException(f"stc.pad: padding dim {dim} of {source[0]}x{source[1]} to "
                                  f"a multiple of {multiple} gives {expected[0]}x"
                                  f"{expected[1]}, not {result[0]}x{result[1]}")
        if self.result.type.element_type != self.source.type.element_type:  # type: ignore[union-attr]
            raise VerifyException("stc.pad: result element type must equal the source's")


@irdl_op_definition
class CopyOutOp(IRDLOperation):
    """The matmul's result from the library's output: undo its transpose, drop its padding.

    Semantics (numpy): s = source.T if transpose else source; result = s[:rows, :cols].
    With `view` no kernel runs (PyTorch returns `res.t()[:rows]`, a strided view, and the
    first consumer that needs contiguous rows pays the copy); without it, one kernel
    reads the source and writes the result.
    """

    name = "stc.copy_out"
    source = operand_def(TensorType)
    result = result_def(TensorType)
    transpose = opt_prop_def(UnitAttr)
    view = opt_prop_def(UnitAttr)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$source attr-dict `:` type($source) `->` type($result)"

    def __init__(self, source: SSAValue, result_type: TensorType, transpose: bool = False,
                 view: bool = False):
        properties: dict[str, Attribute] = {}
        if transpose:
            properties["transpose"] = UnitAttr()
        if view:
            properties["view"] = UnitAttr()
        super().__init__(operands=[source], result_types=[result_type], properties=properties)

    def verify_(self) -> None:
        rows, cols = _matrix_shape(self.source, self.name, "source")
        if self.transpose:
            rows, cols = cols, rows
        out_rows, out_cols = _matrix_shape(self.result, self.name, "result")
        if out_rows > rows or out_cols > cols:
            raise VerifyException(f"stc.copy_out: a {out_rows}x{out_cols} result does not fit "
                                  f"the {rows}x{cols} source"
                                  f"{' (transposed)' if self.transpose else ''}")
        if self.result.type.element_type != self.source.type.element_type:  # type: ignore[union-attr]
            raise VerifyException("stc.copy_out: result element type must equal the source's")


Stc = Dialect("stc", [ZerosOp, CompressOp, TileOp, StoreOp, LaunchOp, PadOp, CopyOutOp], [])
