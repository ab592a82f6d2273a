// RUN: xdsl-opt %s -p 'lower-systolic{rows=4 cols=4 dataflow=os}' | filecheck %s

// Two heads of causal attention, T = S = 4, d = 4: per GEMM one fold per head; the
// SDDMM's scale and mask run on the vector unit before the scores drain.

func.func @a() -> tensor<2x4x4xf32> {
  %q = sparsec.input @Q : tensor<2x4x4xf32>
  %k = sparsec.input @K : tensor<2x4x4xf32>
  %v = sparsec.input @V : tensor<2x4x4xf32>
  %o = sparsec.attention %q, %k, %v {scale = 0.5 : f64, mask = "causal"} : (tensor<2x4x4xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32>) -> tensor<2x4x4xf32>
  func.return %o : tensor<2x4x4xf32>
}

// CHECK:      systolic.prefetch %q {operand = "ifmap", words = 32 : i64, first_use = 0 : i64}
// CHECK-NEXT: systolic.prefetch %k {operand = "filter", words = 32 : i64, first_use = 0 : i64}
// CHECK-NEXT: systolic.fold %q, %k, %{{.*}} {index = 0 : i64, m = array<i64: 0, 4>, n = array<i64: 0, 4>, k = array<i64: 0, 4>, head = 0 : i64, transpose_b}
// CHECK-NEXT: systolic.fold %q, %k, %{{.*}} {index = 1 : i64, m = array<i64: 0, 4>, n = array<i64: 0, 4>, k = array<i64: 0, 4>, head = 1 : i64, transpose_b}
// CHECK-NEXT: systolic.epilogue %{{.*}} {scale = 5.000000e-01 : f64, mask = "causal"}
// CHECK-NEXT: %[[S:.*]] = systolic.writeback
// CHECK-NEXT: %[[P:.*]] = systolic.softmax %[[S]] {mask = "causal"}
// CHECK:      systolic.fold %[[P]], %v, %{{.*}} {index = 1 : i64, {{.*}}head = 1 : i64}
// CHECK-NOT:  sparsec.
