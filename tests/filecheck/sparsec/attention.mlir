// RUN: xdsl-opt %s | filecheck %s
// RUN: xdsl-opt %s -p decompose-attention | filecheck %s --check-prefix=SPLIT

func.func @a() -> tensor<2x4x8xf32> {
  %q = sparsec.input @Q : tensor<2x4x8xf32>
  %k = sparsec.input @K : tensor<2x6x8xf32>
  %v = sparsec.input @V : tensor<2x6x8xf32>
  %p = sparsec.param @P : tensor<4x6xi8>
  %o = sparsec.attention %q, %k, %v pattern %p {scale = 0.125 : f64, mask = "pattern"} : (tensor<2x4x8xf32>, tensor<2x6x8xf32>, tensor<2x6x8xf32>, tensor<4x6xi8>) -> tensor<2x4x8xf32>
  func.return %o : tensor<2x4x8xf32>
}

// CHECK: %o = sparsec.attention %q, %k, %v pattern %p {scale = 1.250000e-01 : f64, mask = "pattern"} : (tensor<2x4x8xf32>, tensor<2x6x8xf32>, tensor<2x6x8xf32>, tensor<4x6xi8>) -> tensor<2x4x8xf32>

// SPLIT:      %o_scores = sparsec.sddmm %q, %k pattern %p {scale = 1.250000e-01 : f64, mask = "pattern"} : (tensor<2x4x8xf32>, tensor<2x6x8xf32>, tensor<4x6xi8>) -> tensor<2x4x6xf32>
// SPLIT-NEXT: %o_probs = sparsec.softmax %o_scores pattern %p {mask = "pattern"} : (tensor<2x4x6xf32>, tensor<4x6xi8>) -> tensor<2x4x6xf32>
// SPLIT-NEXT: %o = sparsec.spmm %o_probs, %v : (tensor<2x4x6xf32>, tensor<2x6x8xf32>) -> tensor<2x4x8xf32>
// SPLIT-NOT:  sparsec.attention
