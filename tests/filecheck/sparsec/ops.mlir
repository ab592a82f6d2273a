// RUN: xdsl-opt %s | xdsl-opt | filecheck %s

// Kernel IR round-trips through xdsl-opt (with sparsec's Universe) unchanged.

builtin.module {
  func.func @gemm() -> tensor<4x6xf32> attributes {sparsec.outputs = ["Y"]} {
    %X = sparsec.input @X : tensor<4x5xf32>
    %W = sparsec.param @W {nnz = 15 : i64, density = 5.000000e-01 : f64} : tensor<6x5xf32>
    %Y = sparsec.matmul %X, %W {transpose_b} : (tensor<4x5xf32>, tensor<6x5xf32>) -> tensor<4x6xf32>
    func.return %Y : tensor<4x6xf32>
  }
  func.func @ints() -> tensor<2x2xi32> {
    %A = sparsec.input @A : tensor<3x2xi8>
    %B = sparsec.param @B : tensor<2x3xi8>
    %C = sparsec.matmul %A, %B {transpose_a, transpose_b} : (tensor<3x2xi8>, tensor<2x3xi8>) -> tensor<2x2xi32>
    func.return %C : tensor<2x2xi32>
  }
}

// CHECK:      func.func @gemm() -> tensor<4x6xf32> attributes {sparsec.outputs = ["Y"]} {
// CHECK-NEXT:   %X = sparsec.input @X : tensor<4x5xf32>
// CHECK-NEXT:   %W = sparsec.param @W {nnz = 15 : i64, density = 5.000000e-01 : f64} : tensor<6x5xf32>
// CHECK-NEXT:   %Y = sparsec.matmul %X, %W {transpose_b} : (tensor<4x5xf32>, tensor<6x5xf32>) -> tensor<4x6xf32>
// CHECK-NEXT:   func.return %Y : tensor<4x6xf32>
// CHECK:        %C = sparsec.matmul %A, %B {transpose_a, transpose_b} : (tensor<3x2xi8>, tensor<2x3xi8>) -> tensor<2x2xi32>

// Operands may carry an MLIR sparse encoding (here CSR); it prints exactly as mlir-opt does.
func.func @csr() -> tensor<4x6xf32> {
  %X = sparsec.input @X : tensor<4x5xf32>
  %W = sparsec.param @W : tensor<5x6xf32, #sparse_tensor.encoding<{ map = (i, j) -> (i : dense, j : compressed) }>>
  %Y = sparsec.matmul %X, %W : (tensor<4x5xf32>, tensor<5x6xf32, #sparse_tensor.encoding<{ map = (i, j) -> (i : dense, j : compressed) }>>) -> tensor<4x6xf32>
  func.return %Y : tensor<4x6xf32>
}
// CHECK: %W = sparsec.param @W : tensor<5x6xf32, #sparse_tensor.encoding<{ map = (d0, d1) -> (d0 : dense, d1 : compressed) }>>
