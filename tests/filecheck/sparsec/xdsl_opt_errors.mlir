// Under xdsl-opt, sparsec's mistakes are one diagnostic line and exit 1, never a
// traceback (issue 10, item 11; sparsec/compiler/opt_diagnostics.py says what xdsl-opt
// 0.74 does by itself: a traceback for each of these).
//
// A pass option the pass rejects when it runs (PassFailedException):
// RUN: xdsl-opt %s -p 'prune-nm{n=5 m=4}' 2>&1 | filecheck %s --check-prefix=NM --implicit-check-not=Traceback; test ${PIPESTATUS[0]} -eq 1
// NM: xdsl-opt: error: prune-nm: needs 0 < n <= m, got n=5 m=4
//
// An option value sparsec's target spec rejects while the pass is built (SpecError):
// RUN: xdsl-opt %s -p 'lower-systolic{rows=-1}' 2>&1 | filecheck %s --check-prefix=ROWS --implicit-check-not=Traceback; test ${PIPESTATUS[0]} -eq 1
// ROWS: xdsl-opt: error: lower-systolic: option rows must be >= 0, got -1
// RUN: xdsl-opt %s -p 'lower-systolic{dataflow=zz}' 2>&1 | filecheck %s --check-prefix=FLOW --implicit-check-not=Traceback; test ${PIPESTATUS[0]} -eq 1
// FLOW: xdsl-opt: error: lower-systolic: option dataflow must be one of os, ws, is, got 'zz'
//
// Options xDSL itself rejects for a sparsec pass, an unknown pass, a malformed pipeline:
// RUN: xdsl-opt %s -p 'prune-nm{n=x}' 2>&1 | filecheck %s --check-prefix=TYPE --implicit-check-not=Traceback; test ${PIPESTATUS[0]} -eq 1
// TYPE: xdsl-opt: error: pass 'prune-nm': Incompatible types
// RUN: xdsl-opt %s -p 'prune-nm{q=1}' 2>&1 | filecheck %s --check-prefix=UNKNOWN --implicit-check-not=Traceback; test ${PIPESTATUS[0]} -eq 1
// UNKNOWN: xdsl-opt: error: pass 'prune-nm': Provided arguments ["q"] not found
// RUN: xdsl-opt %s -p 'prune-nn' 2>&1 | filecheck %s --check-prefix=NOPASS --implicit-check-not=Traceback; test ${PIPESTATUS[0]} -eq 1
// NOPASS: xdsl-opt: error: bad pass pipeline: Unrecognized passes: ['prune-nn']
// RUN: xdsl-opt %s -p 'prune-nm{n=2' 2>&1 | filecheck %s --check-prefix=SYNTAX --implicit-check-not=Traceback; test ${PIPESTATUS[0]} -eq 1
// SYNTAX: xdsl-opt: error: bad pass pipeline: Malformed pass arguments
//
// A pass that fails on this kernel (f32 operands have no sparse path on stc):
// RUN: xdsl-opt %s -p 'lower-stc' 2>&1 | filecheck %s --check-prefix=STC --implicit-check-not=Traceback; test ${PIPESTATUS[0]} -eq 1
// STC: xdsl-opt: error: stc: sparsec.matmul has f32 operands
//
// A pass that needs the program's data (xdsl-opt has none):
// RUN: xdsl-opt %s -p 'prune-nm{n=2 m=4}' 2>&1 | filecheck %s --check-prefix=DATA --implicit-check-not=Traceback; test ${PIPESTATUS[0]} -eq 1
// DATA: xdsl-opt: error: this pass needs the program's data
//
// The IR is fine otherwise:
// RUN: xdsl-opt %s -p 'lower-systolic' | filecheck %s --check-prefix=OK
// OK: systolic.fold

builtin.module {
  func.func @g() -> tensor<4x8xf32> {
    %A = sparsec.input @A : tensor<4x8xf32>
    %B = sparsec.param @B : tensor<8x8xf32>
    %C = sparsec.matmul %A, %B : (tensor<4x8xf32>, tensor<8x8xf32>) -> tensor<4x8xf32>
    func.return %C : tensor<4x8xf32>
  }
}
