// RUN: xdsl-opt %s --split-input-file --verify-diagnostics | filecheck %s

// mlir-opt-22 rejects a sparse encoding whose dimension rank differs from its tensor's
// (verifyEncoding); so does every sparsec binding op, under xdsl-opt as under sparsec.

#rank3 = #sparse_tensor.encoding<{ map = (i, j, k) -> (i : dense, j : dense, k : compressed) }>
%w = sparsec.param @W {nnz = 4 : i64, density = 1.0 : f64} : tensor<2x2xf32, #rank3>
// CHECK: dimension-rank mismatch between encoding and tensor shape: 3 != 2

// -----

#csr = #sparse_tensor.encoding<{ map = (i, j) -> (i : dense, j : compressed) }>
%x = sparsec.input @X : tensor<2x2x2xf32, #csr>
// CHECK: dimension-rank mismatch between encoding and tensor shape: 2 != 3
