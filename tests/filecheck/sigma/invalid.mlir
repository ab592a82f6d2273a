// RUN: xdsl-opt %s --split-input-file --verify-diagnostics | filecheck %s
// RUN: sed -n '/^\/\/ NODATA-BEGIN/,/^\/\/ NODATA-END/p' %s | xdsl-opt -p 'lower-sigma' 2>&1 | filecheck %s --check-prefix=NODATA; test ${PIPESTATUS[1]} -ne 0

// One case per verifier rule of the sigma ISA, and the lowering's need for data.

%a = "test.op"() : () -> tensor<8x4xf32>
%s = sigma.pack %a {stationary = "c"} : tensor<8x4xf32> -> tensor<8x4xf32, #sparsec.bitmap<order = row>>
// CHECK: sigma.pack: stationary must be one of ('a', 'b'), got 'c'

// -----

%a = "test.op"() : () -> tensor<8x4xf32>
%s = sigma.pack %a {stationary = "a"} : tensor<8x4xf32> -> tensor<4x8xf32, #sparsec.bitmap<order = row>>
// CHECK: sigma.pack: result must be tensor<8x4xf32, #sparsec.bitmap<order = row>> (the stationary matrix as vectors x K in bitmap row order), got tensor<4x8xf32, #sparsec.bitmap<order = row>>

// -----

%a = "test.op"() : () -> tensor<8x4xf32>
%b = "test.op"() : () -> tensor<4x6xf32>
%acc = sigma.zeros : tensor<8x6xf32>
%s = sigma.pack %a {stationary = "a"} : tensor<8x4xf32> -> tensor<8x4xf32, #sparsec.bitmap<order = row>>
%r = sigma.iteration %s, %b, %acc {index = 0 : i64, stationary = "a", vectors = array<i64: 0, 9>, k = array<i64: 0, 4>} : (tensor<8x4xf32, #sparsec.bitmap<order = row>>, tensor<4x6xf32>, tensor<8x6xf32>) -> tensor<8x6xf32>
// CHECK: sigma.iteration: vectors=0:9 k=0:4 exceed the stationary matrix 8x4

// -----

%a = "test.op"() : () -> tensor<8x4xf32>
%b = "test.op"() : () -> tensor<4x6xf32>
%acc = sigma.zeros : tensor<8x6xf32>
%s = sigma.pack %a {stationary = "a"} : tensor<8x4xf32> -> tensor<8x4xf32, #sparsec.bitmap<order = row>>
%r = sigma.iteration %s, %b, %acc {index = 0 : i64, stationary = "a", vectors = array<i64: 3, 3>, k = array<i64: 0, 4>} : (tensor<8x4xf32, #sparsec.bitmap<order = row>>, tensor<4x6xf32>, tensor<8x6xf32>) -> tensor<8x6xf32>
// CHECK: sigma.iteration: vectors must be array<i64: lo, hi> with 0 <= lo < hi, got [3, 3]

// -----

%a = "test.op"() : () -> tensor<8x4xf32>
%b = "test.op"() : () -> tensor<4x6xf32>
%acc = sigma.zeros : tensor<8x6xf32>
%s = sigma.pack %a {stationary = "a"} : tensor<8x4xf32> -> tensor<8x4xf32, #sparsec.bitmap<order = row>>
%r = sigma.iteration %s, %b, %acc {index = 0 : i64, stationary = "x", vectors = array<i64: 0, 8>, k = array<i64: 0, 4>} : (tensor<8x4xf32, #sparsec.bitmap<order = row>>, tensor<4x6xf32>, tensor<8x6xf32>) -> tensor<8x6xf32>
// CHECK: sigma.iteration: stationary must be one of ('a', 'b'), got 'x'

// -----

%a = "test.op"() : () -> tensor<8x4xf32, #sparsec.bitmap<order = row>>
%b = "test.op"() : () -> tensor<4x6xf32>
%acc = sigma.zeros : tensor<8x6xf32>
%r = sigma.iteration %a, %b, %acc {index = 0 : i64, stationary = "a", vectors = array<i64: 0, 8>, k = array<i64: 0, 4>} : (tensor<8x4xf32, #sparsec.bitmap<order = row>>, tensor<4x6xf32>, tensor<8x6xf32>) -> tensor<8x6xf32>
// CHECK: sigma.iteration: the stationary matrix must be the result of sigma.pack

// -----

%a = "test.op"() : () -> tensor<8x4xf32>
%b = "test.op"() : () -> tensor<4x6xf32>
%acc = sigma.zeros : tensor<8x6xf32>
%r = sigma.iteration %a, %b, %acc {index = 0 : i64, stationary = "a", vectors = array<i64: 0, 8>, k = array<i64: 0, 4>} : (tensor<8x4xf32>, tensor<4x6xf32>, tensor<8x6xf32>) -> tensor<8x6xf32>
// CHECK: sigma.iteration: the stationary matrix must be #sparsec.bitmap-encoded (the result of sigma.pack)

// -----

%a = "test.op"() : () -> tensor<8x4xf32>
%b = "test.op"() : () -> tensor<5x6xf32>
%acc = sigma.zeros : tensor<8x6xf32>
%s = sigma.pack %a {stationary = "a"} : tensor<8x4xf32> -> tensor<8x4xf32, #sparsec.bitmap<order = row>>
%r = sigma.iteration %s, %b, %acc {index = 0 : i64, stationary = "a", vectors = array<i64: 0, 8>, k = array<i64: 0, 4>} : (tensor<8x4xf32, #sparsec.bitmap<order = row>>, tensor<5x6xf32>, tensor<8x6xf32>) -> tensor<8x6xf32>
// CHECK: sigma.iteration: the streaming operand has K=5, the stationary matrix K=4

// -----

%a = "test.op"() : () -> tensor<8x4xf32>
%b = "test.op"() : () -> tensor<4x6xf32>
%acc = sigma.zeros : tensor<6x8xf32>
%s = sigma.pack %a {stationary = "a"} : tensor<8x4xf32> -> tensor<8x4xf32, #sparsec.bitmap<order = row>>
%r = sigma.iteration %s, %b, %acc {index = 0 : i64, stationary = "a", vectors = array<i64: 0, 8>, k = array<i64: 0, 4>} : (tensor<8x4xf32, #sparsec.bitmap<order = row>>, tensor<4x6xf32>, tensor<6x8xf32>) -> tensor<6x8xf32>
// CHECK: sigma.iteration: accumulator 6x8 does not match the GEMM (8x6)

// -----

%acc = sigma.zeros : tensor<8x6xf32>
%r = sigma.store %acc : tensor<8x6xf32> -> tensor<6x8xf32>
// CHECK: sigma.store: result type must equal the accumulator's

// -----

// NODATA-BEGIN
func.func @k() -> tensor<4x6xf32> {
  %A = sparsec.input @A : tensor<4x5xf32>
  %B = sparsec.param @B : tensor<5x6xf32>
  %C = sparsec.matmul %A, %B : (tensor<4x5xf32>, tensor<5x6xf32>) -> tensor<4x6xf32>
  func.return %C : tensor<4x6xf32>
}
// NODATA-END
// NODATA: lower-sigma: this pass needs the program's data: run it through `sparsec compile`, which provides the DataStore
