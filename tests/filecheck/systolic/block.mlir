// RUN: xdsl-opt %s -p 'lower-systolic{rows=4 cols=4}' | filecheck %s

// A decoder-block slice: GEMMs become folds, elementwise and normalization ops one
// vector-unit instruction each, head reshapes and the KV-cache append data moves;
// grouped-query attention reads key/value head h // 2 for query head h.

func.func @blk() -> tensor<4x8xf32> attributes {sparsec.outputs = ["M"]} {
  %X = sparsec.input @X : tensor<4x8xf32>
  %G = sparsec.param @G : tensor<8xf32>
  %W = sparsec.param @W : tensor<8x8xf32>
  %C = sparsec.param @C : tensor<1x3x4xf32>
  %N = sparsec.rmsnorm %X, %G {eps = 1.0e-05 : f64} : (tensor<4x8xf32>, tensor<8xf32>) -> tensor<4x8xf32>
  %Q = sparsec.matmul %N, %W : (tensor<4x8xf32>, tensor<8x8xf32>) -> tensor<4x8xf32>
  %H = sparsec.heads %Q {heads = 2 : i64} : tensor<4x8xf32> -> tensor<2x4x4xf32>
  %R = sparsec.rope %H {base = 1.0e+05 : f64, start = 3 : i64} : tensor<2x4x4xf32> -> tensor<2x4x4xf32>
  %K1 = sparsec.param @K1 : tensor<1x4x4xf32>
  %K = sparsec.concat %C, %K1 {axis = 1 : i64} : (tensor<1x3x4xf32>, tensor<1x4x4xf32>) -> tensor<1x7x4xf32>
  %O = sparsec.gqa_attention %R, %K, %K {scale = 0.5 : f64, mask = "causal", start = 3 : i64} : (tensor<2x4x4xf32>, tensor<1x7x4xf32>, tensor<1x7x4xf32>) -> tensor<2x4x4xf32>
  %M = sparsec.merge_heads %O : tensor<2x4x4xf32> -> tensor<4x8xf32>
  %S = sparsec.silu %M : tensor<4x8xf32> -> tensor<4x8xf32>
  %Y = sparsec.add %S, %X : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
  func.return %Y : tensor<4x8xf32>
}

// CHECK:      %N = systolic.vector "rmsnorm" %X, %G {eps = 1.000000e-05 : f64} : (tensor<4x8xf32>, tensor<8xf32>) -> tensor<4x8xf32>
// CHECK:      systolic.prefetch %N {operand = "ifmap", words = 32 : i64, first_use = 0 : i64}
// CHECK:      %[[Q:.*]] = systolic.writeback
// CHECK-NEXT: %H = systolic.move "heads" %[[Q]] {heads = 2 : i64} : (tensor<4x8xf32>) -> tensor<2x4x4xf32>
// CHECK-NEXT: %R = systolic.vector "rope" %H {base = 1.000000e+05 : f64, start = 3 : i64} : (tensor<2x4x4xf32>) -> tensor<2x4x4xf32>
// CHECK:      %K = systolic.move "concat" %C, %K1 {axis = 1 : i64} : (tensor<1x3x4xf32>, tensor<1x4x4xf32>) -> tensor<1x7x4xf32>
// The key operand holds one head: its prefetch is 1 x 7 x 4 words.
// CHECK:      systolic.prefetch %K {operand = "filter", words = 28 : i64, first_use = 0 : i64}
// CHECK:      systolic.fold %R, %K, %{{.*}} {index = 2 : i64, m = array<i64: 0, 4>, n = array<i64: 0, 4>, k = array<i64: 0, 4>, head = 1 : i64, transpose_b} : (tensor<2x4x4xf32>, tensor<1x7x4xf32>, tensor<2x4x7xf32>) -> tensor<2x4x7xf32>
// CHECK:      systolic.epilogue %{{.*}} {scale = 5.000000e-01 : f64, mask = "causal", start = 3 : i64}
// CHECK-NEXT: %[[S:.*]] = systolic.writeback
// CHECK-NEXT: %[[P:.*]] = systolic.softmax %[[S]] {mask = "causal", start = 3 : i64}
// CHECK:      systolic.fold %[[P]], %K, %{{.*}} {index = 1 : i64, m = array<i64: 0, 4>, n = array<i64: 0, 4>, k = array<i64: 0, 7>, head = 1 : i64}
// CHECK:      %M = systolic.move "merge_heads"
// CHECK-NEXT: %S = systolic.vector "silu" %M : (tensor<4x8xf32>) -> tensor<4x8xf32>
// CHECK-NEXT: %Y = systolic.vector "add" %S, %X : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
// CHECK-NOT:  sparsec.{{(rmsnorm|rope|heads|concat|gqa_attention|merge_heads|silu|add)}}
