"""sparsify: formats set losslessly, storage recorded, wrappers kept, refusals named."""

import numpy as np
import pytest

from conftest import gemm_text, run_text
from sparsec.compiler.driver import CompileError, CompileOptions, compile_text
from sparsec.dialects.formats import CodebookAttr, RcscAttr, describe, layout_of
from sparsec.dialects.sparsec import ParamOp
from sparsec.tensors.storage import pack, unpack


def _param(compiled) -> ParamOp:
    return next(op for op in compiled.module.walk() if isinstance(op, ParamOp))


@pytest.mark.parametrize("fmt,name", [("csr", "CSR"), ("csc", "CSC"), ("dcsc", "DCSC"),
                                      ("coo", "COO"), ("bitmap", "bitmap"),
                                      ("bsr block_rows=4 block_cols=2", "BSR 4x2")])
def test_format_is_set_values_unchanged_and_storage_recorded(fmt, name):
    pipeline = f"prune-magnitude{{sparsity=0.8}},sparsify{{format={fmt}}}"
    before = compile_text(gemm_text(8, 16, 32), CompileOptions(
        pipeline="prune-magnitude{sparsity=0.8}", lower=False)).store.get("g.B")
    compiled = compile_text(gemm_text(8, 16, 32), CompileOptions(pipeline=pipeline, lower=False))
    param = _param(compiled)
    assert describe(param.result.type.encoding).startswith(name)
    np.testing.assert_array_equal(compiled.store.get("g.B"), before)
    effect = param.effect_list()[-1]
    packed = pack(before, param.result.type.encoding, value_bits=32)
    assert effect["storage_bits"] == packed.bits and effect["dense_bits"] == 32 * before.size
    np.testing.assert_array_equal(unpack(packed), before)


def test_codebook_keeps_its_values_part_and_takes_the_layout():
    compiled = compile_text(gemm_text(8, 16, 32), CompileOptions(
        pipeline="prune-magnitude{sparsity=0.9},share-weights{bits=4},"
                 "sparsify{format=rcsc pes=4 index_bits=2}", lower=False))
    enc = _param(compiled).result.type.encoding
    assert isinstance(enc, CodebookAttr) and isinstance(layout_of(enc), RcscAttr)


def test_sparse_formats_run_on_the_dense_array_with_the_same_result():
    _, dense = run_text(gemm_text(16, 16, 32, density=0.3), "systolic{rows=8 cols=8}")
    _, csr = run_text(gemm_text(16, 16, 32, density=0.3), "systolic{rows=8 cols=8}",
                      pipeline="sparsify{format=csr}")
    assert csr.check.ok and csr.cycles == dense.cycles
    assert csr.error_vs_original["rel_err"] < 1e-6        # lossless (float summation order)
    assert csr.passes["B"][0]["format"] == "CSR"


@pytest.mark.parametrize("pipeline,message", [
    ("sparsify{format=ell}", "unknown format 'ell'"),
    ("sparsify{operand=Z}", "no matmul operand matches operand=Z"),
])
def test_refusals(pipeline, message):
    with pytest.raises(CompileError, match=message):
        compile_text(gemm_text(8, 16, 32), CompileOptions(pipeline=pipeline, lower=False))
