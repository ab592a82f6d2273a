// RUN: xdsl-opt %s --split-input-file --verify-diagnostics | filecheck %s

// One case per verifier rule of the systolic ISA.

%a = "test.op"() : () -> tensor<8x8xf32>
%acc = systolic.zeros : tensor<8x8xf32>
%r = systolic.fold %a, %a, %acc {index = 0 : i64, m = array<i64: 0, 9>, n = array<i64: 0, 8>, k = array<i64: 0, 8>} : (tensor<8x8xf32>, tensor<8x8xf32>, tensor<8x8xf32>) -> tensor<8x8xf32>
// CHECK: systolic.fold: tile m=0:9 n=0:8 exceeds the accumulator 8x8

// -----

%a = "test.op"() : () -> tensor<8x8xf32>
%acc = systolic.zeros : tensor<8x8xf32>
%r = systolic.fold %a, %a, %acc {index = 0 : i64, m = array<i64: 4, 4>, n = array<i64: 0, 8>, k = array<i64: 0, 8>} : (tensor<8x8xf32>, tensor<8x8xf32>, tensor<8x8xf32>) -> tensor<8x8xf32>
// CHECK: systolic.fold: m must be array<i64: lo, hi> with 0 <= lo < hi, got [4, 4]

// -----

%a = "test.op"() : () -> tensor<8x8xf32>
%acc = systolic.zeros : tensor<8x8xf32>
%r = systolic.fold %a, %a, %acc {index = 0 : i64, m = array<i64: 0, 8>, n = array<i64: 0, 8>, k = array<i64: 0, 12>} : (tensor<8x8xf32>, tensor<8x8xf32>, tensor<8x8xf32>) -> tensor<8x8xf32>
// CHECK: systolic.fold: k=0:12 exceeds the operand's K=8

// -----

%a = "test.op"() : () -> tensor<8x8xf32>
systolic.prefetch %a {operand = "ofmap", words = 64 : i64, first_use = 0 : i64} : tensor<8x8xf32>
// CHECK: systolic.prefetch: operand must be one of ('ifmap', 'filter'), got 'ofmap'

// -----

%a = "test.op"() : () -> tensor<8x8xf32>
systolic.prefetch %a {operand = "ifmap", words = 0 : i64, first_use = 0 : i64} : tensor<8x8xf32>
// CHECK: systolic.prefetch: words must be > 0 and first_use >= 0

// -----

%acc = systolic.zeros : tensor<8x8xf32>
%r = systolic.writeback %acc {words = 64 : i64} : tensor<8x8xf32> -> tensor<8x4xf32>
// CHECK: systolic.writeback: result type must equal the accumulator's

// -----

%a = "test.op"() : () -> tensor<4x8xf32>
%r = systolic.vector "softplus" %a : (tensor<4x8xf32>) -> tensor<4x8xf32>
// CHECK: systolic.vector: kind must be one of rmsnorm, layernorm, silu, gelu, exp, add, mul, rope, got 'softplus'

// -----

%a = "test.op"() : () -> tensor<4x8xf32>
%r = systolic.vector "add" %a : (tensor<4x8xf32>) -> tensor<4x8xf32>
// CHECK: systolic.vector: 'add' takes 2 input(s), got 1

// -----

%a = "test.op"() : () -> tensor<4x8xf32>
%g = "test.op"() : () -> tensor<8xf32>
%r = systolic.vector "rmsnorm" %a, %g : (tensor<4x8xf32>, tensor<8xf32>) -> tensor<4x8xf32>
// CHECK: systolic.vector: 'rmsnorm' needs `eps`

// -----

%a = "test.op"() : () -> tensor<4x8xf32>
%r = systolic.move "transpose" %a : (tensor<4x8xf32>) -> tensor<8x4xf32>
// CHECK: systolic.move: kind must be one of heads, merge_heads, concat, got 'transpose'

// -----

%a = "test.op"() : () -> tensor<4x8xf32>
%r = systolic.move "concat" %a : (tensor<4x8xf32>) -> tensor<4x8xf32>
// CHECK: systolic.move: 'concat' takes 2 input(s), got 1

// -----

%q = "test.op"() : () -> tensor<3x4x8xf32>
%k = "test.op"() : () -> tensor<2x4x8xf32>
%acc = systolic.zeros : tensor<3x4x4xf32>
%r = systolic.fold %q, %k, %acc {index = 0 : i64, m = array<i64: 0, 4>, n = array<i64: 0, 4>, k = array<i64: 0, 8>, head = 0 : i64, transpose_b} : (tensor<3x4x8xf32>, tensor<2x4x8xf32>, tensor<3x4x4xf32>) -> tensor<3x4x4xf32>
// CHECK: systolic.fold: rhs heads (2) must divide the accumulator's (3) (grouped-query heads)
