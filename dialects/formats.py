"""sparsec's own tensor formats: the storage schemes MLIR's `sparse_tensor` lacks.

Each format is a tensor encoding (`tensor<128x384xf32, #sparsec.bitmap<order = row>>`):
a frozen, verified xDSL attribute with hand-written text syntax, a docstring giving the
format's meaning and its storage equation, and `verify_tensor_type(tensor_type)` for the
checks that need the tensor's shape and element type.

    #sparsec.bitmap<order = row>                             SIGMA (HPCA 2020)
    #sparsec.rcsc<pes = 64, index_bits = 4, ptr_bits = 16>   EIE (ISCA 2016)
    #sparsec.codebook<bits = 4[, layout = L]>                Deep Compression / EIE
    #sparsec.quantized<bits = 8, scale = 1.000000e-02, zero_point = 0[, symmetric][, layout = L]>
    #sparsec.quantized<bits = 8, axis = 1[, symmetric][, layout = L]>

`L` is a sparse layout: an MLIR `#sparse_tensor.encoding`, a bitmap or an rcsc.
Values are never attributes: a codebook's table and per-channel scales / zero points
live in the DataStore under `<kernel>.<symbol>#codebook`, `#scale`, `#zero_point`.
`compiler/storage.py` packs and unpacks every format and counts its exact storage.

Every encoding (these, MLIR's, and none) answers the small protocol backends and passes
use: `describe(encoding)` (a one-line human name) and `layout_of(encoding)` (the sparse
layout that decides which elements are stored, or None for dense storage).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from xdsl.dialects.builtin import (
    AnyFloat,
    ArrayAttr,
    FloatData,
    IntAttr,
    IntegerType,
    NoneAttr,
    StringAttr,
    TensorType,
    UnitAttr,
)
from xdsl.ir import Attribute, ParametrizedAttribute
from xdsl.ir.affine import AffineDimExpr
from xdsl.irdl import irdl_attr_definition
from xdsl.parser import AttrParser
from xdsl.printer import Printer
from xdsl.utils.exceptions import VerifyException

from sparsec.dialects.sparse_tensor import (
    LevelFormat,
    SparseTensorEncodingAttr,
    bsr,
    coo,
    csc,
    csr,
    dcsc,
    dcsr,
)

__all__ = [
    "BitColumnAttr",
    "bitcolumn",
    "BitmapAttr",
    "CodebookAttr",
    "FORMAT_ATTRIBUTES",
    "QuantizedAttr",
    "RcscAttr",
    "RowClusteredAttr",
    "bitmap",
    "codebook",
    "describe",
    "describe_sparse_tensor",
    "format_float",
    "layout_of",
    "quantized",
    "rcsc",
]

BITMAP_ORDERS = ("row", "col")
"""Orders in which a bitmap's nonzero values are packed: row major or column major."""

MAX_RCSC_INDEX_BITS = 16
MAX_CODEBOOK_BITS = 16
MAX_QUANTIZED_BITS = 32
MAX_BITCOLUMN_GROUP = 1024


# ===----------------------------------------------------------------------=== #
# Text helpers: `<key = value, flag, ...>` with keys in any order
# ===----------------------------------------------------------------------=== #


ValueParser = Callable[[AttrParser], object]


def _parse_int(parser: AttrParser) -> int:
    return parser.parse_integer(allow_boolean=False, allow_negative=True)


def _parse_float(parser: AttrParser) -> float:
    return float(parser.parse_number(context_msg=" (a number)"))


def _parse_name(parser: AttrParser) -> str:
    return parser.parse_identifier(" (a bare word)")


def _parse_attr(parser: AttrParser) -> Attribute:
    return parser.parse_attribute()


def _parse_fields(
    parser: AttrParser,
    attr_name: str,
    values: dict[str, ValueParser],
    flags: tuple[str, ...] = (),
) -> dict[str, object]:
    """Parse `<k = v, flag, ...>`: keys of `values` (each at most once, any order) and
    bare `flags` (recorded as True). Unknown and repeated keys are errors naming the
    attribute and what it accepts."""
    accepted = ", ".join([*values, *flags])
    fields: dict[str, object] = {}
    parser.parse_punctuation("<", f" to open {attr_name}")
    if parser.parse_optional_punctuation(">") is not None:
        return fields
    while True:
        start = parser.pos
        key = parser.parse_identifier(f" in {attr_name} (accepted keys: {accepted})")
        if key not in values and key not in flags:
            parser.raise_error(
                f"{attr_name}: unknown key '{key}' (accepted: {accepted})", start, parser.pos
            )
        if key in fields:
            parser.raise_error(f"{attr_name}: '{key}' is given twice", start, parser.pos)
        if key in flags:
            fields[key] = True
        else:
            parser.parse_punctuation("=", f" after '{key}' in {attr_name}")
            fields[key] = values[key](parser)
        if parser.parse_optional_punctuation(",") is None:
            break
    parser.parse_punctuation(">", f" to close {attr_name}")
    return fields


def _require(parser: AttrParser, fields: dict[str, object], key: str, example: str) -> None:
    if key not in fields:
        name = example.split("<", 1)[0]
        parser.raise_error(f"{name}: '{key}' is required, e.g. {example}")


def format_float(value: float) -> str:
    """A float as MLIR prints one (`1.000000e-02`), with full precision when six
    digits would not read back as the same number."""
    text = f"{value:.6e}"
    if float(text) == value:
        return text
    return repr(value)


def _int_in(value: int, low: int, high: int, what: str) -> None:
    if not low <= value <= high:
        raise VerifyException(f"{what} must lie in [{low}, {high}], got {value}")


def _shape_text(tensor_type: TensorType[Attribute]) -> str:
    return "x".join(str(d) if d >= 0 else "?" for d in tensor_type.get_shape()) or "scalar"


# ===----------------------------------------------------------------------=== #
# Layouts: bitmap and rcsc
# ===----------------------------------------------------------------------=== #


@irdl_attr_definition
class BitmapAttr(ParametrizedAttribute):
    """`#sparsec.bitmap<order = row|col>`: SIGMA's (HPCA 2020) bitmap format.

    One bit per element says zero (0) or nonzero (1); the nonzero values are packed
    densely in `order` order: `row` is row major (the last dimension varies fastest),
    `col` column major (the first dimension varies fastest). Any rank >= 1.

    Storage bits = numel * 1 + nnz * value_bits.
    """

    name = "sparsec.bitmap"

    order: StringAttr

    def __init__(self, order: str = "row"):
        super().__init__(StringAttr(order))

    @property
    def order_name(self) -> str:
        return self.order.data

    def verify(self) -> None:
        if self.order_name not in BITMAP_ORDERS:
            raise VerifyException(
                f"sparsec.bitmap: order must be row or col, got '{self.order_name}'"
            )

    def verify_tensor_type(self, tensor_type: TensorType[Attribute]) -> None:
        if tensor_type.get_num_dims() == 0:
            raise VerifyException(
                "sparsec.bitmap: expected a tensor of rank >= 1 (one bit per element), got a scalar"
            )

    def describe(self) -> str:
        return "bitmap" if self.order_name == "row" else "bitmap (column order)"

    def layout(self) -> Attribute | None:
        return self

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> list[Attribute]:
        fields = _parse_fields(parser, "sparsec.bitmap", {"order": _parse_name})
        return [StringAttr(str(fields.get("order", "row")))]

    def print_parameters(self, printer: Printer) -> None:
        printer.print_string(f"<order = {self.order_name}>")


@irdl_attr_definition
class RcscAttr(ParametrizedAttribute):
    """`#sparsec.rcsc<pes = 64, index_bits = 4, ptr_bits = 16>`: EIE's (ISCA 2016)
    relative-indexed compressed sparse column format, interleaved over PEs.

    The tensor is a rank-2 matrix rows x cols in (out, in) layout, as EIE computes W·a:
    rows are output neurons. Row i belongs to PE i mod pes; each PE stores its slice
    column by column as (value, relative row index) entries, where the relative index is
    the number of zero rows of that PE's slice skipped since the previous entry of the
    column (or since the column's start). A run of more than 2^index_bits - 1 zeros
    needs a padding entry (value 0, relative index 2^index_bits - 1), one per
    2^index_bits zeros of the gap. Each PE has a column-pointer array of cols + 1
    entries of ptr_bits, indexing its own entries.

    Storage bits = entries * (value_bits + index_bits) + pes * (cols + 1) * ptr_bits,
    where entries = nnz + padding entries.
    """

    name = "sparsec.rcsc"

    pes: IntAttr
    index_bits: IntAttr
    ptr_bits: IntAttr

    def __init__(self, pes: int = 64, index_bits: int = 4, ptr_bits: int = 16):
        super().__init__(IntAttr(pes), IntAttr(index_bits), IntAttr(ptr_bits))

    @property
    def num_pes(self) -> int:
        return self.pes.data

    @property
    def index_width(self) -> int:
        return self.index_bits.data

    @property
    def ptr_width(self) -> int:
        return self.ptr_bits.data

    @property
    def max_run(self) -> int:
        """The longest run of zeros one relative index can skip: 2^index_bits - 1."""
        return (1 << self.index_width) - 1

    def verify(self) -> None:
        if self.num_pes < 1:
            raise VerifyException(f"sparsec.rcsc: pes must be >= 1, got {self.num_pes}")
        _int_in(self.index_width, 1, MAX_RCSC_INDEX_BITS, "sparsec.rcsc: index_bits")
        _int_in(self.ptr_width, 1, 64, "sparsec.rcsc: ptr_bits")

    def verify_tensor_type(self, tensor_type: TensorType[Attribute]) -> None:
        rank = tensor_type.get_num_dims()
        if rank != 2:
            raise VerifyException(
                "sparsec.rcsc: expected a rank-2 tensor (rows x cols, weights in (out, in) "
                f"layout), got rank {rank} ({_shape_text(tensor_type)})"
            )

    def describe(self) -> str:
        return (
            f"relative-indexed CSC over {self.num_pes} PEs ({self.index_width}-bit indices, "
            f"{self.ptr_width}-bit pointers)"
        )

    def layout(self) -> Attribute | None:
        return self

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> list[Attribute]:
        fields = _parse_fields(
            parser,
            "sparsec.rcsc",
            {"pes": _parse_int, "index_bits": _parse_int, "ptr_bits": _parse_int},
        )
        defaults = {"pes": 64, "index_bits": 4, "ptr_bits": 16}
        return [IntAttr(int(fields.get(key, value))) for key, value in defaults.items()]  # type: ignore[arg-type]

    def print_parameters(self, printer: Printer) -> None:
        printer.print_string(
            f"<pes = {self.num_pes}, index_bits = {self.index_width}, ptr_bits = {self.ptr_width}>"
        )


# ===----------------------------------------------------------------------=== #
# Value encodings over an optional layout: codebook and quantized
# ===----------------------------------------------------------------------=== #


@irdl_attr_definition
class BitColumnAttr(ParametrizedAttribute):
    """`#sparsec.bitcolumn<group = 16, axis = 0, sign_magnitude>`: BitWave's (HPCA 2024)
    bit-column storage of an INT8 rank-2 tensor.

    Weights are grouped `group` at a time along dimension `axis` (the reduction
    dimension; the other dimension is the channel), zero-padded to a multiple of the
    group. Each weight is 8 bits: with `sign_magnitude`, a sign bit and 7 magnitude
    bits (codes in [-127, 127]); without it, two's complement. A bit column is the bits
    of one significance across a group; per group an 8-bit mask says which of the 8
    columns are nonzero, and only those columns are stored, `group` bits each.

    Storage bits = 8 * groups + group * kept columns (+ the quantization's scales when
    nested in `#sparsec.quantized<bits = 8, ..., symmetric, layout = #sparsec.bitcolumn<...>>`).
    On its own it encodes an i8 tensor whose values are the codes.
    """

    name = "sparsec.bitcolumn"

    group: IntAttr
    axis: IntAttr
    sign_magnitude: UnitAttr | NoneAttr

    def __init__(self, group: int = 16, axis: int = 0, sign_magnitude: bool = True):
        super().__init__(IntAttr(group), IntAttr(axis),
                         UnitAttr() if sign_magnitude else NoneAttr())

    @property
    def group_size(self) -> int:
        return self.group.data

    @property
    def group_axis(self) -> int:
        return self.axis.data

    @property
    def is_sign_magnitude(self) -> bool:
        return isinstance(self.sign_magnitude, UnitAttr)

    def verify(self) -> None:
        _int_in(self.group_size, 1, MAX_BITCOLUMN_GROUP, "sparsec.bitcolumn: group")
        _int_in(self.group_axis, 0, 1, "sparsec.bitcolumn: axis")

    def verify_tensor_type(self, tensor_type: TensorType[Attribute]) -> None:
        rank = tensor_type.get_num_dims()
        if rank != 2:
            raise VerifyException(
                f"sparsec.bitcolumn: expected a rank-2 tensor (groups along dimension "
                f"{self.group_axis}), got rank {rank} ({_shape_text(tensor_type)})"
            )
        element = tensor_type.get_element_type()
        if isinstance(element, IntegerType) and element.width.data != 8:
            raise VerifyException(
                f"sparsec.bitcolumn: stores 8-bit codes, got element type {element}; "
                "quantize{bits=8} a float tensor or declare i8"
            )

    def describe(self) -> str:
        kind = "sign-magnitude" if self.is_sign_magnitude else "two's complement"
        return (f"bit columns of {self.group_size} along dim {self.group_axis} ({kind})")

    def layout(self) -> Attribute | None:
        return self

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> list[Attribute]:
        fields = _parse_fields(parser, "sparsec.bitcolumn",
                               {"group": _parse_int, "axis": _parse_int},
                               flags=("sign_magnitude",))
        _require(parser, fields, "group", "#sparsec.bitcolumn<group = 16, axis = 0, sign_magnitude>")
        return [IntAttr(int(fields["group"])), IntAttr(int(fields.get("axis", 0))),  # type: ignore[arg-type]
                UnitAttr() if fields.get("sign_magnitude") else NoneAttr()]

    def print_parameters(self, printer: Printer) -> None:
        flag = ", sign_magnitude" if self.is_sign_magnitude else ""
        printer.print_string(f"<group = {self.group_size}, axis = {self.group_axis}{flag}>")


LAYOUT_TYPES: tuple[type[Attribute], ...] = (SparseTensorEncodingAttr, BitmapAttr, RcscAttr)
"""Attributes that may be the nested `layout` of a codebook or quantized encoding."""


def _verify_layout(layout: Attribute, attr_name: str) -> None:
    """Layouts of a codebook or quantized encoding (bit columns: quantized only, which
    checks them itself)."""
    if isinstance(layout, (NoneAttr, *LAYOUT_TYPES)):
        return
    if isinstance(layout, BitColumnAttr) and attr_name == "sparsec.quantized":
        return
    raise VerifyException(
        f"{attr_name}: layout must be a #sparse_tensor.encoding, #sparsec.bitmap or "
        f"#sparsec.rcsc, got {layout}"
    )


def _verify_layout_tensor_type(layout: Attribute, tensor_type: TensorType[Attribute]) -> None:
    verify = getattr(layout, "verify_tensor_type", None)
    if verify is not None:
        verify(tensor_type)


def _print_layout(printer: Printer, layout: Attribute) -> None:
    if isinstance(layout, NoneAttr):
        return
    printer.print_string(", layout = ")
    printer.print_attribute(layout)


def _layout_or_none(layout: Attribute) -> Attribute | None:
    return None if isinstance(layout, NoneAttr) else layout


@irdl_attr_definition
class CodebookAttr(ParametrizedAttribute):
    """`#sparsec.codebook<bits = 4[, layout = L]>`: weight sharing (Deep Compression,
    EIE). Each stored value is a `bits`-bit index into a codebook of 2^bits values; the
    codebook itself lives in the DataStore under `<kernel>.<symbol>#codebook`. The
    optional layout decides which elements are stored (dense storage without one).

    Storage bits = index storage of the layout (0 when dense)
                   + stored values * bits + 2^bits * value_bits,
    where stored values = nnz for compressed layouts, the layout's value slots in
    general (dense blocks, n:m padding and rcsc padding included), numel when dense.
    """

    name = "sparsec.codebook"

    bits: IntAttr
    layout_attr: Attribute

    def __init__(self, bits: int, layout: Attribute | None = None):
        super().__init__(IntAttr(bits), layout if layout is not None else NoneAttr())

    @property
    def bit_width(self) -> int:
        return self.bits.data

    @property
    def size(self) -> int:
        """Entries of the codebook table: 2^bits."""
        return 1 << self.bit_width

    def layout(self) -> Attribute | None:
        return _layout_or_none(self.layout_attr)

    def verify(self) -> None:
        _int_in(self.bit_width, 1, MAX_CODEBOOK_BITS, "sparsec.codebook: bits")
        _verify_layout(self.layout_attr, "sparsec.codebook")

    def verify_tensor_type(self, tensor_type: TensorType[Attribute]) -> None:
        _verify_layout_tensor_type(self.layout_attr, tensor_type)

    def describe(self) -> str:
        inner = self.layout()
        suffix = f" over {describe(inner)}" if inner is not None else ""
        return f"{self.bit_width}-bit codebook{suffix}"

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> list[Attribute]:
        fields = _parse_fields(
            parser, "sparsec.codebook", {"bits": _parse_int, "layout": _parse_attr}
        )
        _require(parser, fields, "bits", "#sparsec.codebook<bits = 4>")
        layout = fields.get("layout", NoneAttr())
        return [IntAttr(int(fields["bits"])), layout]  # type: ignore[arg-type,list-item]

    def print_parameters(self, printer: Printer) -> None:
        printer.print_string(f"<bits = {self.bit_width}")
        _print_layout(printer, self.layout_attr)
        printer.print_string(">")


@irdl_attr_definition
class QuantizedAttr(ParametrizedAttribute):
    """`#sparsec.quantized<bits = 8, scale = s, zero_point = z[, symmetric][, layout = L]>`
    (per-tensor) or `#sparsec.quantized<bits = 8, axis = a[, symmetric][, layout = L]>`
    (per-channel along dimension `a`): integer quantization. With neither a scale nor an
    axis the scale is dynamic: one per tensor, computed at run time from the values as
    they arrive (a quantized runtime input).

    A stored code q represents the value scale * (q - zero_point). Codes are integers in
    [-(2^(bits-1)), 2^(bits-1) - 1] when `symmetric` (zero_point is then 0) and in
    [0, 2^bits - 1] otherwise. Per-channel scales and zero points live in the DataStore
    under `<kernel>.<symbol>#scale` / `#zero_point`, one per index of dimension `a`.
    The tensor's element type is the type of the logical (dequantized) values.

    Storage bits = index storage of the layout (0 when dense) + stored values * bits
                   + scales * 32 + zero points * bits (asymmetric only),
    with one scale (and zero point) per tensor or per channel.
    """

    name = "sparsec.quantized"

    bits: IntAttr
    scale: FloatData | NoneAttr
    zero_point: IntAttr | NoneAttr
    axis: IntAttr | NoneAttr
    symmetric: UnitAttr | NoneAttr
    layout_attr: Attribute

    def __init__(
        self,
        bits: int,
        *,
        scale: float | None = None,
        zero_point: int | None = None,
        axis: int | None = None,
        symmetric: bool = False,
        layout: Attribute | None = None,
    ):
        if zero_point is None and scale is not None:
            zero_point = 0
        super().__init__(
            IntAttr(bits),
            FloatData(float(scale)) if scale is not None else NoneAttr(),
            IntAttr(zero_point) if zero_point is not None else NoneAttr(),
            IntAttr(axis) if axis is not None else NoneAttr(),
            UnitAttr() if symmetric else NoneAttr(),
            layout if layout is not None else NoneAttr(),
        )

    # -- queries ----------------------------------------------------------- #

    @property
    def bit_width(self) -> int:
        return self.bits.data

    @property
    def is_symmetric(self) -> bool:
        return isinstance(self.symmetric, UnitAttr)

    @property
    def is_dynamic(self) -> bool:
        """Neither a scale nor an axis: one scale computed at run time from the values."""
        return self.scale_value is None and self.channel_axis is None

    @property
    def is_per_channel(self) -> bool:
        return isinstance(self.axis, IntAttr)

    @property
    def channel_axis(self) -> int | None:
        return self.axis.data if isinstance(self.axis, IntAttr) else None

    @property
    def scale_value(self) -> float | None:
        return self.scale.data if isinstance(self.scale, FloatData) else None

    @property
    def zero_point_value(self) -> int | None:
        """The per-tensor zero point (0 when symmetric); None when per-channel."""
        return self.zero_point.data if isinstance(self.zero_point, IntAttr) else None

    @property
    def code_range(self) -> tuple[int, int]:
        """The smallest and largest code: signed when symmetric, unsigned otherwise."""
        if self.is_symmetric:
            return -(1 << (self.bit_width - 1)), (1 << (self.bit_width - 1)) - 1
        return 0, (1 << self.bit_width) - 1

    def layout(self) -> Attribute | None:
        return _layout_or_none(self.layout_attr)

    # -- verification ------------------------------------------------------ #

    def verify(self) -> None:
        _int_in(self.bit_width, 1, MAX_QUANTIZED_BITS, "sparsec.quantized: bits")
        self._verify_granularity()
        self._verify_zero_point()
        _verify_layout(self.layout_attr, "sparsec.quantized")
        if isinstance(self.layout_attr, BitColumnAttr) and not (
                self.bit_width <= 8 and self.is_symmetric):
            raise VerifyException(
                "sparsec.quantized: a #sparsec.bitcolumn layout stores 8-bit signed codes; "
                f"give bits <= 8 and symmetric, got bits = {self.bit_width}"
                f"{'' if self.is_symmetric else ' (asymmetric)'}"
            )

    def _verify_granularity(self) -> None:
        scale, axis = self.scale_value, self.channel_axis
        if scale is not None and axis is not None:
            raise VerifyException(
                "sparsec.quantized: scale (per-tensor) and axis (per-channel) exclude each "
                "other; give one"
            )
        if scale is not None and not (math.isfinite(scale) and scale > 0):
            raise VerifyException(
                f"sparsec.quantized: scale must be positive and finite, got {scale}"
            )
        if axis is not None and axis < 0:
            raise VerifyException(f"sparsec.quantized: axis must be >= 0, got {axis}")

    def _verify_zero_point(self) -> None:
        zero_point = self.zero_point_value
        if zero_point is None:
            return
        if self.is_per_channel:
            raise VerifyException(
                "sparsec.quantized: a per-channel encoding takes no zero_point (per-channel "
                "zero points live in the DataStore under #zero_point)"
            )
        if self.is_symmetric and zero_point != 0:
            raise VerifyException(
                f"sparsec.quantized: symmetric quantization has zero_point 0, got {zero_point}"
            )
        low, high = self.code_range
        _int_in(zero_point, low, high, f"sparsec.quantized: zero_point of {self.bit_width}-bit codes")

    def verify_tensor_type(self, tensor_type: TensorType[Attribute]) -> None:
        element = tensor_type.get_element_type()
        if not isinstance(element, AnyFloat):
            raise VerifyException(
                "sparsec.quantized: the element type is that of the dequantized values and "
                f"must be a float type, got {element}"
            )
        axis, rank = self.channel_axis, tensor_type.get_num_dims()
        if axis is not None and axis >= rank:
            raise VerifyException(
                f"sparsec.quantized: axis {axis} is out of range for a rank-{rank} tensor"
            )
        _verify_layout_tensor_type(self.layout_attr, tensor_type)

    # -- text -------------------------------------------------------------- #

    def describe(self) -> str:
        kind = "symmetric " if self.is_symmetric else ""
        if self.is_per_channel:
            granularity = f"per-channel (axis {self.channel_axis})"
        else:
            granularity = f"per-tensor (scale {self.scale_value:g}"
            granularity += ")" if self.is_symmetric else f", zero point {self.zero_point_value})"
        inner = self.layout()
        suffix = f" over {describe(inner)}" if inner is not None else ""
        return f"{self.bit_width}-bit {kind}{granularity} quantized{suffix}"

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> list[Attribute]:
        fields = _parse_fields(
            parser,
            "sparsec.quantized",
            {
                "bits": _parse_int,
                "scale": _parse_float,
                "zero_point": _parse_int,
                "axis": _parse_int,
                "layout": _parse_attr,
            },
            flags=("symmetric",),
        )
        _require(parser, fields, "bits", "#sparsec.quantized<bits = 8, scale = 0.1>")
        zero_point = fields.get("zero_point")
        if zero_point is None and "scale" in fields:
            zero_point = 0
        return [
            IntAttr(int(fields["bits"])),  # type: ignore[arg-type]
            FloatData(float(fields["scale"])) if "scale" in fields else NoneAttr(),  # type: ignore[arg-type]
            IntAttr(int(zero_point)) if zero_point is not None else NoneAttr(),  # type: ignore[arg-type]
            IntAttr(int(fields["axis"])) if "axis" in fields else NoneAttr(),  # type: ignore[arg-type]
            UnitAttr() if fields.get("symmetric") else NoneAttr(),
            fields.get("layout", NoneAttr()),  # type: ignore[list-item]
        ]

    def print_parameters(self, printer: Printer) -> None:
        parts = [f"bits = {self.bit_width}"]
        scale = self.scale_value
        if scale is not None:
            parts.append(f"scale = {format_float(scale)}")
        zero_point = self.zero_point_value
        if zero_point is not None and not self.is_symmetric:
            parts.append(f"zero_point = {zero_point}")
        if self.channel_axis is not None:
            parts.append(f"axis = {self.channel_axis}")
        if self.is_symmetric:
            parts.append("symmetric")
        printer.print_string("<" + ", ".join(parts))
        _print_layout(printer, self.layout_attr)
        printer.print_string(">")


# ===----------------------------------------------------------------------=== #
# Diagonal (DIA) storage of attention masks and scores: ASADI
# ===----------------------------------------------------------------------=== #


@irdl_attr_definition
class DiagonalAttr(ParametrizedAttribute):
    """`#sparsec.diagonal<w = 64, diagonals = 80>`: ASADI's (HPCA 2024) diagonal (DIA)
    format of an attention mask or score matrix [T, S] (or [heads, T, S], every head with
    the same structure).

    Every stored diagonal k has one slot per key column j (classic DIA, keyed by column)
    and an offset o_k. The first `w` diagonals are the central band: `w` consecutive
    offsets around S - T, slot j holding element (j - o_k, j). An element off the band
    keeps its column and is moved into a band slot of that column whose own element is
    zero (a bubble); the slot then holds row R_o instead (ASADI's (R_d, R_o) list, R_d =
    j - o_k). Elements that find no bubble go to the `diagonals - w` overflow diagonals
    ("a new diagonal", ASADI Sec. III-B), whose slots hold moved elements only. The
    offsets and the moved elements live in the DataStore (`<kernel>.<symbol>#offsets`,
    `#moved`), never here; `encode-diagonal` places them and `compiler/storage.py` packs
    and unpacks.

    Storage bits = D * offset_bits + [heads *] D * S * value_bits + (D + 1) * ptr_bits
                   + moved * (col_bits + row_bits),
    with D = diagonals, offset_bits = ceil(log2(T + S - 1)), col_bits = ceil(log2 S),
    row_bits = ceil(log2 T), ptr_bits = ceil(log2(moved + 1)), each at least 1: the
    offsets, the values of every slot, and per diagonal the list of its moved elements
    (slot column j, i.e. R_d, and original row R_o).
    """

    name = "sparsec.diagonal"

    w: IntAttr
    diagonals: IntAttr

    def __init__(self, w: int, diagonals: int | None = None):
        super().__init__(IntAttr(w), IntAttr(w if diagonals is None else diagonals))

    @property
    def band(self) -> int:
        """Diagonals of the central band (the first `band` stored diagonals)."""
        return self.w.data

    @property
    def count(self) -> int:
        """Stored diagonals: the band plus the extra diagonals."""
        return self.diagonals.data

    def verify(self) -> None:
        if self.band < 1:
            raise VerifyException(f"sparsec.diagonal: w must be >= 1, got {self.band}")
        if self.count < self.band:
            raise VerifyException(
                f"sparsec.diagonal: diagonals ({self.count}) must be >= w ({self.band}): "
                "the band is always stored"
            )

    def verify_tensor_type(self, tensor_type: TensorType[Attribute]) -> None:
        rank = tensor_type.get_num_dims()
        if rank not in (2, 3):
            raise VerifyException(
                "sparsec.diagonal: expected a [T, S] or [heads, T, S] tensor, got "
                f"{_shape_text(tensor_type)}"
            )
        t, s = tensor_type.get_shape()[-2:]
        if self.count > t + s - 1:
            raise VerifyException(
                f"sparsec.diagonal: {self.count} diagonals exceed the {t + s - 1} a "
                f"{t}x{s} matrix has"
            )

    def describe(self) -> str:
        extra = self.count - self.band
        return f"diagonal (DIA), {self.band} central diagonals" + (
            f" + {extra} overflow" if extra else ""
        )

    def layout(self) -> Attribute | None:
        return self

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> list[Attribute]:
        fields = _parse_fields(
            parser, "sparsec.diagonal", {"w": _parse_int, "diagonals": _parse_int}
        )
        _require(parser, fields, "w", "#sparsec.diagonal<w = 64, diagonals = 80>")
        w = int(fields["w"])  # type: ignore[arg-type]
        return [IntAttr(w), IntAttr(int(fields.get("diagonals", w)))]  # type: ignore[arg-type]

    def print_parameters(self, printer: Printer) -> None:
        printer.print_string(f"<w = {self.band}, diagonals = {self.count}>")


# ===----------------------------------------------------------------------=== #
# Hot/cold tiling of an irregular sparse matrix: HotTiles
# ===----------------------------------------------------------------------=== #


@irdl_attr_definition
class TiledAttr(ParametrizedAttribute):
    """`#sparsec.tiled<tile = [256, 256], workers = [2, 16], hot = 12, cold = 340,
    policy = hottiles>`: HotTiles' (Gerogiannis et al., HPCA 2024) partition of a sparse
    matrix [M, K] into a grid of `tile` = [r, c] tiles, each non-empty tile labelled hot
    (run by one of `workers[0]` hot workers) or cold (one of `workers[1]` cold workers).

    `hot` and `cold` count the labelled (non-empty) tiles; `policy` names the rule that
    chose the labels (hottiles, hotonly, coldonly, best, iunaware, random, roundrobin). The
    per-tile labels, worker assignment and model estimates are large, so they live in
    the DataStore (`<kernel>.<symbol>#tile_ids`, `#tile_kind`, `#tile_worker`, ...),
    never here; `tile-hot-cold` writes them.

    Storage (each tile a CSR block with `index_bits`-wide indices, the backend's
    accounting): nnz * (value_bits + index_bits) + tiles * (r + 1) * index_bits.
    """

    name = "sparsec.tiled"

    tile_rows: IntAttr
    tile_cols: IntAttr
    hot_workers: IntAttr
    cold_workers: IntAttr
    hot: IntAttr
    cold: IntAttr
    policy: StringAttr

    def __init__(self, tile: tuple[int, int], workers: tuple[int, int], hot: int = 0,
                 cold: int = 0, policy: str = "hottiles"):
        super().__init__(IntAttr(tile[0]), IntAttr(tile[1]), IntAttr(workers[0]),
                         IntAttr(workers[1]), IntAttr(hot), IntAttr(cold), StringAttr(policy))

    @property
    def tile(self) -> tuple[int, int]:
        """(rows, cols) of one tile (edge tiles are cut by the matrix)."""
        return self.tile_rows.data, self.tile_cols.data

    @property
    def workers(self) -> tuple[int, int]:
        """(hot, cold) workers the partition was made for."""
        return self.hot_workers.data, self.cold_workers.data

    @property
    def counts(self) -> tuple[int, int]:
        """(hot, cold) labelled tiles."""
        return self.hot.data, self.cold.data

    @property
    def policy_name(self) -> str:
        return self.policy.data

    def grid(self, shape: tuple[int, int]) -> tuple[int, int]:
        """Tiles along each dimension of a matrix of `shape`."""
        return -(-shape[0] // self.tile[0]), -(-shape[1] // self.tile[1])

    def verify(self) -> None:
        rows, cols = self.tile
        if rows < 1 or cols < 1:
            raise VerifyException(f"sparsec.tiled: tile sizes must be >= 1, got [{rows}, {cols}]")
        hot_workers, cold_workers = self.workers
        if hot_workers < 0 or cold_workers < 0 or hot_workers + cold_workers == 0:
            raise VerifyException(
                f"sparsec.tiled: workers must be >= 0 and not both 0, got [{hot_workers}, "
                f"{cold_workers}]"
            )
        hot, cold = self.counts
        if hot < 0 or cold < 0:
            raise VerifyException(f"sparsec.tiled: tile counts must be >= 0, got hot = {hot}, "
                                  f"cold = {cold}")
        if hot and not hot_workers:
            raise VerifyException(f"sparsec.tiled: {hot} hot tiles but no hot worker")
        if cold and not cold_workers:
            raise VerifyException(f"sparsec.tiled: {cold} cold tiles but no cold worker")
        if self.policy_name not in TILED_POLICIES:
            raise VerifyException(
                f"sparsec.tiled: policy must be one of {', '.join(TILED_POLICIES)}, got "
                f"'{self.policy_name}'"
            )

    def verify_tensor_type(self, tensor_type: TensorType[Attribute]) -> None:
        if tensor_type.get_num_dims() != 2:
            raise VerifyException(
                f"sparsec.tiled: expected a matrix, got {_shape_text(tensor_type)}"
            )
        shape = tuple(tensor_type.get_shape())
        grid_rows, grid_cols = self.grid((shape[0], shape[1]))
        hot, cold = self.counts
        if hot + cold > grid_rows * grid_cols:
            raise VerifyException(
                f"sparsec.tiled: {hot} hot + {cold} cold tiles exceed the {grid_rows * grid_cols} "
                f"tiles of a {shape[0]}x{shape[1]} matrix in {self.tile[0]}x{self.tile[1]} tiles"
            )

    def describe(self) -> str:
        hot, cold = self.counts
        hot_workers, cold_workers = self.workers
        return (f"hot/cold tiled {self.tile[0]}x{self.tile[1]} ({self.policy_name}): {hot} hot "
                f"tiles on {hot_workers} hot worker{'s' * (hot_workers != 1)}, {cold} cold on "
                f"{cold_workers} cold worker{'s' * (cold_workers != 1)}")

    def layout(self) -> Attribute | None:
        return self

    @staticmethod
    def _parse_pair(parser: AttrParser) -> tuple[int, int]:
        parser.parse_punctuation("[", " to open a pair such as [256, 256]")
        first = _parse_int(parser)
        parser.parse_punctuation(",", " between the two numbers of a pair")
        second = _parse_int(parser)
        parser.parse_punctuation("]", " to close the pair")
        return first, second

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> list[Attribute]:
        fields = _parse_fields(
            parser,
            "sparsec.tiled",
            {"tile": cls._parse_pair, "workers": cls._parse_pair, "hot": _parse_int,
             "cold": _parse_int, "policy": _parse_name},
        )
        example = "#sparsec.tiled<tile = [256, 256], workers = [2, 16], hot = 3, cold = 40>"
        _require(parser, fields, "tile", example)
        _require(parser, fields, "workers", example)
        tile: tuple[int, int] = fields["tile"]  # type: ignore[assignment]
        workers: tuple[int, int] = fields["workers"]  # type: ignore[assignment]
        return [IntAttr(tile[0]), IntAttr(tile[1]), IntAttr(workers[0]), IntAttr(workers[1]),
                IntAttr(int(fields.get("hot", 0))),  # type: ignore[arg-type]
                IntAttr(int(fields.get("cold", 0))),  # type: ignore[arg-type]
                StringAttr(str(fields.get("policy", "hottiles")))]

    def print_parameters(self, printer: Printer) -> None:
        (rows, cols), (hot_workers, cold_workers) = self.tile, self.workers
        hot, cold = self.counts
        printer.print_string(
            f"<tile = [{rows}, {cols}], workers = [{hot_workers}, {cold_workers}], "
            f"hot = {hot}, cold = {cold}, policy = {self.policy_name}>"
        )


TILED_POLICIES = ("hottiles", "hotonly", "coldonly", "best", "iunaware", "random", "roundrobin")
"""How a `#sparsec.tiled` partition was chosen: HotTiles' heuristic, every tile on one
worker type (hot, cold, or the better of the two), or heterogeneity-unaware splits."""


# ===----------------------------------------------------------------------=== #
# Row-clustered queries of approximate attention: SpARC
# ===----------------------------------------------------------------------=== #


def _parse_int_lists(parser: AttrParser) -> list[list[int]]:
    """`[[1, 2], [3, 4]]`: one list of integers per head."""
    square = AttrParser.Delimiter.SQUARE
    return parser.parse_comma_separated_list(
        square, lambda: parser.parse_comma_separated_list(square, lambda: _parse_int(parser)))


def _int_lists(values: list[list[int]] | tuple[tuple[int, ...], ...]) -> ArrayAttr:
    return ArrayAttr([ArrayAttr([IntAttr(int(v)) for v in row]) for row in values])


def _lists_text(values: tuple[tuple[int, ...], ...]) -> str:
    return "[" + ", ".join("[" + ", ".join(map(str, row)) + "]" for row in values) + "]"


@irdl_attr_definition
class RowClusteredAttr(ParametrizedAttribute):
    """`#sparsec.row_clustered<block = 64, columns = [[0, 5, 9], ...], clusters = [[8, 6],
    ...]>`: SpARC's (Cho et al., DAC 2024) row-clustered query of approximate attention.

    The tensor is the query Q [T, d] (or [heads, T, d]) of a `sparsec.attention`. Its rows
    are cut into blocks of `block` rows (the last may be shorter); per head h, block b is
    clustered at run time into `clusters[h][b]` clusters using the low-rank scores
    Q[:, c] K[:, c]^T over the key columns c = `columns[h]` (the same count per head),
    and attention is computed once per cluster, then expanded to every row of it
    (backends/sparc/clustering.py gives the exact semantics; `cluster-rows` chooses
    the columns and the counts). The values are stored densely: the format changes
    what attention over Q computes, not how Q is stored. The lists are small (heads x
    blocks), so they are the attribute's own data; `cluster-rows` also keeps them in
    the DataStore (`<kernel>.<symbol>#columns`, `#clusters`, `#kl`).

    Storage bits = numel * value_bits (dense).
    """

    name = "sparsec.row_clustered"

    block: IntAttr
    columns: ArrayAttr[ArrayAttr[IntAttr]]
    clusters: ArrayAttr[ArrayAttr[IntAttr]]

    def __init__(self, block: int, columns: list[list[int]] | tuple[tuple[int, ...], ...],
                 clusters: list[list[int]] | tuple[tuple[int, ...], ...]):
        super().__init__(IntAttr(block), _int_lists(columns), _int_lists(clusters))

    @property
    def block_rows(self) -> int:
        """Rows per block (the last block of a head may be shorter)."""
        return self.block.data

    @property
    def column_lists(self) -> tuple[tuple[int, ...], ...]:
        """Per head, the key columns of the low-rank scores."""
        return tuple(tuple(v.data for v in row.data) for row in self.columns.data)

    @property
    def cluster_lists(self) -> tuple[tuple[int, ...], ...]:
        """Per head, the clusters of each row block."""
        return tuple(tuple(v.data for v in row.data) for row in self.clusters.data)

    @property
    def heads(self) -> int:
        return len(self.columns.data)

    def verify(self) -> None:
        if self.block_rows < 1:
            raise VerifyException(f"sparsec.row_clustered: block must be >= 1, got {self.block_rows}")
        columns, clusters = self.column_lists, self.cluster_lists
        if not columns or len(columns) != len(clusters):
            raise VerifyException(
                f"sparsec.row_clustered: columns and clusters need one list per head, got "
                f"{len(columns)} and {len(clusters)}")
        if len({len(row) for row in columns}) != 1 or not columns[0]:
            raise VerifyException("sparsec.row_clustered: every head needs the same number "
                                  "(>= 1) of key columns")
        for head, row in enumerate(columns):
            if len(set(row)) != len(row) or min(row) < 0:
                raise VerifyException(f"sparsec.row_clustered: columns of head {head} must be "
                                      f"distinct and >= 0, got {list(row)}")
        for head, row in enumerate(clusters):
            if not row or min(row) < 1:
                raise VerifyException(f"sparsec.row_clustered: clusters of head {head} must be "
                                      f">= 1 per block, got {list(row)}")

    def verify_tensor_type(self, tensor_type: TensorType[Attribute]) -> None:
        shape = tuple(tensor_type.get_shape())
        if len(shape) not in (2, 3):
            raise VerifyException("sparsec.row_clustered: expected a query [T, d] or [heads, "
                                  f"T, d], got {_shape_text(tensor_type)}")
        heads, rows, width = (1, *shape) if len(shape) == 2 else shape
        if heads != self.heads:
            raise VerifyException(f"sparsec.row_clustered: columns and clusters for "
                                  f"{self.heads} head(s), but the query has {heads}")
        if max(max(row) for row in self.column_lists) >= width:
            raise VerifyException(f"sparsec.row_clustered: a key column exceeds the query's "
                                  f"last dimension d = {width}")
        blocks = -(-rows // self.block_rows)
        for head, row in enumerate(self.cluster_lists):
            if len(row) != blocks:
                raise VerifyException(
                    f"sparsec.row_clustered: head {head} has {len(row)} cluster counts, but "
                    f"{rows} rows in blocks of {self.block_rows} make {blocks} blocks")
            sizes = [min(self.block_rows, rows - b * self.block_rows) for b in range(blocks)]
            over = [b for b, (k, n) in enumerate(zip(row, sizes, strict=True)) if k > n]
            if over:
                b = over[0]
                raise VerifyException(
                    f"sparsec.row_clustered: block {b} of head {head} has {sizes[b]} rows but "
                    f"{row[b]} clusters")

    def describe(self) -> str:
        total = sum(sum(row) for row in self.cluster_lists)
        blocks = sum(len(row) for row in self.cluster_lists)
        return (f"row-clustered: {total} clusters over {blocks} blocks of {self.block_rows} "
                f"rows, low-rank scores over {len(self.column_lists[0])} key columns")

    def layout(self) -> Attribute | None:
        return None

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> list[Attribute]:
        fields = _parse_fields(
            parser, "sparsec.row_clustered",
            {"block": _parse_int, "columns": _parse_int_lists, "clusters": _parse_int_lists})
        example = "#sparsec.row_clustered<block = 64, columns = [[0, 5]], clusters = [[8, 6]]>"
        for key in ("block", "columns", "clusters"):
            _require(parser, fields, key, example)
        return [IntAttr(int(fields["block"])),  # type: ignore[arg-type]
                _int_lists(fields["columns"]),  # type: ignore[arg-type]
                _int_lists(fields["clusters"])]  # type: ignore[arg-type]

    def print_parameters(self, printer: Printer) -> None:
        printer.print_string(
            f"<block = {self.block_rows}, columns = {_lists_text(self.column_lists)}, "
            f"clusters = {_lists_text(self.cluster_lists)}>")


FORMAT_ATTRIBUTES: tuple[type[ParametrizedAttribute], ...] = (
    BitmapAttr,
    BitColumnAttr,
    RcscAttr,
    CodebookAttr,
    QuantizedAttr,
    DiagonalAttr,
    TiledAttr,
    RowClusteredAttr,
)
"""The attributes registered in the sparsec dialect by this module."""


# ===----------------------------------------------------------------------=== #
# Convenience constructors
# ===----------------------------------------------------------------------=== #


def bitmap(order: str = "row") -> BitmapAttr:
    """SIGMA's bitmap: one bit per element, nonzero values packed in `order` order."""
    return BitmapAttr(order)


def rcsc(pes: int = 64, index_bits: int = 4, ptr_bits: int = 16) -> RcscAttr:
    """EIE's relative-indexed CSC interleaved over `pes` PEs (defaults: EIE's 64 PEs,
    4-bit relative indices, 16-bit column pointers)."""
    return RcscAttr(pes, index_bits, ptr_bits)


def bitcolumn(group: int = 16, axis: int = 0, sign_magnitude: bool = True) -> BitColumnAttr:
    """BitWave's bit columns: groups of `group` along `axis`, sign-magnitude by default."""
    return BitColumnAttr(group, axis, sign_magnitude)


def codebook(bits: int = 4, layout: Attribute | None = None) -> CodebookAttr:
    """A `bits`-bit codebook (weight sharing) over an optional sparse layout."""
    return CodebookAttr(bits, layout)


def quantized(
    bits: int = 8,
    *,
    scale: float | None = None,
    zero_point: int | None = None,
    axis: int | None = None,
    symmetric: bool = False,
    layout: Attribute | None = None,
) -> QuantizedAttr:
    """Integer quantization: per-tensor with `scale` (and `zero_point`), or per-channel
    along `axis` (scales and zero points in the DataStore)."""
    return QuantizedAttr(
        bits, scale=scale, zero_point=zero_point, axis=axis, symmetric=symmetric, layout=layout
    )


# ===----------------------------------------------------------------------=== #
# The common protocol: describe(encoding), layout_of(encoding)
# ===----------------------------------------------------------------------=== #


def _same_storage(enc: SparseTensorEncodingAttr, other: SparseTensorEncodingAttr) -> bool:
    """Same level types and map (bit widths and values ignored)."""
    return (
        enc.level_types == other.level_types and enc.dim_to_lvl_map == other.dim_to_lvl_map
    )


def _structured_dim(enc: SparseTensorEncodingAttr) -> int:
    """The dimension an n:m level runs along (the dim of its `mod` expression)."""
    expr = enc.dim_to_lvl_map.results[-1]
    dims = [e.position for e in expr.dfs() if isinstance(e, AffineDimExpr)]
    return dims[0] if dims else enc.dim_rank - 1


def _known_names(enc: SparseTensorEncodingAttr) -> dict[str, SparseTensorEncodingAttr]:
    if enc.dim_rank != 2:
        return {"COO": coo(enc.dim_rank), "COO (SoA)": coo(enc.dim_rank, soa=True)}
    return {
        "CSR": csr(),
        "CSC": csc(),
        "DCSR": dcsr(),
        "DCSC": dcsc(),
        "COO": coo(2),
        "COO (SoA)": coo(2, soa=True),
    }


def describe_sparse_tensor(enc: SparseTensorEncodingAttr) -> str:
    """A one-line name of an MLIR encoding: "CSR", "BSR 2x3", "2:4 structured along
    dim 1", "dense", or its map text for anything else."""
    if enc.is_all_dense() and enc.is_identity():
        return "dense"
    if enc.dim_rank == 1 and _same_storage(enc, coo(1)):
        return "sparse vector"
    for name, known in _known_names(enc).items():
        if enc.dim_rank >= 1 and _same_storage(enc, known):
            return name
    last = enc.level_types[-1]
    if last.format is LevelFormat.STRUCTURED:
        return f"{last.n}:{last.m} structured along dim {_structured_dim(enc)}"
    sizes = enc.block_sizes()
    if enc.dim_rank == 2 and len(sizes) == 2 and all(s >= 2 for s in sizes):
        if _same_storage(enc, bsr(*sizes)):
            return f"BSR {sizes[0]}x{sizes[1]}"
    return f"sparse_tensor {enc.map_text()}"


def describe(encoding: Attribute | None) -> str:
    """A human one-liner for any tensor encoding: "dense" for none, an MLIR encoding's
    common name ("CSR", "2:4 structured along dim 1"), or a sparsec format's own
    description ("bitmap", "4-bit codebook over relative-indexed CSC over 64 PEs ...")."""
    if encoding is None or isinstance(encoding, NoneAttr):
        return "dense"
    if isinstance(encoding, SparseTensorEncodingAttr):
        return describe_sparse_tensor(encoding)
    own = getattr(encoding, "describe", None)
    if own is not None:
        return str(own())
    return str(encoding)


def layout_of(encoding: Attribute | None) -> Attribute | None:
    """The sparse layout that decides which elements are stored: the encoding itself
    for an MLIR encoding, a bitmap or an rcsc; the nested layout of a codebook or
    quantized encoding; None when storage is dense (no encoding, or no nested layout)."""
    if encoding is None or isinstance(encoding, NoneAttr):
        return None
    if isinstance(encoding, SparseTensorEncodingAttr):
        return encoding
    own = getattr(encoding, "layout", None)
    if own is None:
        return None
    return own()
