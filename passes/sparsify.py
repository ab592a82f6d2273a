"""`sparsify`: give a tensor a storage format, losslessly (values unchanged).

Formats: dense, csr, csc, dcsr, dcsc, coo, bsr (block_rows x block_cols blocks), bitmap
(SIGMA), rcsc (EIE: `pes`, `index_bits`), bitcolumn (BitWave: `group` weights along the
reduction dimension, `sign_magnitude`; needs `quantize{bits=8}` first and records, per
tensor, the histogram of zero columns per group in sign-magnitude and in two's
complement). A quantized or codebook tensor keeps its
values encoding and gets the format as its layout. The pass records the format and its
exact storage (from `compiler/storage.py`) against dense storage.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, NoneAttr
from xdsl.ir import Attribute
from xdsl.passes import ModulePass

from sparsec.dialects import sparse_tensor as st
from sparsec.dialects.formats import (
    BitColumnAttr,
    CodebookAttr,
    QuantizedAttr,
    bitcolumn,
    bitmap,
    describe,
    rcsc,
)
from sparsec.passes.common import (
    Target,
    encoding_of,
    fail,
    param_values,
    record_format_only,
    set_type,
    targets,
    with_encoding,
)
from sparsec.tensors import bitcolumn as bc
from sparsec.tensors.datastore import DataStore, current_store
from sparsec.tensors.dtypes import ELEMENT_BYTES
from sparsec.tensors.storage import bitcolumn_codes, pack


@dataclass(frozen=True)
class SparsifyPass(ModulePass):
    """Set a storage format, e.g. `sparsify{format=csr operand=b}`,
    `sparsify{format=bsr block_rows=4 block_cols=4}`, `sparsify{format=rcsc pes=64}`."""

    name: ClassVar[str] = "sparsify"

    format: str = "csr"
    operand: str = "b"
    block_rows: int = 2
    block_cols: int = 2
    pes: int = 64
    index_bits: int = 4
    group: int = 16
    sign_magnitude: bool = True

    def layout(self, axis: int = 0) -> Attribute | None:
        builders: dict[str, Callable[[], Attribute | None]] = {
            "dense": lambda: None,
            "csr": st.csr, "csc": st.csc, "dcsr": st.dcsr, "dcsc": st.dcsc,
            "coo": st.coo,
            "bsr": lambda: st.bsr(self.block_rows, self.block_cols),
            "bitmap": bitmap,
            "rcsc": lambda: rcsc(self.pes, self.index_bits),
            "bitcolumn": lambda: bitcolumn(self.group, axis, self.sign_magnitude),
        }
        if self.format not in builders:
            raise fail(self.name, None, f"unknown format '{self.format}' (formats: "
                       f"{', '.join(builders)}; n:m comes from prune-nm)")
        return builders[self.format]()

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        layout = self.layout()
        label = f"sparsify{{format={self.format}}}"
        if self.format == "bitcolumn":
            label = f"sparsify{{format=bitcolumn group={self.group}}}"
        effect: dict[str, float | int | str] = {"pass": label, "format": describe(layout)}
        for target in list(targets(op, self.operand, self.name)):
            if isinstance(layout, BitColumnAttr):
                layout = self.layout(target.reduction_axis)
                self._require_codes(target)
                effect = {**effect, "format": describe(layout)}
            encoding = wrap_layout(encoding_of(target.ttype), layout)
            new_type = with_encoding(target.ttype, encoding)
            if not target.is_param:
                set_type(target, new_type)
                record_format_only(target, effect)
                continue
            storage = self._storage(target, current_store(), encoding)
            set_type(target, new_type)
            target.op.record_effect({**effect, **storage})

    def _require_codes(self, target: Target) -> None:
        """Bit columns hold the 8-bit codes of a compile-time weight."""
        if not target.is_param:
            raise fail(self.name, target, "bit columns store compile-time weights; declare "
                       "it `param`")
        if not 1 <= self.group <= 1024:
            raise fail(self.name, target, f"group must lie in [1, 1024], got {self.group}")
        encoding = encoding_of(target.ttype)
        if not (isinstance(encoding, QuantizedAttr) and encoding.bit_width <= 8
                and encoding.is_symmetric):
            raise fail(self.name, target, "bit columns store 8-bit signed codes; run "
                       "quantize{bits=8} (symmetric) before sparsify{format=bitcolumn}")

    def _storage(self, target: Target, store: DataStore, encoding: Attribute | None
                 ) -> dict[str, float | int | str]:
        """Exact bits in the new format against dense storage; refuse data that does not fit."""
        values = param_values(store, target)
        value_bits = 8 * ELEMENT_BYTES[store.dtypes[target.key]]
        aux = {name: store.get(f"{target.key}#{name}") for name in ("codebook", "scale",
               "zero_point") if f"{target.key}#{name}" in store}
        try:
            packed = pack(values, encoding, value_bits=value_bits, aux=aux)
            dense = pack(values, wrap_layout(encoding, None), value_bits=value_bits, aux=aux)
        except ValueError as err:
            raise fail(self.name, target, str(err)) from None
        result: dict[str, float | int | str] = {
            "storage_bits": packed.bits, "dense_bits": dense.bits,
            "compression": dense.bits / packed.bits if packed.bits else 0.0}
        if isinstance(layout_of_encoding := getattr(encoding, "layout", lambda: None)(),
                      BitColumnAttr):
            result |= zero_column_report(bitcolumn_codes(packed), layout_of_encoding)
        return result


def zero_column_report(codes: object, layout: BitColumnAttr) -> dict[str, float | int | str]:
    """Zero columns per group of the codes, in sign-magnitude and two's complement:
    the histograms (groups with 0..8 zero columns) and their means."""
    report: dict[str, float | int | str] = {}
    for name, sign_magnitude in (("sm", True), ("tc", False)):
        histogram = bc.zero_column_histogram(codes, layout.group_size,  # type: ignore[arg-type]
                                             layout.group_axis, sign_magnitude=sign_magnitude)
        total = sum(histogram)
        mean = sum(z * n for z, n in enumerate(histogram)) / total if total else 0.0
        report[f"zero_cols_hist_{name}"] = " ".join(str(n) for n in histogram)
        report[f"zero_cols_mean_{name}"] = mean
    tc = float(report["zero_cols_mean_tc"])
    if tc:
        report["zero_cols_sm_over_tc"] = float(report["zero_cols_mean_sm"]) / tc
    return report


def wrap_layout(encoding: Attribute | None, layout: Attribute | None) -> Attribute | None:
    """`encoding` with its sparse layout replaced: a codebook or quantized encoding keeps
    its values part and takes `layout` inside; anything else becomes `layout`."""
    if isinstance(encoding, (CodebookAttr, QuantizedAttr)):
        inner = layout if layout is not None else NoneAttr()
        *values_part, _ = encoding.parameters   # the layout is the last parameter
        return type(encoding).new([*values_part, inner])
    return layout
