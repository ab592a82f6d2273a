// RUN: xdsl-opt %s --split-input-file --verify-diagnostics | filecheck %s

// One case per verifier rule of the sparsec kernel ops.

%a = sparsec.input @A : tensor<4x5xf32>
%b = sparsec.param @B : tensor<6x7xf32>
%c = sparsec.matmul %a, %b : (tensor<4x5xf32>, tensor<6x7xf32>) -> tensor<4x7xf32>
// CHECK: sparsec.matmul: inner dimensions disagree: lhs gives K=5 but rhs gives K=6

// -----

%a = sparsec.input @A : tensor<4x5xf32>
%b = sparsec.param @B : tensor<5x7xf32>
%c = sparsec.matmul %a, %b : (tensor<4x5xf32>, tensor<5x7xf32>) -> tensor<4x8xf32>
// CHECK: sparsec.matmul: result shape must be 4x7 (M x N), got tensor<4x8xf32>

// -----

%a = sparsec.input @A : tensor<4x5xf32>
%b = sparsec.param @B : tensor<5x7xf16>
%c = sparsec.matmul %a, %b : (tensor<4x5xf32>, tensor<5x7xf16>) -> tensor<4x7xf32>
// CHECK: sparsec.matmul: operands must have one element type, got f32 and f16

// -----

%a = sparsec.input @A : tensor<4x5xi8>
%b = sparsec.param @B : tensor<5x7xi8>
%c = sparsec.matmul %a, %b : (tensor<4x5xi8>, tensor<5x7xi8>) -> tensor<4x7xi8>
// CHECK: sparsec.matmul: result element type must be i32 for i8 operands, got i8

// -----

%a = sparsec.input @A : tensor<4x5x2xf32>
%b = sparsec.param @B : tensor<5x7xf32>
%c = sparsec.matmul %a, %b : (tensor<4x5x2xf32>, tensor<5x7xf32>) -> tensor<4x7xf32>
// CHECK: sparsec.matmul: operands must be rank 2, got 3 and 2

// -----

%b = sparsec.param @B {nnz = 36 : i64} : tensor<5x7xf32>
// CHECK: sparsec.param: nnz = 36 must lie in [0, 35] for tensor<5x7xf32>

// -----

%a = sparsec.input @A : tensor<?x5xf32>
// CHECK: sparsec.input: result must have a static shape, got tensor<?x5xf32>

// -----

%a = sparsec.input @A : tensor<4x5xi64>
// CHECK: unsupported element type i64; sparsec supports f64, f32, f16, bf16, i32, i16, i8

// -----

%a = sparsec.input @outer::@A : tensor<4x5xf32>
// CHECK: sparsec.input: symbol must be flat (@name), got @outer::@A

// -----

%a = sparsec.input @A : tensor<4x5x6xf32, #sparse_tensor.encoding<{ map = (d0, d1) -> (d0 : dense, d1 : compressed) }>>
// CHECK: dimension-rank mismatch between encoding and tensor shape: 2 != 3
