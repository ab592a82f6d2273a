"""MLIR's `sparse_tensor` dialect encoding attribute, for xDSL.

`#sparse_tensor.encoding<{ map = (d0, d1) -> (d0 : dense, d1 : compressed) }>`
describes how a tensor is stored: a dimension-to-level map (`dimToLvl`), one
level type per level (dense, batch, compressed, loose_compressed, singleton,
structured[n, m], with the properties nonunique / nonordered / soa), the
position and coordinate overhead bit widths, an optional explicit / implicit
value and optional per-dimension slices.

Why this module exists: xDSL 0.74 has no `sparse_tensor` dialect, and sparsec
must exchange IR with upstream MLIR (LLVM 22's `mlir-opt`). So the parser
accepts what MLIR's parser accepts (including `[s0]` symbol lists, `{l0, l1}`
level-variable forward declarations with `d0 = l0` dimension expressions and
`#sparse_tensor<slice(...)>` dimension slices), builds affine expressions with
MLIR's construction-time simplifications, and the printer emits the canonical
text byte-identical to `mlir-opt`. The verifier reproduces
`SparseTensorEncodingAttr::verify` (structure) and `verifyEncoding` (checks
that need the tensor type, see `verify_against_shape`), raising
`VerifyException` with MLIR's message text.

Known deliberate difference from LLVM 22: a block map with a `floordiv` but no
matching `mod` for some dimension crashes `mlir-opt-22` (an MLIR bug); here it
is rejected with "failed to infer lvlToDim from dimToLvl". Rules that newer
LLVM added after 22 (e.g. "dense level cannot follow a non-unique level") are
deliberately absent, since mlir-opt-22 accepts such encodings.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, ClassVar

from xdsl.dialects.builtin import (
    DYNAMIC_INDEX,
    AffineMapAttr,
    ArrayAttr,
    FloatAttr,
    IntAttr,
    IntegerAttr,
    NoneAttr,
    TensorType,
)
from xdsl.ir import (
    Attribute,
    Data,
    Dialect,
    OpaqueSyntaxAttribute,
    Operation,
    ParametrizedAttribute,
)
from xdsl.ir.affine import (
    AffineBinaryOpExpr,
    AffineBinaryOpKind,
    AffineConstantExpr,
    AffineDimExpr,
    AffineExpr,
    AffineMap,
    AffineSymExpr,
)
from xdsl.irdl import irdl_attr_definition
from xdsl.parser import AttrParser
from xdsl.printer import Printer
from xdsl.utils.exceptions import VerifyException

if TYPE_CHECKING:
    from xdsl.dialects.complex import ComplexNumberAttr

__all__ = [
    "LevelFormat",
    "LevelType",
    "LevelTypeAttr",
    "SparseTensor",
    "SparseTensorDimSliceAttr",
    "SparseTensorEncodingAttr",
    "bsr",
    "coo",
    "csc",
    "csr",
    "dcsc",
    "dcsr",
    "format_affine_expr",
    "mlir_affine_expr",
    "nm",
    "verify_encodings_in",
]

ACCEPTED_BIT_WIDTHS = (0, 8, 16, 32, 64)
"""Overhead widths MLIR accepts; 0 means the `index` type."""

_INT64_MAX = 2**63 - 1
_UINT32_MASK = 0xFFFFFFFF


# ===----------------------------------------------------------------------=== #
# Level types
# ===----------------------------------------------------------------------=== #


class LevelFormat(Enum):
    """A level's storage format, spelled as MLIR spells it; the value is MLIR's bit."""

    DENSE = ("dense", 0x00010000)
    BATCH = ("batch", 0x00020000)
    COMPRESSED = ("compressed", 0x00040000)
    SINGLETON = ("singleton", 0x00080000)
    LOOSE_COMPRESSED = ("loose_compressed", 0x00100000)
    STRUCTURED = ("structured", 0x00200000)

    @property
    def spelling(self) -> str:
        return self.value[0]

    @property
    def bit(self) -> int:
        return self.value[1]

    @staticmethod
    def from_spelling(spelling: str) -> LevelFormat | None:
        for fmt in LevelFormat:
            if fmt.spelling == spelling:
                return fmt
        return None


_PROPERTY_BITS = {"nonunique": 0x1, "nonordered": 0x2, "soa": 0x4}
"""MLIR's `LevelPropNonDefault` bits, in MLIR's printing order."""

_PROPERTYLESS_FORMATS = (LevelFormat.DENSE, LevelFormat.BATCH, LevelFormat.STRUCTURED)

_INVALID_LEVEL_TYPE = "invalid level type: level format doesn't support the properties"


@dataclass(frozen=True)
class LevelType:
    """One level's type: a format, its non-default properties and, for
    `structured[n, m]` (n out of m), the two sizes.

    Mirrors MLIR's `LevelType` (a packed uint64); `bits` gives that encoding.
    Dense, batch and structured levels are always unique and ordered and may
    not carry properties; only compressed, loose_compressed and singleton may.
    """

    format: LevelFormat
    nonunique: bool = False
    nonordered: bool = False
    soa: bool = False
    n: int = 0
    m: int = 0

    # -- constructors ------------------------------------------------------ #

    @staticmethod
    def dense() -> LevelType:
        return LevelType(LevelFormat.DENSE)

    @staticmethod
    def batch() -> LevelType:
        return LevelType(LevelFormat.BATCH)

    @staticmethod
    def compressed(unique: bool = True, ordered: bool = True) -> LevelType:
        return LevelType(LevelFormat.COMPRESSED, not unique, not ordered)

    @staticmethod
    def loose_compressed(unique: bool = True, ordered: bool = True) -> LevelType:
        return LevelType(LevelFormat.LOOSE_COMPRESSED, not unique, not ordered)

    @staticmethod
    def singleton(unique: bool = True, ordered: bool = True, soa: bool = False) -> LevelType:
        return LevelType(LevelFormat.SINGLETON, not unique, not ordered, soa)

    @staticmethod
    def structured(n: int, m: int) -> LevelType:
        return LevelType(LevelFormat.STRUCTURED, n=n, m=m)

    @staticmethod
    def parse(text: str) -> LevelType:
        """Build a level type from its MLIR spelling, e.g. `compressed(nonunique)`
        or `structured[2, 4]`; raise `VerifyException` on a malformed spelling."""
        match = re.fullmatch(
            r"\s*(\w+)\s*(?:\[\s*(\d+)\s*,\s*(\d+)\s*\])?\s*(?:\(([\w\s,]*)\))?\s*", text
        )
        if match is None:
            raise VerifyException(f"malformed level type: {text!r}")
        base, n_text, m_text, props_text = match.groups()
        fmt = LevelFormat.from_spelling(base)
        if fmt is None:
            raise VerifyException(f"unknown level format: {base}")
        props = [p.strip() for p in (props_text or "").split(",") if p.strip()]
        for prop in props:
            if prop not in _PROPERTY_BITS:
                raise VerifyException(f"unknown level property: {prop}")
        if fmt is LevelFormat.STRUCTURED and n_text is None:
            raise VerifyException("expected exactly 2 structured sizes")
        lvl_type = LevelType(
            fmt,
            nonunique="nonunique" in props,
            nonordered="nonordered" in props,
            soa="soa" in props,
            n=int(n_text or 0),
            m=int(m_text or 0),
        )
        lvl_type.verify()
        return lvl_type

    # -- checks and queries ------------------------------------------------ #

    def verify(self) -> None:
        """MLIR's `isValidLvlBits` plus the n:m size rules of its level parser."""
        has_props = self.nonunique or self.nonordered or self.soa
        if self.format in _PROPERTYLESS_FORMATS and has_props:
            raise VerifyException(_INVALID_LEVEL_TYPE)
        if self.format is not LevelFormat.STRUCTURED:
            if self.n or self.m:
                raise VerifyException(f"only structured levels have n:m sizes, got {self}")
            return
        if self.n < 0 or self.m < 0:
            raise VerifyException("expected structured size to be >= 0")
        if self.n > self.m:
            raise VerifyException("expected n <= m in n_out_of_m")
        if self.m > 0xFF:
            raise VerifyException("structured sizes must fit in 8 bits (MLIR's encoding)")

    @property
    def is_unique(self) -> bool:
        return not self.nonunique

    @property
    def is_ordered(self) -> bool:
        return not self.nonordered

    @property
    def is_dense(self) -> bool:
        return self.format is LevelFormat.DENSE

    @property
    def is_batch(self) -> bool:
        return self.format is LevelFormat.BATCH

    @property
    def is_compressed(self) -> bool:
        return self.format is LevelFormat.COMPRESSED

    @property
    def is_loose_compressed(self) -> bool:
        return self.format is LevelFormat.LOOSE_COMPRESSED

    @property
    def is_singleton(self) -> bool:
        return self.format is LevelFormat.SINGLETON

    @property
    def is_structured(self) -> bool:
        return self.format is LevelFormat.STRUCTURED

    @property
    def has_dense_semantic(self) -> bool:
        """Dense-like levels (dense, batch) store no positions or coordinates."""
        return self.format in (LevelFormat.DENSE, LevelFormat.BATCH)

    @property
    def has_sparse_semantic(self) -> bool:
        return not self.has_dense_semantic

    @property
    def has_positions(self) -> bool:
        """Whether the level stores a positions buffer (MLIR's `isWithPosLT`)."""
        return self.format in (LevelFormat.COMPRESSED, LevelFormat.LOOSE_COMPRESSED)

    @property
    def has_coordinates(self) -> bool:
        """Whether the level stores a coordinates buffer (MLIR's `isWithCrdLT`)."""
        return self.has_sparse_semantic

    @property
    def bits(self) -> int:
        """MLIR's packed uint64: | 8-bit n | 8-bit m | 16-bit format | 16-bit props |."""
        props = sum(bit for name, bit in _PROPERTY_BITS.items() if getattr(self, name))
        return self.format.bit | props | (self.n << 32) | (self.m << 40)

    def without_storage_irrelevant_properties(self) -> LevelType:
        """Drop nonunique/nonordered, which do not change the storage scheme."""
        return LevelType(self.format, soa=self.soa, n=self.n, m=self.m)

    def to_mlir_string(self) -> str:
        """The spelling MLIR prints (`LevelType::toMLIRString`)."""
        text = self.format.spelling
        if self.is_structured:
            text += f"[{self.n}, {self.m}]"
        props = [name for name in _PROPERTY_BITS if getattr(self, name)]
        if props:
            text += "(" + ", ".join(props) + ")"
        return text

    def __str__(self) -> str:
        return self.to_mlir_string()


@irdl_attr_definition
class LevelTypeAttr(Data[LevelType]):
    """Wraps a `LevelType` so it can be a parameter of the encoding attribute.

    Not registered in the dialect: MLIR has no stand-alone level-type
    attribute; it only ever appears inside `#sparse_tensor.encoding`.
    """

    name = "sparse_tensor.level_type"

    @classmethod
    def parse_parameter(cls, parser: AttrParser) -> LevelType:
        with parser.in_angle_brackets():
            return _parse_level_type(parser)

    def print_parameter(self, printer: Printer) -> None:
        printer.print_string(f"<{self.data.to_mlir_string()}>")


def _pack_structured_sizes(n: int, m: int) -> tuple[int, int]:
    """What MLIR's packing `n << 32 | m << 40` reads back as (n, m) for sizes
    over 255 (e.g. `structured[300, 400]` prints as `structured[44, 145]`)."""
    return n & 0xFF, ((n >> 8) | m) & 0xFF


def _parse_structured_size(parser: AttrParser) -> int:
    start = parser.pos
    value = parser.parse_optional_integer(allow_boolean=False, allow_negative=True)
    if value is None:
        parser.raise_error("expected valid integer for structured size")
    if value < 0:
        parser.raise_error("expected structured size to be >= 0", start, parser.pos)
    return value


def _parse_level_property(parser: AttrParser) -> str:
    start = parser.pos
    prop = parser.parse_optional_identifier()
    if prop is None:
        parser.raise_error("expected valid level property (e.g. nonordered, nonunique or high)")
    if prop not in _PROPERTY_BITS:
        parser.raise_error(f"unknown level property: {prop}", start, parser.pos)
    return prop


def _parse_level_type(parser: AttrParser) -> LevelType:
    """Port of MLIR's `LvlTypeParser::parseLvlType`, with its error messages."""
    start = parser.pos
    base = parser.parse_optional_identifier()
    if base is None:
        parser.raise_error("expected valid level format (e.g. dense, compressed or singleton)")
    base_end = parser.pos
    sizes: list[int] = []
    if base == "structured":
        sizes = (
            parser.parse_optional_comma_separated_list(
                parser.Delimiter.SQUARE,
                lambda: _parse_structured_size(parser),
                " in structured n out of m",
            )
            or []
        )
        if len(sizes) != 2:
            parser.raise_error("expected exactly 2 structured sizes", start, base_end)
        if sizes[0] > sizes[1]:
            parser.raise_error("expected n <= m in n_out_of_m", start, base_end)
    props = (
        parser.parse_optional_comma_separated_list(
            parser.Delimiter.PAREN,
            lambda: _parse_level_property(parser),
            " in level property list",
        )
        or []
    )
    fmt = LevelFormat.from_spelling(base)
    if fmt is None:
        parser.raise_error(f"unknown level format: {base}", start, base_end)
    n, m = _pack_structured_sizes(*sizes) if sizes else (0, 0)
    lvl_type = LevelType(fmt, "nonunique" in props, "nonordered" in props, "soa" in props, n, m)
    if fmt in _PROPERTYLESS_FORMATS and props:
        parser.raise_error(_INVALID_LEVEL_TYPE, start, base_end)
    return lvl_type


# ===----------------------------------------------------------------------=== #
# Affine expressions built and printed exactly as MLIR does
# ===----------------------------------------------------------------------=== #
#
# xDSL's AffineExpr operators simplify differently from MLIR's (e.g. xDSL
# distributes `(a + b) * c`), which would change the printed text. These
# functions reproduce MLIR's construction-time rules (AffineExpr.cpp:
# simplifyAdd/Mul/FloorDiv/CeilDiv/Mod) on top of xDSL's expression classes.

_Kind = AffineBinaryOpKind


def _const(value: int) -> AffineExpr:
    return AffineConstantExpr(value)


def _const_or_none(value: int) -> AffineExpr | None:
    """A folded constant, or None (keep the operation) when it overflows int64, as MLIR."""
    return _const(value) if -(2**63) <= value <= _INT64_MAX else None


def _const_value(expr: AffineExpr) -> int | None:
    return expr.value if isinstance(expr, AffineConstantExpr) else None


def _binop(expr: AffineExpr, kind: AffineBinaryOpKind) -> AffineBinaryOpExpr | None:
    if isinstance(expr, AffineBinaryOpExpr) and expr.kind is kind:
        return expr
    return None


def is_symbolic_or_constant(expr: AffineExpr) -> bool:
    """True when `expr` uses no dimension (MLIR's `isSymbolicOrConstant`)."""
    if isinstance(expr, AffineBinaryOpExpr):
        return is_symbolic_or_constant(expr.lhs) and is_symbolic_or_constant(expr.rhs)
    return not isinstance(expr, AffineDimExpr)


def largest_known_divisor(expr: AffineExpr) -> int:
    """MLIR's `AffineExpr::getLargestKnownDivisor`."""
    if isinstance(expr, AffineConstantExpr):
        return abs(expr.value)
    if not isinstance(expr, AffineBinaryOpExpr):
        return 1
    lhs_div = largest_known_divisor(expr.lhs)
    if expr.kind is _Kind.Mul:
        return lhs_div * largest_known_divisor(expr.rhs)
    if expr.kind in (_Kind.Add, _Kind.Mod):
        return math.gcd(lhs_div, largest_known_divisor(expr.rhs))
    rhs = _const_value(expr.rhs)
    if rhs and lhs_div % rhs == 0:
        return abs(lhs_div // rhs)
    return 1


def _fold_sum_of_multiples(lhs: AffineExpr, rhs: AffineExpr) -> AffineExpr | None:
    """`c1 * e + c2 * e` (either factor may be an implicit 1) -> `(c1 + c2) * e`."""
    lmul = _binop(lhs, _Kind.Mul)
    rmul = _binop(rhs, _Kind.Mul)
    first, c1 = (
        (lmul.lhs, lmul.rhs.value) if lmul and _const_value(lmul.rhs) is not None else (lhs, 1)
    )
    second, c2 = (
        (rmul.lhs, rmul.rhs.value) if rmul and _const_value(rmul.rhs) is not None else (rhs, 1)
    )
    if first == second:
        return aff_mul(first, _const(c1 + c2))
    return None


def _fold_into_mod(lhs: AffineExpr, rhs: AffineExpr) -> AffineExpr | None:
    """`e - q * (e floordiv q)` -> `e mod q`, as LLVM 22's simplifyAdd tries it,
    including its retry on the last summand of a sum:
    `(a + e) + (e floordiv c) * -c` -> `a + (e mod c)` (which also re-nests
    `(a + s0) + (e floordiv c) * k` as `a + ((e floordiv c) * k + s0)`)."""
    if not isinstance(rhs, AffineBinaryOpExpr):
        return None
    lrhs, rrhs = rhs.lhs, rhs.rhs
    inner_mul = _binop(lrhs, _Kind.Mul)
    if _const_value(rrhs) == -1 and inner_mul is not None:
        div = _binop(inner_mul.lhs, _Kind.FloorDiv)
        if div is None:
            return None
        if div.rhs == inner_mul.rhs and lhs == div.lhs:
            return aff_mod(lhs, inner_mul.rhs)
    div = _binop(lrhs, _Kind.FloorDiv)
    if div is None or rhs.kind is not _Kind.Mul:
        return None
    divisor = _const_value(div.rhs)
    if divisor is not None and divisor > 0 and lhs == div.lhs and div.rhs == aff_neg(rrhs):
        return aff_mod(lhs, div.rhs)
    ladd = _binop(lhs, _Kind.Add)
    if ladd is not None and (last := _simplify_add(ladd.rhs, rhs)) is not None:
        return aff_add(ladd.lhs, last)
    return None


def _same_kind_out_of_order(lhs: AffineExpr, rhs: AffineExpr) -> bool:
    """LLVM 22 orders `d1 + d0` as `d0 + d1`, `s1 + s0` as `s0 + s1`, `s1 * s0` as `s0 * s1`."""
    for kind in (AffineDimExpr, AffineSymExpr):
        if isinstance(lhs, kind) and isinstance(rhs, kind):
            return lhs.position > rhs.position
    return False


def _simplify_add(lhs: AffineExpr, rhs: AffineExpr) -> AffineExpr | None:
    lconst, rconst = _const_value(lhs), _const_value(rhs)
    if lconst is not None and rconst is not None:
        return _const_or_none(lconst + rconst)
    if lconst is not None or (is_symbolic_or_constant(lhs) and not is_symbolic_or_constant(rhs)):
        return aff_add(rhs, lhs)
    if _same_kind_out_of_order(lhs, rhs):
        return aff_add(rhs, lhs)
    if rconst == 0:
        return lhs
    ladd = _binop(lhs, _Kind.Add)
    ladd_const = _const_value(ladd.rhs) if ladd else None
    if ladd is not None and ladd_const is not None and rconst is not None:
        return aff_add(ladd.lhs, _const(ladd_const + rconst))
    if (folded := _fold_sum_of_multiples(lhs, rhs)) is not None:
        return folded
    if ladd is not None and ladd_const is not None:
        return aff_add(aff_add(ladd.lhs, rhs), ladd.rhs)
    return _fold_into_mod(lhs, rhs)


def aff_add(lhs: AffineExpr, rhs: AffineExpr) -> AffineExpr:
    """`lhs + rhs` with MLIR's simplifications."""
    simplified = _simplify_add(lhs, rhs)
    return simplified if simplified is not None else AffineBinaryOpExpr(_Kind.Add, lhs, rhs)


def _simplify_mul(lhs: AffineExpr, rhs: AffineExpr) -> AffineExpr | None:
    lconst, rconst = _const_value(lhs), _const_value(rhs)
    if lconst is not None and rconst is not None:
        return _const_or_none(lconst * rconst)
    if not is_symbolic_or_constant(lhs) and not is_symbolic_or_constant(rhs):
        raise VerifyException(
            "non-affine expression: at least one of the multiply operands has to be "
            "either a constant or symbolic"
        )
    if not is_symbolic_or_constant(rhs) or lconst is not None or _same_kind_out_of_order(lhs, rhs):
        return aff_mul(rhs, lhs)
    if rconst == 1:
        return lhs
    if rconst == 0:
        return rhs
    lmul = _binop(lhs, _Kind.Mul)
    lmul_const = _const_value(lmul.rhs) if lmul else None
    if lmul is None or lmul_const is None:
        return None
    if rconst is not None:
        return aff_mul(lmul.lhs, _const(lmul_const * rconst))
    return aff_mul(aff_mul(lmul.lhs, rhs), lmul.rhs)


def aff_mul(lhs: AffineExpr, rhs: AffineExpr) -> AffineExpr:
    """`lhs * rhs` with MLIR's simplifications; one side must be symbolic or constant."""
    simplified = _simplify_mul(lhs, rhs)
    return simplified if simplified is not None else AffineBinaryOpExpr(_Kind.Mul, lhs, rhs)


def aff_neg(expr: AffineExpr) -> AffineExpr:
    return aff_mul(expr, _const(-1))


def aff_sub(lhs: AffineExpr, rhs: AffineExpr) -> AffineExpr:
    return aff_add(lhs, aff_neg(rhs))


def _simplify_div(lhs: AffineExpr, divisor: int, ceil: bool) -> AffineExpr | None:
    """LLVM 22 simplifies divisions by any non-zero constant, negative ones included."""
    if (lconst := _const_value(lhs)) is not None:
        return _const_or_none(-(-lconst // divisor) if ceil else lconst // divisor)
    if divisor == 1:
        return lhs
    lmul = _binop(lhs, _Kind.Mul)
    lmul_const = _const_value(lmul.rhs) if lmul else None
    if lmul is not None and lmul_const is not None and lmul_const % divisor == 0:
        return aff_mul(lmul.lhs, _const(lmul_const // divisor))
    ladd = _binop(lhs, _Kind.Add)
    if ceil or ladd is None:
        return None
    if largest_known_divisor(ladd.lhs) % divisor and largest_known_divisor(ladd.rhs) % divisor:
        return None
    return aff_add(aff_floordiv(ladd.lhs, _const(divisor)), aff_floordiv(ladd.rhs, _const(divisor)))


def aff_floordiv(lhs: AffineExpr, rhs: AffineExpr) -> AffineExpr:
    """`lhs floordiv rhs` with MLIR's simplifications."""
    rconst = _const_value(rhs)
    simplified = _simplify_div(lhs, rconst, False) if rconst else None
    return simplified if simplified is not None else AffineBinaryOpExpr(_Kind.FloorDiv, lhs, rhs)


def aff_ceildiv(lhs: AffineExpr, rhs: AffineExpr) -> AffineExpr:
    """`lhs ceildiv rhs` with MLIR's simplifications."""
    rconst = _const_value(rhs)
    simplified = _simplify_div(lhs, rconst, True) if rconst else None
    return simplified if simplified is not None else AffineBinaryOpExpr(_Kind.CeilDiv, lhs, rhs)


def _simplify_mod(lhs: AffineExpr, modulus: int) -> AffineExpr | None:
    if (lconst := _const_value(lhs)) is not None:
        return _const(lconst % modulus)
    if largest_known_divisor(lhs) % modulus == 0:
        return _const(0)
    ladd = _binop(lhs, _Kind.Add)
    if ladd is not None:
        if largest_known_divisor(ladd.lhs) % modulus == 0:
            return aff_mod(ladd.rhs, _const(modulus))
        if largest_known_divisor(ladd.rhs) % modulus == 0:
            return aff_mod(ladd.lhs, _const(modulus))
    lmod = _binop(lhs, _Kind.Mod)
    inner = _const_value(lmod.rhs) if lmod else None
    if lmod is not None and inner is not None and inner >= 1 and inner % modulus == 0:
        return aff_mod(lmod.lhs, _const(modulus))
    return None


def aff_mod(lhs: AffineExpr, rhs: AffineExpr) -> AffineExpr:
    """`lhs mod rhs` with MLIR's simplifications."""
    rconst = _const_value(rhs)
    simplified = _simplify_mod(lhs, rconst) if rconst is not None and rconst >= 1 else None
    return simplified if simplified is not None else AffineBinaryOpExpr(_Kind.Mod, lhs, rhs)


_BUILDERS: dict[AffineBinaryOpKind, Callable[[AffineExpr, AffineExpr], AffineExpr]] = {
    _Kind.Add: aff_add,
    _Kind.Mul: aff_mul,
    _Kind.FloorDiv: aff_floordiv,
    _Kind.CeilDiv: aff_ceildiv,
    _Kind.Mod: aff_mod,
}


def mlir_affine_expr(expr: AffineExpr) -> AffineExpr:
    """Rebuild an xDSL expression bottom-up with MLIR's simplifications, so an
    expression made with xDSL's operators prints as MLIR would print it."""
    if not isinstance(expr, AffineBinaryOpExpr):
        return expr
    return _BUILDERS[expr.kind](mlir_affine_expr(expr.lhs), mlir_affine_expr(expr.rhs))


def mlir_affine_map(amap: AffineMap) -> AffineMap:
    return AffineMap(
        amap.num_dims, amap.num_symbols, tuple(mlir_affine_expr(e) for e in amap.results)
    )


_SPELLING = {
    _Kind.Add: " + ",
    _Kind.Mul: " * ",
    _Kind.FloorDiv: " floordiv ",
    _Kind.CeilDiv: " ceildiv ",
    _Kind.Mod: " mod ",
}


def _format_add(expr: AffineBinaryOpExpr) -> str:
    """MLIR's pretty forms for `a + b * -1`, `a + b * -c` and `a + -c`."""
    lhs, rhs = expr.lhs, expr.rhs
    rmul = _binop(rhs, _Kind.Mul)
    factor = _const_value(rmul.rhs) if rmul else None
    if rmul is not None and factor == -1:
        strong = isinstance(rmul.lhs, AffineBinaryOpExpr) and rmul.lhs.kind is _Kind.Add
        return f"{format_affine_expr(lhs)} - {format_affine_expr(rmul.lhs, strong)}"
    if rmul is not None and factor is not None and factor < -1:
        return f"{format_affine_expr(lhs)} - {format_affine_expr(rmul.lhs, True)} * {-factor}"
    rconst = _const_value(rhs)
    if rconst is not None and rconst < 0:
        return f"{format_affine_expr(lhs)} - {-rconst}"
    return f"{format_affine_expr(lhs)} + {format_affine_expr(rhs)}"


def format_affine_expr(expr: AffineExpr, strong: bool = False) -> str:
    """Print an affine expression byte-identically to MLIR's AsmPrinter
    (`printAffineExprInternal`); `strong` means the enclosing operator binds tighter."""
    if isinstance(expr, AffineDimExpr):
        return f"d{expr.position}"
    if isinstance(expr, AffineSymExpr):
        return f"s{expr.position}"
    if isinstance(expr, AffineConstantExpr):
        return str(expr.value)
    assert isinstance(expr, AffineBinaryOpExpr)
    if expr.kind is _Kind.Add:
        text = _format_add(expr)
    elif expr.kind is _Kind.Mul and _const_value(expr.rhs) == -1:
        text = "-" + format_affine_expr(expr.lhs, True)
    else:
        text = (
            format_affine_expr(expr.lhs, True)
            + _SPELLING[expr.kind]
            + format_affine_expr(expr.rhs, True)
        )
    return f"({text})" if strong else text


# ===----------------------------------------------------------------------=== #
# Map analysis (MLIR's inferLvlToDim, isBlockSparsity, ...)
# ===----------------------------------------------------------------------=== #


def _dim_position(expr: AffineExpr) -> int | None:
    return expr.position if isinstance(expr, AffineDimExpr) else None


def is_permutation(amap: AffineMap) -> bool:
    """MLIR's `AffineMap::isPermutation`."""
    if amap.num_symbols or amap.num_dims != len(amap.results):
        return False
    positions = [_dim_position(e) for e in amap.results]
    return None not in positions and len(set(positions)) == len(positions)


def _block_entry(expr: AffineExpr, coefficients: dict[int, int]) -> bool | None:
    """Account one result of a block map; None means "not block sparsity",
    True means the result is a `mod` (a block), False a plain dim or floordiv."""
    if isinstance(expr, AffineDimExpr):
        if expr.position in coefficients:
            return None
        coefficients[expr.position] = 0
        return False
    if not isinstance(expr, AffineBinaryOpExpr):
        return None
    pos, const = _dim_position(expr.lhs), _const_value(expr.rhs)
    if pos is None or const is None or const <= 0:
        return None
    if expr.kind is _Kind.FloorDiv:
        if pos in coefficients:
            return None
        coefficients[pos] = const
        return False
    if expr.kind is _Kind.Mod and coefficients.get(pos) == const:
        return True
    return None


def is_block_sparsity(amap: AffineMap) -> bool:
    """MLIR's `isBlockSparsity`: results are `d`, `d floordiv c` or, after the
    floordiv of the same dim, `d mod c`; at least one `mod` exists."""
    coefficients: dict[int, int] = {}
    has_block = False
    for expr in amap.results:
        entry = _block_entry(expr, coefficients)
        if entry is None:
            return False
        has_block = has_block or entry
    return has_block


def block_sizes(amap: AffineMap) -> tuple[int, ...]:
    """MLIR's `getBlockSize`: 0 per plain-dim result, c per `mod c` result."""
    sizes: list[int] = []
    for expr in amap.results:
        if isinstance(expr, AffineBinaryOpExpr):
            if expr.kind is _Kind.Mod:
                sizes.append(_const_value(expr.rhs) or 0)
        else:
            sizes.append(0)
    return tuple(sizes)


def _inverse_permutation(amap: AffineMap) -> AffineMap:
    exprs: list[AffineExpr | None] = [None] * amap.num_dims
    for lvl, expr in enumerate(amap.results):
        exprs[_dim_position(expr) or 0] = AffineDimExpr(lvl)
    return AffineMap(len(amap.results), 0, tuple(e for e in exprs if e is not None))


def _inverse_block_sparsity(amap: AffineMap) -> AffineMap | None:
    """MLIR's `inverseBlockSparsity`, including its result order (plain dims
    first, then one `l_div * c + l_mod` per blocked dim, by dim position).
    Returns None where MLIR 22 would crash (a floordiv without its mod)."""
    plain: list[AffineExpr] = []
    parts: dict[int, list[AffineExpr]] = {}
    for lvl, expr in enumerate(amap.results):
        if not isinstance(expr, AffineBinaryOpExpr):
            plain.append(AffineDimExpr(lvl))
            continue
        pos = _dim_position(expr.lhs) or 0
        if expr.kind is _Kind.FloorDiv:
            parts[pos] = [AffineDimExpr(lvl), expr.rhs]
        else:
            parts[pos].append(AffineDimExpr(lvl))
    if any(len(p) != 3 for p in parts.values()):
        return None
    blocked = [aff_add(aff_mul(p[0], p[1]), p[2]) for _, p in sorted(parts.items())]
    return AffineMap(len(amap.results), 0, tuple(plain + blocked))


def infer_lvl_to_dim(dim_to_lvl: AffineMap) -> AffineMap | None:
    """MLIR's `inferLvlToDim`: the inverse of a permutation or block map;
    None when there are symbols or no inverse can be inferred."""
    if dim_to_lvl.num_symbols:
        return None
    if is_permutation(dim_to_lvl):
        return _inverse_permutation(dim_to_lvl)
    if is_block_sparsity(dim_to_lvl):
        return _inverse_block_sparsity(dim_to_lvl)
    return None


def identity_map(rank: int) -> AffineMap:
    return AffineMap(rank, 0, tuple(AffineDimExpr(i) for i in range(rank)))


# ===----------------------------------------------------------------------=== #
# #sparse_tensor<slice(offset, size, stride)>
# ===----------------------------------------------------------------------=== #


def _parse_slice_value(parser: AttrParser) -> int:
    start = parser.pos
    value = parser.parse_optional_integer(allow_boolean=False, allow_negative=True)
    if value is None:
        parser.parse_punctuation("?", " for a dynamic slice value")
        return DYNAMIC_INDEX
    if value < 0:
        parser.raise_error(
            "expect positive value or ? for slice offset/size/stride", start, parser.pos
        )
    return value


@irdl_attr_definition
class SparseTensorDimSliceAttr(ParametrizedAttribute, OpaqueSyntaxAttribute):
    """`#sparse_tensor<slice(offset, size, stride)>`: one dimension of a sparse
    tensor slice; `?` (stored as `DYNAMIC_INDEX`) marks a dynamic value."""

    name = "sparse_tensor.slice"

    offset: IntAttr
    size: IntAttr
    stride: IntAttr

    def __init__(self, offset: int | None = 0, size: int | None = None, stride: int | None = 1):
        values = (DYNAMIC_INDEX if v is None else v for v in (offset, size, stride))
        super().__init__(*(IntAttr(v) for v in values))

    @staticmethod
    def is_dynamic(value: int) -> bool:
        return value == DYNAMIC_INDEX

    def static_value(self, value: IntAttr) -> int | None:
        return None if self.is_dynamic(value.data) else value.data

    @property
    def static_offset(self) -> int | None:
        return self.static_value(self.offset)

    @property
    def static_size(self) -> int | None:
        return self.static_value(self.size)

    @property
    def static_stride(self) -> int | None:
        return self.static_value(self.stride)

    def is_completely_dynamic(self) -> bool:
        return all(self.is_dynamic(v.data) for v in (self.offset, self.size, self.stride))

    def verify(self) -> None:
        offset, size, stride = (v.data for v in (self.offset, self.size, self.stride))
        if not self.is_dynamic(offset) and offset < 0:
            raise VerifyException("expect non-negative value or ? for slice offset")
        if not self.is_dynamic(size) and size <= 0:
            raise VerifyException("expect positive value or ? for slice size")
        if not self.is_dynamic(stride) and stride <= 0:
            raise VerifyException("expect positive value or ? for slice stride")

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> list[Attribute]:
        values = parser.parse_comma_separated_list(
            parser.Delimiter.PAREN, lambda: _parse_slice_value(parser), " in slice"
        )
        if len(values) != 3:
            parser.raise_error("expected (offset, size, stride) for a slice")
        return [IntAttr(v) for v in values]

    def slice_text(self) -> str:
        """`(offset, size, stride)` with `?` for dynamic values, as MLIR prints it."""
        parts = (
            "?" if self.is_dynamic(v.data) else str(v.data)
            for v in (self.offset, self.size, self.stride)
        )
        return "(" + ", ".join(parts) + ")"

    def print_parameters(self, printer: Printer) -> None:
        printer.print_string(self.slice_text())


# ===----------------------------------------------------------------------=== #
# The dimension-to-level map parser (MLIR's DimLvlMapParser + VarEnv)
# ===----------------------------------------------------------------------=== #


class _VarKind(Enum):
    SYMBOL = "s"
    DIMENSION = "d"
    LEVEL = "l"


def _nth(num: int) -> str:
    """MLIR's ordinal spelling in its level-ordering error (1st, 2nd, 0th, 3th, ...)."""
    return {1: "1st", 2: "2nd"}.get(num, f"{num}th")


@dataclass
class _ParsedMap:
    """What one `map = ...` entry yields."""

    lvl_types: list[LevelType]
    dim_slices: list[SparseTensorDimSliceAttr | None]
    dim_to_lvl: AffineMap
    lvl_to_dim: AffineMap | None


class _DimLvlMapParser:
    """Parses `[syms] {lvls} (dim-specs) -> (lvl-specs)` like MLIR's
    `DimLvlMapParser`: symbols, dims and levels share one name space, level
    expressions see dims and symbols, dim expressions see levels and symbols."""

    _HIGH_OPS: ClassVar[dict[str, AffineBinaryOpKind]] = {
        "floordiv": _Kind.FloorDiv,
        "ceildiv": _Kind.CeilDiv,
        "mod": _Kind.Mod,
    }

    def __init__(self, parser: AttrParser) -> None:
        self.parser = parser
        self.kinds: dict[str, _VarKind] = {}
        self.counts = {kind: 0 for kind in _VarKind}
        self.dims_and_symbols: dict[str, AffineExpr] = {}
        self.lvls_and_symbols: dict[str, AffineExpr] = {}
        self.lvl_numbers: dict[str, int] = {}

    # -- variables --------------------------------------------------------- #

    def _bind(self, kind: _VarKind) -> str:
        start = self.parser.pos
        name = self.parser.parse_optional_identifier()
        if name is None:
            self.parser.raise_error("expected bare identifier")
        if name in self.kinds:
            self.parser.raise_error(f"redefinition of identifier '{name}'", start, self.parser.pos)
        self.kinds[name] = kind
        num = self.counts[kind]
        self.counts[kind] += 1
        if kind is _VarKind.SYMBOL:
            self.dims_and_symbols[name] = self.lvls_and_symbols[name] = AffineSymExpr(num)
        elif kind is _VarKind.DIMENSION:
            self.dims_and_symbols[name] = AffineDimExpr(num)
        else:
            self.lvls_and_symbols[name] = AffineDimExpr(num)
            self.lvl_numbers[name] = num
        return name

    def _parse_lvl_binding(self, spec_num: int) -> None:
        """`l0 =` at the start of a level spec, when levels were forward-declared."""
        start = self.parser.pos
        name = self.parser.parse_optional_identifier()
        if name is None:
            self.parser.raise_error("expected bare identifier")
        if self.kinds.get(name) is not _VarKind.LEVEL:
            self.parser.raise_error(
                f"use of undeclared identifier '{name}'", start, self.parser.pos
            )
        forward_num = self.lvl_numbers[name]
        if forward_num != spec_num:
            self.parser.raise_error(
                f"Level-variable ordering mismatch. The variable '{name}' was "
                f"forward-declared as the {_nth(forward_num)} level; but is bound by "
                f"the {_nth(spec_num)} specification.",
                start,
                self.parser.pos,
            )
        self.parser.parse_punctuation("=")

    # -- affine expressions (MLIR's AffineParser) -------------------------- #

    def _consume_high_op(self) -> AffineBinaryOpKind | None:
        if self.parser.parse_optional_punctuation("*") is not None:
            return _Kind.Mul
        keyword = self.parser.parse_optional_keyword_in(tuple(self._HIGH_OPS))
        return self._HIGH_OPS[keyword] if keyword is not None else None

    def _consume_low_op(self) -> str | None:
        if self.parser.parse_optional_punctuation("+") is not None:
            return "+"
        if self.parser.parse_optional_punctuation("-") is not None:
            return "-"
        return None

    def _high_binop(
        self, kind: AffineBinaryOpKind, lhs: AffineExpr, rhs: AffineExpr, at: int
    ) -> AffineExpr:
        if kind is _Kind.Mul:
            if not is_symbolic_or_constant(lhs) and not is_symbolic_or_constant(rhs):
                self.parser.raise_error(
                    "non-affine expression: at least one of the multiply operands has "
                    "to be either a constant or symbolic",
                    at,
                    at + 1,
                )
            return aff_mul(lhs, rhs)
        if not is_symbolic_or_constant(rhs):
            op = _SPELLING[kind].strip()
            self.parser.raise_error(
                f"non-affine expression: right operand of {op} has to be either a "
                "constant or symbolic",
                at,
                at + 1,
            )
        return _BUILDERS[kind](lhs, rhs)

    @staticmethod
    def _low_binop(op: str, lhs: AffineExpr, rhs: AffineExpr) -> AffineExpr:
        return aff_add(lhs, rhs) if op == "+" else aff_sub(lhs, rhs)

    def _parse_operand(self, scope: dict[str, AffineExpr], after_op: bool = False) -> AffineExpr:
        """A parenthesized expression, a negation, a name or an integer; `after_op`
        selects MLIR's message for a missing right operand."""
        parser = self.parser
        start = parser.pos
        if parser.parse_optional_punctuation("(") is not None:
            if parser.parse_optional_punctuation(")") is not None:
                parser.raise_error("no expression inside parentheses", start, parser.pos)
            expr = self._parse_expr(scope)
            parser.parse_punctuation(")", " to close the parenthesized expression")
            return expr
        if parser.parse_optional_punctuation("-") is not None:
            return aff_neg(self._parse_operand(scope, after_op))
        if (name := parser.parse_optional_identifier()) is not None:
            if name not in scope:
                parser.raise_error("use of undeclared identifier", start, parser.pos)
            return scope[name]
        value = parser.parse_optional_integer(allow_boolean=False, allow_negative=False)
        if value is None and after_op:
            parser.raise_error("missing right operand of binary operator")
        if value is None:
            parser.raise_error("expected affine expression")
        if value > _INT64_MAX:
            parser.raise_error("constant too large for index", start, parser.pos)
        return _const(value)

    def _parse_high(
        self,
        scope: dict[str, AffineExpr],
        llhs: AffineExpr | None = None,
        llhs_op: AffineBinaryOpKind | None = None,
        llhs_at: int = 0,
    ) -> AffineExpr:
        """MLIR's `parseAffineHighPrecOpExpr` (left associative *, floordiv, ...)."""
        lhs = self._parse_operand(scope, after_op=True)
        at = self.parser.pos
        if llhs is not None and llhs_op is not None:
            lhs = self._high_binop(llhs_op, llhs, lhs, llhs_at)
        if (op := self._consume_high_op()) is not None:
            return self._parse_high(scope, lhs, op, at)
        return lhs

    def _parse_expr(self, scope: dict[str, AffineExpr]) -> AffineExpr:
        """MLIR's `parseAffineLowPrecOpExpr` loop: a sum of high-precedence terms."""
        expr = self._parse_term(scope)
        while (op := self._consume_low_op()) is not None:
            expr = self._low_binop(op, expr, self._parse_term(scope, after_op=True))
        return expr

    def _parse_term(self, scope: dict[str, AffineExpr], after_op: bool = False) -> AffineExpr:
        operand = self._parse_operand(scope, after_op)
        at = self.parser.pos
        if (op := self._consume_high_op()) is not None:
            return self._parse_high(scope, operand, op, at)
        return operand

    # -- the map ----------------------------------------------------------- #

    def _parse_dim_spec(self) -> tuple[AffineExpr | None, SparseTensorDimSliceAttr | None]:
        self._bind(_VarKind.DIMENSION)
        expr = None
        if self.parser.parse_optional_punctuation("=") is not None:
            expr = self._parse_expr(self.lvls_and_symbols)
        if self.parser.parse_optional_punctuation(":") is None:
            return expr, None
        start = self.parser.pos
        attr = self.parser.parse_attribute()
        if not isinstance(attr, SparseTensorDimSliceAttr):
            self.parser.raise_error("expected SparseTensorDimSliceAttr", start, self.parser.pos)
        return expr, attr

    def _parse_lvl_spec(self, spec_num: int, declared: bool) -> tuple[AffineExpr, LevelType]:
        if declared:
            self._parse_lvl_binding(spec_num)
        expr = self._parse_expr(self.dims_and_symbols)
        self.parser.parse_punctuation(":", " before a level type")
        return expr, _parse_level_type(self.parser)

    def parse(self) -> _ParsedMap:
        parser = self.parser
        parser.parse_optional_comma_separated_list(
            parser.Delimiter.SQUARE, lambda: self._bind(_VarKind.SYMBOL), " in symbol binding list"
        )
        parser.parse_optional_comma_separated_list(
            parser.Delimiter.BRACES,
            lambda: self._bind(_VarKind.LEVEL),
            " in level declaration list",
        )
        dim_specs = parser.parse_comma_separated_list(
            parser.Delimiter.PAREN, self._parse_dim_spec, " in dimension-specifier list"
        )
        parser.parse_punctuation("->")
        declared_rank = self.counts[_VarKind.LEVEL]
        start = parser.pos
        lvl_specs: list[tuple[AffineExpr, LevelType]] = []
        parser.parse_comma_separated_list(
            parser.Delimiter.PAREN,
            lambda: lvl_specs.append(self._parse_lvl_spec(len(lvl_specs), declared_rank != 0)),
            " in level-specifier list",
        )
        if declared_rank and len(lvl_specs) != declared_rank:
            parser.raise_error(
                "Level-rank mismatch between forward-declarations and specifiers. "
                f"Declared {declared_rank} level-variables; but got {len(lvl_specs)} "
                "level-specifiers.",
                start,
                start + 1,
            )
        num_syms = self.counts[_VarKind.SYMBOL]
        dim_exprs = tuple(e for e, _ in dim_specs if e is not None)
        return _ParsedMap(
            lvl_types=[t for _, t in lvl_specs],
            dim_slices=[s for _, s in dim_specs],
            dim_to_lvl=AffineMap(len(dim_specs), num_syms, tuple(e for e, _ in lvl_specs)),
            lvl_to_dim=AffineMap(len(lvl_specs), num_syms, dim_exprs) if dim_exprs else None,
        )


# ===----------------------------------------------------------------------=== #
# #sparse_tensor.encoding
# ===----------------------------------------------------------------------=== #


def _is_numeric_value(value: Attribute) -> bool:
    """A FloatAttr, IntegerAttr or `#complex.number`. xDSL's complex dialect (which imports
    arith: 75 op definitions) is consulted only once something has imported it: no
    ComplexNumberAttr can exist before, so sparsec does not import it at start-up."""
    if isinstance(value, (FloatAttr, IntegerAttr)):
        return True
    complex_dialect = sys.modules.get("xdsl.dialects.complex")
    return complex_dialect is not None and isinstance(value, complex_dialect.ComplexNumberAttr)

_ENCODING_KEYS = ("map", "posWidth", "crdWidth", "explicitVal", "implicitVal")

LevelTypeLike = LevelType | LevelTypeAttr | str
SliceLike = SparseTensorDimSliceAttr | tuple[int | None, int | None, int | None]


def _as_level_type_attr(lvl: LevelTypeLike) -> LevelTypeAttr:
    if isinstance(lvl, LevelTypeAttr):
        return lvl
    lvl_type = LevelType.parse(lvl) if isinstance(lvl, str) else lvl
    lvl_type.verify()
    return LevelTypeAttr(lvl_type)


def _as_slice(value: SliceLike) -> SparseTensorDimSliceAttr:
    return (
        value if isinstance(value, SparseTensorDimSliceAttr) else SparseTensorDimSliceAttr(*value)
    )


def _value_type(value: FloatAttr | IntegerAttr | ComplexNumberAttr) -> Attribute:
    return value.type  # type: ignore[union-attr]


def _is_zero(value: Attribute) -> bool:
    if isinstance(value, FloatAttr):
        return value.value.data == 0.0
    if isinstance(value, IntegerAttr):
        return value.value.data == 0
    assert _is_numeric_value(value)
    return value.real.data == 0.0 and value.imag.data == 0.0  # type: ignore[attr-defined]


@irdl_attr_definition
class SparseTensorEncodingAttr(ParametrizedAttribute):
    """`#sparse_tensor.encoding<{ map = ..., posWidth = .., crdWidth = .., explicitVal = ..,
    implicitVal = .. }>`: how a tensor is stored, as MLIR's SparseTensorEncodingAttr.

    Parameters (MLIR's storage, one to one):
      * `lvl_types`: one `LevelTypeAttr` per level;
      * `dim_to_lvl`: the dimension-to-level affine map (always present; MLIR's
        null map, i.e. identity, is stored as the identity map);
      * `lvl_to_dim`: its inverse, as MLIR infers it (NoneAttr when the map has
        symbols, the only case where MLIR accepts a map it cannot invert);
      * `pos_width` / `crd_width`: overhead bit widths, 0 meaning `index`;
      * `explicit_val` / `implicit_val`: a number attribute or NoneAttr;
      * `dim_slices`: empty, or one `SparseTensorDimSliceAttr` per dimension.

    Build with `from_levels` or the format helpers (`csr`, `bsr`, `nm`, ...);
    check a concrete tensor type with `verify_against_shape`.
    """

    name = "sparse_tensor.encoding"

    lvl_types: ArrayAttr[LevelTypeAttr]
    dim_to_lvl: AffineMapAttr
    lvl_to_dim: AffineMapAttr | NoneAttr
    pos_width: IntAttr
    crd_width: IntAttr
    explicit_val: Attribute
    implicit_val: Attribute
    dim_slices: ArrayAttr[SparseTensorDimSliceAttr]

    def __init__(
        self,
        lvl_types: Sequence[LevelTypeLike],
        dim_to_lvl: AffineMap | None = None,
        *,
        pos_width: int = 0,
        crd_width: int = 0,
        explicit_val: Attribute | None = None,
        implicit_val: Attribute | None = None,
        dim_slices: Sequence[SliceLike] = (),
        lvl_to_dim: AffineMap | None = None,
    ):
        amap = (
            mlir_affine_map(dim_to_lvl) if dim_to_lvl is not None else identity_map(len(lvl_types))
        )
        inverse = mlir_affine_map(lvl_to_dim) if lvl_to_dim is not None else infer_lvl_to_dim(amap)
        super().__init__(
            ArrayAttr(tuple(_as_level_type_attr(t) for t in lvl_types)),
            AffineMapAttr(amap),
            AffineMapAttr(inverse) if inverse is not None else NoneAttr(),
            IntAttr(pos_width),
            IntAttr(crd_width),
            explicit_val if explicit_val is not None else NoneAttr(),
            implicit_val if implicit_val is not None else NoneAttr(),
            ArrayAttr(tuple(_as_slice(s) for s in dim_slices)),
        )

    @classmethod
    def from_levels(
        cls,
        lvl_types: Sequence[LevelTypeLike],
        dim_to_lvl: AffineMap | None = None,
        **kwargs: object,
    ) -> SparseTensorEncodingAttr:
        """Build an encoding from level types (`LevelType`s or spellings such as
        "compressed(nonunique)") and an optional xDSL `AffineMap` (identity when
        omitted). Keyword arguments: pos_width, crd_width, explicit_val,
        implicit_val, dim_slices, lvl_to_dim. Raises `VerifyException`."""
        return cls(lvl_types, dim_to_lvl, **kwargs)  # type: ignore[arg-type]

    # -- queries ----------------------------------------------------------- #

    @property
    def level_types(self) -> tuple[LevelType, ...]:
        return tuple(attr.data for attr in self.lvl_types.data)

    @property
    def lvl_rank(self) -> int:
        return len(self.lvl_types.data)

    @property
    def dim_rank(self) -> int:
        return self.dim_to_lvl.data.num_dims

    @property
    def dim_to_lvl_map(self) -> AffineMap:
        return self.dim_to_lvl.data

    @property
    def lvl_to_dim_map(self) -> AffineMap | None:
        return self.lvl_to_dim.data if isinstance(self.lvl_to_dim, AffineMapAttr) else None

    @property
    def pos_bitwidth(self) -> int:
        return self.pos_width.data

    @property
    def crd_bitwidth(self) -> int:
        return self.crd_width.data

    @property
    def slices(self) -> tuple[SparseTensorDimSliceAttr, ...]:
        return tuple(self.dim_slices.data)

    def lvl_type(self, lvl: int) -> LevelType:
        return self.level_types[lvl]

    def is_unique_lvl(self, lvl: int) -> bool:
        return self.lvl_type(lvl).is_unique

    def is_ordered_lvl(self, lvl: int) -> bool:
        return self.lvl_type(lvl).is_ordered

    def is_all_dense(self) -> bool:
        return all(t.is_dense for t in self.level_types)

    def is_all_ordered(self) -> bool:
        return all(t.is_ordered for t in self.level_types)

    def is_identity(self) -> bool:
        """MLIR's `AffineMap::isIdentity` (symbols are ignored)."""
        amap = self.dim_to_lvl_map
        return amap.results == identity_map(amap.num_dims).results

    def is_permutation(self) -> bool:
        return is_permutation(self.dim_to_lvl_map)

    def is_block_sparsity(self) -> bool:
        return is_block_sparsity(self.dim_to_lvl_map)

    def block_sizes(self) -> tuple[int, ...]:
        """MLIR's `getBlockSize`: 0 for each plain-dimension level and c for each
        `d mod c` level (floordiv levels contribute nothing), so for a block map
        it is the block size of each dimension, e.g. (2, 3) for `bsr(2, 3)` and
        (0, 4) for 2:4. Empty for maps that are not block sparsity."""
        return block_sizes(self.dim_to_lvl_map) if self.is_block_sparsity() else ()

    def is_slice(self) -> bool:
        return bool(self.dim_slices.data)

    def coo_segments(self) -> tuple[tuple[int, int, bool], ...]:
        """MLIR's `getCOOSegments`: (first level, end level, is SoA) for each
        run of a (loose) compressed level followed by singleton levels."""
        lts = self.level_types
        segments: list[tuple[int, int, bool]] = []
        lvl = 0
        while self.lvl_rank > 1 and lvl < self.lvl_rank:
            if not (lts[lvl].is_compressed or lts[lvl].is_loose_compressed):
                lvl += 1
                continue
            end = lvl + 1
            while end < self.lvl_rank and lts[end].is_singleton:
                end += 1
            if end - lvl > 1:
                segments.append((lvl, end, lts[lvl + 1].soa))
            lvl = end
        return tuple(segments)

    def aos_coo_start(self) -> int:
        """First level of the array-of-structures COO region, or lvl_rank."""
        segments = self.coo_segments()
        return segments[0][0] if segments and not segments[0][2] else self.lvl_rank

    def is_coo(self, start_lvl: int = 0, unique: bool = True) -> bool:
        """MLIR's `isCOOType`: a (loose) compressed level at `start_lvl` followed
        only by singletons, the last one unique when `unique`."""
        lts = self.level_types
        if not (lts[start_lvl].is_compressed or lts[start_lvl].is_loose_compressed):
            return False
        if not all(t.is_singleton for t in lts[start_lvl + 1 :]):
            return False
        return not unique or lts[-1].is_unique

    def lvl_shape(self, dim_shape: Sequence[int]) -> tuple[int, ...]:
        """Level sizes for a dimension shape (MLIR's `translateShape` dim2lvl):
        `d floordiv c` gives ceil(size / c), `d mod c` gives c, unknown sizes
        stay `DYNAMIC_INDEX`."""
        return tuple(_level_size(expr, dim_shape) for expr in self.dim_to_lvl_map.results)

    # -- derived encodings ------------------------------------------------- #

    def _with(self, **changes: object) -> SparseTensorEncodingAttr:
        fields: dict[str, object] = {
            "pos_width": self.pos_bitwidth,
            "crd_width": self.crd_bitwidth,
            "explicit_val": None if isinstance(self.explicit_val, NoneAttr) else self.explicit_val,
            "implicit_val": None if isinstance(self.implicit_val, NoneAttr) else self.implicit_val,
            "dim_slices": self.slices,
        }
        fields.update(changes)
        dim_to_lvl = fields.pop("dim_to_lvl", self.dim_to_lvl_map)
        lvl_types = fields.pop("lvl_types", self.level_types)
        return SparseTensorEncodingAttr(lvl_types, dim_to_lvl, **fields)  # type: ignore[arg-type]

    def with_bit_widths(self, pos_width: int, crd_width: int) -> SparseTensorEncodingAttr:
        return self._with(pos_width=pos_width, crd_width=crd_width)

    def without_bit_widths(self) -> SparseTensorEncodingAttr:
        return self._with(pos_width=0, crd_width=0)

    def with_dim_to_lvl(self, dim_to_lvl: AffineMap | None) -> SparseTensorEncodingAttr:
        return self._with(dim_to_lvl=dim_to_lvl)

    def with_dim_slices(self, dim_slices: Sequence[SliceLike]) -> SparseTensorEncodingAttr:
        return self._with(dim_slices=tuple(dim_slices))

    def without_dim_slices(self) -> SparseTensorEncodingAttr:
        return self._with(dim_slices=())

    # -- verification ------------------------------------------------------ #

    def verify(self) -> None:
        """MLIR's `SparseTensorEncodingAttr::verify`, rule by rule, in MLIR's order."""
        for check in (
            self._verify_widths,
            self._verify_values,
            self._verify_level_types,
            self._verify_coo_segments,
            self._verify_batch_and_soa,
            self._verify_n_out_of_m,
            self._verify_ranks,
            self._verify_dim_slices,
        ):
            check()

    def _verify_widths(self) -> None:
        if self.pos_bitwidth not in ACCEPTED_BIT_WIDTHS:
            raise VerifyException(f"unexpected position bitwidth: {self.pos_bitwidth}")
        if self.crd_bitwidth not in ACCEPTED_BIT_WIDTHS:
            raise VerifyException(f"unexpected coordinate bitwidth: {self.crd_bitwidth}")

    def _verify_values(self) -> None:
        for key, value in (("explicitVal", self.explicit_val), ("implicitVal", self.implicit_val)):
            if not isinstance(value, NoneAttr) and not _is_numeric_value(value):
                raise VerifyException(f"expected a numeric value for {key}")

    def _verify_level_types(self) -> None:
        for lvl_type in self.level_types:
            lvl_type.verify()

    def _verify_coo_segments(self) -> None:
        """Singletons follow a (loose) compressed level; one run shares SoA-ness."""
        lts = self.level_types
        lvl = 0
        while lvl < len(lts):
            if not lts[lvl].is_singleton:
                lvl += 1
                continue
            if lvl == 0 or not (lts[lvl - 1].is_compressed or lts[lvl - 1].is_loose_compressed):
                raise VerifyException(
                    "expected compressed or loose_compressed level before singleton level"
                )
            end = lvl
            while end < len(lts) and lts[end].is_singleton:
                end += 1
            if any(t.soa != lts[lvl].soa for t in lts[lvl:end]):
                raise VerifyException(
                    "expected all singleton lvlTypes stored in the same memory layout (SoA vs AoS)."
                )
            lvl = end

    def _verify_batch_and_soa(self) -> None:
        lts = self.level_types
        batch_lvls = [i for i, t in enumerate(lts) if t.is_batch]
        if batch_lvls and not all(t.is_batch for t in lts[: batch_lvls[-1] + 1]):
            raise VerifyException("Batch lvlType can only be leading levels.")
        if any(t.soa and not t.is_singleton for t in lts):
            raise VerifyException("SoA is only applicable to singleton lvlTypes.")

    def _verify_n_out_of_m(self) -> None:
        lts = self.level_types
        nm_lvl = next((i for i, t in enumerate(lts) if t.is_structured), None)
        if nm_lvl is None:
            return
        if nm_lvl != len(lts) - 1:
            raise VerifyException("expected n_out_of_m to be the last level type")
        if not all(t.is_dense for t in lts[:nm_lvl]):
            raise VerifyException("expected all dense lvlTypes before a n_out_of_m level")
        amap = self.dim_to_lvl_map
        if amap.num_dims == len(amap.results):
            return
        if not is_block_sparsity(amap):
            raise VerifyException("expected 1xm block structure for n_out_of_m level")
        blocked = {size for size in block_sizes(amap) if size}
        if len(blocked) > 1:
            raise VerifyException("expected only one blocked level with the same coefficients")
        if blocked != {lts[nm_lvl].m}:
            raise VerifyException(
                "expected coeffiencts of Affine expressions to be equal to m of n_out_of_m level"
            )

    def _verify_ranks(self) -> None:
        lvl_rank, amap = self.lvl_rank, self.dim_to_lvl_map
        if lvl_rank == 0:
            raise VerifyException("expected a non-empty array for lvlTypes")
        if len(amap.results) != lvl_rank:
            raise VerifyException(
                "level-rank mismatch between dimToLvl and lvlTypes: "
                f"{len(amap.results)} != {lvl_rank}"
            )
        inferred = infer_lvl_to_dim(amap)
        if inferred is None and amap.num_symbols == 0:
            raise VerifyException("failed to infer lvlToDim from dimToLvl")
        if self.lvl_to_dim_map is not None and inferred != self.lvl_to_dim_map:
            raise VerifyException("expected lvlToDim to be an inverse of dimToLvl")
        if self.dim_rank > lvl_rank:
            raise VerifyException(f"unexpected dimToLvl mapping from {self.dim_rank} to {lvl_rank}")

    def _verify_dim_slices(self) -> None:
        num_slices = len(self.dim_slices.data)
        if num_slices == 0:
            return
        if num_slices != self.dim_rank:
            raise VerifyException(
                "dimension-rank mismatch between dimSlices and dimToLvl: "
                f"{num_slices} != {self.dim_rank}"
            )
        if self.dim_rank != self.lvl_rank:
            raise VerifyException(
                "dimSlices expected dimension-rank to match level-rank: "
                f"{self.dim_rank} != {self.lvl_rank}"
            )

    def verify_against_shape(
        self, shape: Sequence[int], element_type: Attribute | None = None
    ) -> None:
        """MLIR's `verifyEncoding`: the checks that need the tensor type. Pass the
        element type to also check explicitVal / implicitVal. (MLIR does not check
        that block sizes divide the dimension sizes, so neither does this.)"""
        if len(shape) == 0:
            raise VerifyException("expected non-scalar sparse tensor")
        if self.dim_rank != len(shape):
            raise VerifyException(
                "dimension-rank mismatch between encoding and tensor shape: "
                f"{self.dim_rank} != {len(shape)}"
            )
        if element_type is None:
            return
        for which, value in (("explicit", self.explicit_val), ("implicit", self.implicit_val)):
            if isinstance(value, NoneAttr):
                continue
            assert _is_numeric_value(value)
            value_type = _value_type(value)
            if value_type != element_type:
                raise VerifyException(
                    f"{which} value type mismatch between encoding and tensor element type: "
                    f"'{value_type}' != '{element_type}'"
                )
        if not isinstance(self.implicit_val, NoneAttr) and not _is_zero(self.implicit_val):
            raise VerifyException("implicit value must be zero")

    def verify_tensor_type(self, tensor_type: TensorType[Attribute]) -> None:
        self.verify_against_shape(tensor_type.get_shape(), tensor_type.get_element_type())

    # -- text -------------------------------------------------------------- #

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> list[Attribute]:
        """Port of MLIR's `SparseTensorEncodingAttr::parse` (keys in any order,
        trailing comma allowed, a repeated `map` appends its level types)."""
        parser.parse_punctuation("<")
        parser.parse_punctuation("{")
        fields = _EncodingFields()
        while True:
            key_start = parser.pos
            key = parser.parse_optional_identifier()
            if key is None:
                break
            if key not in _ENCODING_KEYS:
                parser.raise_error(f"unexpected key: {key}", key_start, parser.pos)
            parser.parse_punctuation("=", f" after '{key}'")
            fields.parse_value(parser, key)
            if parser.parse_optional_punctuation(",") is None:
                break
        parser.parse_punctuation("}", " to close the encoding")
        parser.parse_punctuation(">", " to close the encoding")
        return fields.parameters()

    def print_parameters(self, printer: Printer) -> None:
        """Print exactly as MLIR's `SparseTensorEncodingAttr::print`."""
        printer.print_string("<{ map = " + self.map_text())
        if self.pos_bitwidth:
            printer.print_string(f", posWidth = {self.pos_bitwidth}")
        if self.crd_bitwidth:
            printer.print_string(f", crdWidth = {self.crd_bitwidth}")
        for key, value in (("explicitVal", self.explicit_val), ("implicitVal", self.implicit_val)):
            if not isinstance(value, NoneAttr):
                printer.print_string(f", {key} = ")
                printer.print_attribute(value)
        printer.print_string(" }>")

    def map_text(self) -> str:
        """The `map = ...` value as MLIR prints it: `[s0](d0 : slice, d1) -> (expr : type, ...)`."""
        amap = self.dim_to_lvl_map
        symbols = (
            f"[{', '.join(f's{i}' for i in range(amap.num_symbols))}]" if amap.num_symbols else ""
        )
        slices = self.slices
        dims = ", ".join(
            f"d{i} : #sparse_tensor<slice{slices[i].slice_text()}>" if slices else f"d{i}"
            for i in range(amap.num_dims)
        )
        levels = ", ".join(
            f"{format_affine_expr(expr)} : {lvl_type}"
            for expr, lvl_type in zip(amap.results, self.level_types, strict=True)
        )
        return f"{symbols}({dims}) -> ({levels})"


def _level_size(expr: AffineExpr, dim_shape: Sequence[int]) -> int:
    """One level's size from static dim sizes (`DYNAMIC_INDEX` when unknown)."""
    mod = _binop(expr, _Kind.Mod)
    if mod is not None and (bound := _const_value(mod.rhs)) is not None:
        return bound
    used = [e.position for e in expr.dfs() if isinstance(e, AffineDimExpr)]
    has_symbol = any(isinstance(e, AffineSymExpr) for e in expr.dfs())
    if has_symbol or any(dim_shape[d] in (DYNAMIC_INDEX, -1) for d in used):
        return DYNAMIC_INDEX
    return expr.eval([max(size, 1) - 1 for size in dim_shape], []) + 1


@dataclass
class _EncodingFields:
    """Accumulates the `key = value` entries of one encoding while parsing."""

    lvl_types: list[LevelType] | None = None
    dim_slices: list[SparseTensorDimSliceAttr | None] | None = None
    dim_to_lvl: AffineMap | None = None
    lvl_to_dim: AffineMap | None = None
    pos_width: int = 0
    crd_width: int = 0
    explicit_val: Attribute | None = None
    implicit_val: Attribute | None = None

    def parse_value(self, parser: AttrParser, key: str) -> None:
        if key == "map":
            parsed = _DimLvlMapParser(parser).parse()
            self.lvl_types = (self.lvl_types or []) + parsed.lvl_types
            self.dim_slices = (self.dim_slices or []) + parsed.dim_slices
            self.dim_to_lvl, self.lvl_to_dim = parsed.dim_to_lvl, parsed.lvl_to_dim
            return
        start = parser.pos
        attr = parser.parse_attribute()
        if key in ("posWidth", "crdWidth"):
            if not isinstance(attr, IntegerAttr):
                what = "position" if key == "posWidth" else "index"
                parser.raise_error(f"expected an integral {what} bitwidth", start, parser.pos)
            width = attr.value.data & _UINT32_MASK
            if key == "posWidth":
                self.pos_width = width
            else:
                self.crd_width = width
            return
        if not _is_numeric_value(attr):
            parser.raise_error(f"expected a numeric value for {key}", start, parser.pos)
        if key == "explicitVal":
            self.explicit_val = attr
        else:
            self.implicit_val = attr

    def _slices(self) -> list[SparseTensorDimSliceAttr]:
        """All-or-nothing, as MLIR: any explicit slice makes the rest `(0, ?, 1)`."""
        slices = self.dim_slices or []
        if all(s is None for s in slices):
            return []
        return [s if s is not None else SparseTensorDimSliceAttr() for s in slices]

    def parameters(self) -> list[Attribute]:
        dim_to_lvl = self.dim_to_lvl if self.dim_to_lvl is not None else AffineMap(0, 0, ())
        lvl_to_dim = (
            self.lvl_to_dim if self.lvl_to_dim is not None else infer_lvl_to_dim(dim_to_lvl)
        )
        return [
            ArrayAttr(tuple(LevelTypeAttr(t) for t in self.lvl_types or ())),
            AffineMapAttr(dim_to_lvl),
            AffineMapAttr(lvl_to_dim) if lvl_to_dim is not None else NoneAttr(),
            IntAttr(self.pos_width),
            IntAttr(self.crd_width),
            self.explicit_val if self.explicit_val is not None else NoneAttr(),
            self.implicit_val if self.implicit_val is not None else NoneAttr(),
            ArrayAttr(tuple(self._slices())),
        ]


# ===----------------------------------------------------------------------=== #
# Common formats
# ===----------------------------------------------------------------------=== #


def _map(num_dims: int, build: Callable[..., Sequence[AffineExpr]]) -> AffineMap:
    dims = [AffineDimExpr(i) for i in range(num_dims)]
    return AffineMap(num_dims, 0, tuple(build(*dims)))


def csr(pos_width: int = 0, crd_width: int = 0) -> SparseTensorEncodingAttr:
    """Compressed sparse row: (d0, d1) -> (d0 : dense, d1 : compressed)."""
    return SparseTensorEncodingAttr(
        ["dense", "compressed"], pos_width=pos_width, crd_width=crd_width
    )


def dcsr(pos_width: int = 0, crd_width: int = 0) -> SparseTensorEncodingAttr:
    """Doubly compressed sparse row: both levels compressed, row major."""
    return SparseTensorEncodingAttr(
        ["compressed", "compressed"], pos_width=pos_width, crd_width=crd_width
    )


def csc(pos_width: int = 0, crd_width: int = 0) -> SparseTensorEncodingAttr:
    """Compressed sparse column: (d0, d1) -> (d1 : dense, d0 : compressed)."""
    amap = _map(2, lambda i, j: (j, i))
    return SparseTensorEncodingAttr(
        ["dense", "compressed"], amap, pos_width=pos_width, crd_width=crd_width
    )


def dcsc(pos_width: int = 0, crd_width: int = 0) -> SparseTensorEncodingAttr:
    """Doubly compressed sparse column: (d0, d1) -> (d1 : compressed, d0 : compressed)."""
    amap = _map(2, lambda i, j: (j, i))
    return SparseTensorEncodingAttr(
        ["compressed", "compressed"], amap, pos_width=pos_width, crd_width=crd_width
    )


def coo(
    rank: int = 2, soa: bool = False, pos_width: int = 0, crd_width: int = 0
) -> SparseTensorEncodingAttr:
    """Sorted coordinate list: compressed(nonunique), then singletons, the
    middle ones nonunique, the last unique (MLIR's `getCOOType` layout)."""
    if rank < 1:
        raise VerifyException("expected a non-empty array for lvlTypes")
    if rank == 1:
        return SparseTensorEncodingAttr(["compressed"], pos_width=pos_width, crd_width=crd_width)
    lvls = [LevelType.compressed(unique=False)]
    lvls += [LevelType.singleton(unique=False, soa=soa) for _ in range(rank - 2)]
    lvls.append(LevelType.singleton(soa=soa))
    return SparseTensorEncodingAttr(lvls, pos_width=pos_width, crd_width=crd_width)


def bsr(bm: int, bn: int, pos_width: int = 0, crd_width: int = 0) -> SparseTensorEncodingAttr:
    """Block sparse row with bm x bn dense blocks: (i, j) -> (i floordiv bm : dense,
    j floordiv bn : compressed, i mod bm : dense, j mod bn : dense). Needs bm, bn >= 2:
    `i floordiv 1` folds to `i` and leaves no invertible block map (as in MLIR)."""
    amap = _map(
        2,
        lambda i, j: (
            aff_floordiv(i, _const(bm)),
            aff_floordiv(j, _const(bn)),
            aff_mod(i, _const(bm)),
            aff_mod(j, _const(bn)),
        ),
    )
    return SparseTensorEncodingAttr(
        ["dense", "compressed", "dense", "dense"], amap, pos_width=pos_width, crd_width=crd_width
    )


def nm(n: int, m: int, pos_width: int = 0, crd_width: int = 0, axis: int = 1
       ) -> SparseTensorEncodingAttr:
    """n:m structured sparsity, blocks of m consecutive elements along `axis`.

    axis 1 (along rows; 2:4 for NVIDIA sparse tensor cores):
        (i, j) -> (i : dense, j floordiv m : dense, j mod m : structured[n, m])
    axis 0 (along columns, e.g. a K x N weight pruned along K):
        (i, j) -> (j : dense, i floordiv m : dense, i mod m : structured[n, m])
    """
    if axis not in (0, 1):
        raise VerifyException(f"n:m blocks run along axis 0 or 1, got {axis}")
    if axis == 1:
        amap = _map(2, lambda i, j: (i, aff_floordiv(j, _const(m)), aff_mod(j, _const(m))))
    else:
        amap = _map(2, lambda i, j: (j, aff_floordiv(i, _const(m)), aff_mod(i, _const(m))))
    lvls = [LevelType.dense(), LevelType.dense(), LevelType.structured(n, m)]
    return SparseTensorEncodingAttr(lvls, amap, pos_width=pos_width, crd_width=crd_width)


# ===----------------------------------------------------------------------=== #
# Checking every sparse tensor type in a piece of IR
# ===----------------------------------------------------------------------=== #


def _nested_attributes(attr: Attribute) -> Iterator[Attribute]:
    yield attr
    if isinstance(attr, ArrayAttr):
        for element in attr.data:
            yield from _nested_attributes(element)
    elif isinstance(attr, ParametrizedAttribute) and not isinstance(attr, SparseTensorEncodingAttr):
        for param in attr.parameters:
            yield from _nested_attributes(param)


def _op_attributes(op: Operation) -> Iterator[Attribute]:
    yield from (result.type for result in op.results)
    yield from (operand.type for operand in op.operands)
    yield from op.attributes.values()
    yield from op.properties.values()
    for region in op.regions:
        for block in region.blocks:
            yield from (arg.type for arg in block.args)


def verify_encodings_in(root: Operation) -> None:
    """Run `verify_tensor_type` on every tensor type with a sparse encoding found
    in `root` (types of values, attributes, function types), as MLIR's
    `verifyEncoding` does for each RankedTensorType it builds."""
    for op in root.walk():
        for attr in _op_attributes(op):
            for nested in _nested_attributes(attr):
                if isinstance(nested, TensorType) and isinstance(
                    nested.encoding, SparseTensorEncodingAttr
                ):
                    nested.encoding.verify_tensor_type(nested)


SparseTensor = Dialect("sparse_tensor", [], [SparseTensorEncodingAttr, SparseTensorDimSliceAttr])
"""The `sparse_tensor` dialect: the encoding attribute and the dimension-slice attribute
(`#sparse_tensor<slice(...)>`, needed to parse `dimSlices` inside an encoding)."""
