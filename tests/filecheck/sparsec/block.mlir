// RUN: xdsl-opt %s | xdsl-opt | filecheck %s

// The transformer-block ops round-trip through xdsl-opt unchanged.

func.func @blk() -> tensor<4x16xf32> attributes {sparsec.outputs = ["M"]} {
  %X = sparsec.input @X : tensor<4x16xf32>
  %G = sparsec.param @G : tensor<16xf32>
  %B = sparsec.param @B : tensor<16xf32>
  %C = sparsec.param @C : tensor<1x5x8xf32>
  %N = sparsec.rmsnorm %X, %G {eps = 1.0e-05 : f64} : (tensor<4x16xf32>, tensor<16xf32>) -> tensor<4x16xf32>
  %L = sparsec.layernorm %N, %G, %B {eps = 1.0e-12 : f64} : (tensor<4x16xf32>, tensor<16xf32>, tensor<16xf32>) -> tensor<4x16xf32>
  %A = sparsec.silu %L : tensor<4x16xf32> -> tensor<4x16xf32>
  %E = sparsec.exp %A : tensor<4x16xf32> -> tensor<4x16xf32>
  %Y = sparsec.gelu %E : tensor<4x16xf32> -> tensor<4x16xf32>
  %Yt = sparsec.gelu %E {approximate = "tanh"} : tensor<4x16xf32> -> tensor<4x16xf32>
  %S = sparsec.add %Y, %G : (tensor<4x16xf32>, tensor<16xf32>) -> tensor<4x16xf32>
  %col = sparsec.param @col : tensor<4x1xf32>
  %P = sparsec.mul %col, %S : (tensor<4x1xf32>, tensor<4x16xf32>) -> tensor<4x16xf32>
  %H = sparsec.heads %P {heads = 2 : i64} : tensor<4x16xf32> -> tensor<2x4x8xf32>
  %R = sparsec.rope %H {base = 1.0e+05 : f64, start = 5 : i64} : tensor<2x4x8xf32> -> tensor<2x4x8xf32>
  %K = sparsec.heads %X {heads = 2 : i64} : tensor<4x16xf32> -> tensor<2x4x8xf32>
  %Kr = sparsec.rope %K {base = 1.0e+05 : f64, convention = "neox"} : tensor<2x4x8xf32> -> tensor<2x4x8xf32>
  %K1 = sparsec.param @K1 : tensor<1x4x8xf32>
  %KK = sparsec.concat %C, %K1 {axis = 1 : i64} : (tensor<1x5x8xf32>, tensor<1x4x8xf32>) -> tensor<1x9x8xf32>
  %O = sparsec.gqa_attention %R, %KK, %KK {scale = 0.125 : f64, mask = "causal", start = 5 : i64} : (tensor<2x4x8xf32>, tensor<1x9x8xf32>, tensor<1x9x8xf32>) -> tensor<2x4x8xf32>
  %O2 = sparsec.gqa_attention %R, %KK, %KK {scale = 0.125 : f64} : (tensor<2x4x8xf32>, tensor<1x9x8xf32>, tensor<1x9x8xf32>) -> tensor<2x4x8xf32>
  %M = sparsec.merge_heads %O : tensor<2x4x8xf32> -> tensor<4x16xf32>
  func.return %M : tensor<4x16xf32>
}

// CHECK:      %N = sparsec.rmsnorm %X, %G {eps = 1.000000e-05 : f64} : (tensor<4x16xf32>, tensor<16xf32>) -> tensor<4x16xf32>
// CHECK-NEXT: %L = sparsec.layernorm %N, %G, %B {eps = 1.000000e-12 : f64} : (tensor<4x16xf32>, tensor<16xf32>, tensor<16xf32>) -> tensor<4x16xf32>
// CHECK-NEXT: %A = sparsec.silu %L : tensor<4x16xf32> -> tensor<4x16xf32>
// CHECK-NEXT: %E = sparsec.exp %A : tensor<4x16xf32> -> tensor<4x16xf32>
// CHECK-NEXT: %Y = sparsec.gelu %E : tensor<4x16xf32> -> tensor<4x16xf32>
// CHECK-NEXT: %Yt = sparsec.gelu %E {approximate = "tanh"} : tensor<4x16xf32> -> tensor<4x16xf32>
// CHECK-NEXT: %S = sparsec.add %Y, %G : (tensor<4x16xf32>, tensor<16xf32>) -> tensor<4x16xf32>
// CHECK:      %P = sparsec.mul %col, %S : (tensor<4x1xf32>, tensor<4x16xf32>) -> tensor<4x16xf32>
// CHECK-NEXT: %H = sparsec.heads %P {heads = 2 : i64} : tensor<4x16xf32> -> tensor<2x4x8xf32>
// CHECK-NEXT: %R = sparsec.rope %H {base = 1.000000e+05 : f64, start = 5 : i64} : tensor<2x4x8xf32> -> tensor<2x4x8xf32>
// CHECK:      %Kr = sparsec.rope %K {base = 1.000000e+05 : f64, convention = "neox"} : tensor<2x4x8xf32> -> tensor<2x4x8xf32>
// CHECK:      %KK = sparsec.concat %C, %K1 {axis = 1 : i64} : (tensor<1x5x8xf32>, tensor<1x4x8xf32>) -> tensor<1x9x8xf32>
// CHECK-NEXT: %O = sparsec.gqa_attention %R, %KK, %KK {scale = 1.250000e-01 : f64, mask = "causal", start = 5 : i64} : (tensor<2x4x8xf32>, tensor<1x9x8xf32>, tensor<1x9x8xf32>) -> tensor<2x4x8xf32>
// CHECK-NEXT: %O2 = sparsec.gqa_attention %R, %KK, %KK {scale = 1.250000e-01 : f64} : (tensor<2x4x8xf32>, tensor<1x9x8xf32>, tensor<1x9x8xf32>) -> tensor<2x4x8xf32>
// CHECK-NEXT: %M = sparsec.merge_heads %O : tensor<2x4x8xf32> -> tensor<4x16xf32>
