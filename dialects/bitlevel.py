"""`#sparsec.bitlevel`: integer weights coded as at most k signed powers of two.

    #sparsec.bitlevel<max_ones = 3, method = csd, codes = #sparsec.quantized<bits = 8, ...>>

The nested `codes` encoding (a `#sparsec.quantized`, or none for i8 tensors whose values
are the codes) says how values map to integer codes; the bit-level code says how each code
is stored: `method = sm` keeps the `max_ones` most significant one-bits of the magnitude
(sign-magnitude truncation), `method = csd` the `max_ones` most significant nonzero digits
of the canonical signed digit form. The code words and their exact storage are
`sparsec.tensors.bitlevel` (storage equation there and in backends/bitllm/README.md).
"""

from __future__ import annotations

from xdsl.dialects.builtin import IntAttr, NoneAttr, StringAttr, TensorType
from xdsl.ir import Attribute, ParametrizedAttribute
from xdsl.irdl import irdl_attr_definition
from xdsl.parser import AttrParser
from xdsl.printer import Printer
from xdsl.utils.exceptions import VerifyException

from sparsec.dialects.formats import (
    QuantizedAttr,
    _int_in,
    _parse_attr,
    _parse_fields,
    _parse_int,
    _parse_name,
    _require,
    describe,
)

BITLEVEL_METHODS = ("csd", "sm")
MAX_BITLEVEL_ONES = 16


@irdl_attr_definition
class BitLevelAttr(ParametrizedAttribute):
    """`#sparsec.bitlevel<max_ones = k, method = csd|sm[, codes = Q]>`: each integer code
    is at most k signed powers of two (ABAF's "at most 3 ones per weight word")."""

    name = "sparsec.bitlevel"

    ones: IntAttr
    method_attr: StringAttr
    codes_attr: Attribute

    def __init__(self, max_ones: int, method: str, codes: Attribute | None = None):
        super().__init__(IntAttr(max_ones), StringAttr(method),
                         codes if codes is not None else NoneAttr())

    @property
    def max_ones(self) -> int:
        return self.ones.data

    @property
    def method(self) -> str:
        return self.method_attr.data

    def codes(self) -> QuantizedAttr | None:
        return self.codes_attr if isinstance(self.codes_attr, QuantizedAttr) else None

    def layout(self) -> Attribute | None:
        inner = self.codes()
        return inner.layout() if inner is not None else None

    def verify(self) -> None:
        _int_in(self.max_ones, 1, MAX_BITLEVEL_ONES, "sparsec.bitlevel: max_ones")
        if self.method not in BITLEVEL_METHODS:
            raise VerifyException(f"sparsec.bitlevel: method must be one of "
                                  f"{', '.join(BITLEVEL_METHODS)}, got '{self.method}'")
        if not isinstance(self.codes_attr, (NoneAttr, QuantizedAttr)):
            raise VerifyException("sparsec.bitlevel: codes must be a #sparsec.quantized "
                                  f"encoding (or absent for i8 tensors), got {self.codes_attr}")
        inner = self.codes()
        if inner is not None and not (inner.is_symmetric and inner.bit_width <= 16):
            raise VerifyException("sparsec.bitlevel: codes must be symmetric with at most "
                                  "16 bits (signed powers of two code a signed integer)")

    def verify_tensor_type(self, tensor_type: TensorType[Attribute]) -> None:
        inner = self.codes()
        if inner is not None:
            inner.verify_tensor_type(tensor_type)
            return
        if str(tensor_type.element_type) != "i8":
            raise VerifyException("sparsec.bitlevel without codes needs an i8 tensor (its "
                                  f"values are the codes), got {tensor_type.element_type}")

    @property
    def code_bits(self) -> int:
        inner = self.codes()
        return inner.bit_width if inner is not None else 8

    def describe(self) -> str:
        inner = self.codes()
        over = f" of {describe(inner)}" if inner is not None else " of i8"
        return f"<= {self.max_ones} {self.method.upper()} terms per weight{over}"

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> list[Attribute]:
        fields = _parse_fields(parser, "sparsec.bitlevel",
                               {"max_ones": _parse_int, "method": _parse_name,
                                "codes": _parse_attr})
        example = "#sparsec.bitlevel<max_ones = 3, method = csd>"
        _require(parser, fields, "max_ones", example)
        _require(parser, fields, "method", example)
        codes = fields.get("codes", NoneAttr())
        return [IntAttr(int(fields["max_ones"])), StringAttr(str(fields["method"])),  # type: ignore[arg-type]
                codes]  # type: ignore[list-item]

    def print_parameters(self, printer: Printer) -> None:
        printer.print_string(f"<max_ones = {self.max_ones}, method = {self.method}")
        if not isinstance(self.codes_attr, NoneAttr):
            printer.print_string(", codes = ")
            printer.print_attribute(self.codes_attr)
        printer.print_string(">")
