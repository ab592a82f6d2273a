// A sparsec verifier error in the input or after a pass is one line and exit 1 under
// xdsl-opt, without --verify-diagnostics too (xdsl-opt 0.74 re-raises it otherwise, a
// traceback plus a dump of the module); with the flag, xdsl-opt prints it and exits 0.
// RUN: xdsl-opt %s 2>&1 | filecheck %s --check-prefix=LINE --implicit-check-not=Traceback --implicit-check-not=builtin.module; test ${PIPESTATUS[0]} -eq 1
// RUN: xdsl-opt %s -p 'lower-systolic' 2>&1 | filecheck %s --check-prefix=LINE --implicit-check-not=Traceback; test ${PIPESTATUS[0]} -eq 1
// LINE: xdsl-opt: error: sparsec.matmul: inner dimensions disagree: lhs gives K=5 but rhs gives K=6
// RUN: xdsl-opt %s --verify-diagnostics | filecheck %s --check-prefix=FLAG
// FLAG: sparsec.matmul: inner dimensions disagree: lhs gives K=5 but rhs gives K=6

%a = sparsec.input @A : tensor<4x5xf32>
%b = sparsec.param @B : tensor<6x7xf32>
%c = sparsec.matmul %a, %b : (tensor<4x5xf32>, tensor<6x7xf32>) -> tensor<4x7xf32>
