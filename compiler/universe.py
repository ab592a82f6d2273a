"""The one registry of sparsec's dialects and passes, seen by `sparsec` and `xdsl-opt`.

Registered as the `xdsl.universe` entry point `sparsec` in pyproject.toml, so
`xdsl-opt` parses sparsec IR and runs every sparsec pass. Loaders import lazily.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from xdsl.ir import Dialect
from xdsl.passes import ModulePass
from xdsl.universe import Universe


def _sparsec_dialect() -> Dialect:
    from sparsec.dialects.sparsec import Sparsec

    return Sparsec


def _sparse_tensor_dialect() -> Dialect:
    from sparsec.dialects.sparse_tensor import SparseTensor

    return SparseTensor


def _systolic_dialect() -> Dialect:
    from sparsec.backends.systolic.isa import Systolic

    return Systolic


def _stc_dialect() -> Dialect:
    from sparsec.backends.stc.isa import Stc

    return Stc


def _eie_dialect() -> Dialect:
    from sparsec.backends.eie.isa import Eie

    return Eie


def _lower_stc() -> type[ModulePass]:
    from sparsec.backends.stc.lowering import LowerStcPass

    return LowerStcPass


def _lower_systolic() -> type[ModulePass]:
    from sparsec.backends.systolic.lowering import LowerSystolicPass

    return LowerSystolicPass


SPARSEC_DIALECTS = {
    "sparsec": _sparsec_dialect,
    "sparse_tensor": _sparse_tensor_dialect,
    "systolic": _systolic_dialect,
    "stc": _stc_dialect,
    "eie": _eie_dialect,
    "asadi": lambda: importlib.import_module("sparsec.backends.asadi.isa").Asadi,
    "hottiles": lambda: importlib.import_module("sparsec.backends.hottiles.isa").Hottiles,
    "sparc": lambda: importlib.import_module("sparsec.backends.sparc.isa").Sparc,
    "sigma": lambda: importlib.import_module("sparsec.backends.sigma.isa").Sigma,
    "bitllm": lambda: importlib.import_module("sparsec.backends.bitllm.isa").Bitllm,
    "bitwave": lambda: importlib.import_module("sparsec.backends.bitwave.isa").Bitwave,
}

def _lazy_pass(module: str, cls: str) -> Callable[[], type[ModulePass]]:
    """A loader importing `cls` from `module` only when the pass is asked for."""

    def load() -> type[ModulePass]:
        return getattr(importlib.import_module(module), cls)

    return load


SPARSEC_PASSES = {
    "lower-systolic": _lower_systolic,
    "lower-stc": _lower_stc,
    "lower-eie": _lazy_pass("sparsec.backends.eie.lowering", "LowerEiePass"),
    "lower-sparc": _lazy_pass("sparsec.backends.sparc.lowering", "LowerSparcPass"),
    "lower-asadi": _lazy_pass("sparsec.backends.asadi.lowering", "LowerAsadiPass"),
    "lower-hottiles": _lazy_pass("sparsec.backends.hottiles.lowering", "LowerHottilesPass"),
    "lower-sigma": _lazy_pass("sparsec.backends.sigma.lowering", "LowerSigmaPass"),
    "lower-bitllm": _lazy_pass("sparsec.backends.bitllm.lowering", "LowerBitllmPass"),
    "lower-bitwave": _lazy_pass("sparsec.backends.bitwave.lowering", "LowerBitwavePass"),
    "prune-nm": _lazy_pass("sparsec.passes.prune_nm", "PruneNmPass"),
    "prune-magnitude": _lazy_pass("sparsec.passes.prune_magnitude", "PruneMagnitudePass"),
    "quantize": _lazy_pass("sparsec.passes.quantize", "QuantizePass"),
    "share-weights": _lazy_pass("sparsec.passes.share_weights", "ShareWeightsPass"),
    "sparsify": _lazy_pass("sparsec.passes.sparsify", "SparsifyPass"),
    "bit-flip": _lazy_pass("sparsec.passes.bit_flip", "BitFlipPass"),
    "decompose-attention": _lazy_pass("sparsec.passes.decompose_attention",
                                      "DecomposeAttentionPass"),
    "cluster-rows": _lazy_pass("sparsec.passes.cluster_rows", "ClusterRowsPass"),
    "encode-diagonal": _lazy_pass("sparsec.passes.encode_diagonal", "EncodeDiagonalPass"),
    "tile-hot-cold": _lazy_pass("sparsec.passes.tile_hot_cold", "TileHotColdPass"),
    "bitlevel-encode": _lazy_pass("sparsec.passes.bitlevel_encode", "BitLevelEncodePass"),
    "kv-quantize": _lazy_pass("sparsec.passes.kv_quantize", "KvQuantizePass"),
    "kv-evict": _lazy_pass("sparsec.passes.kv_evict", "KvEvictPass"),
    "prune-runtime": _lazy_pass("sparsec.passes.prune_runtime", "PruneRuntimePass"),
}

SPARSEC_UNIVERSE = Universe(all_dialects=SPARSEC_DIALECTS, all_passes=SPARSEC_PASSES)


def _clean_xdsl_opt_errors() -> None:
    """xdsl-opt imports this module before it builds its pipeline: from here sparsec's
    mistakes print as one line under xdsl-opt (see `sparsec.compiler.opt_diagnostics`)."""
    from sparsec.compiler.opt_diagnostics import install_if_xdsl_opt

    install_if_xdsl_opt()


_clean_xdsl_opt_errors()
