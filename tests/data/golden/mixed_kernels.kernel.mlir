builtin.module {
  func.func @gemm() -> tensor<8x12xf32> attributes {sparsec.outputs = ["Y"]} {
    %X = sparsec.input @X : tensor<8x16xf32>
    %W = sparsec.param @W {nnz = 96 : i64, density = 5.000000e-01 : f64} : tensor<16x12xf32>
    %Y = sparsec.matmul %X, %W : (tensor<8x16xf32>, tensor<16x12xf32>) -> tensor<8x12xf32>
    func.return %Y : tensor<8x12xf32>
  }
  func.func @gemm_tb() -> tensor<8x12xf32> attributes {sparsec.outputs = ["Y"]} {
    %X = sparsec.input @X : tensor<8x16xf32>
    %W = sparsec.param @W {nnz = 48 : i64, density = 2.500000e-01 : f64} : tensor<12x16xf32>
    %Y = sparsec.matmul %X, %W {transpose_b} : (tensor<8x16xf32>, tensor<12x16xf32>) -> tensor<8x12xf32>
    func.return %Y : tensor<8x12xf32>
  }
  func.func @int8() -> tensor<4x8xi32> attributes {sparsec.outputs = ["C"]} {
    %A = sparsec.input @A : tensor<4x32xi8>
    %B = sparsec.param @B {nnz = 192 : i64, density = 7.500000e-01 : f64} : tensor<32x8xi8>
    %C = sparsec.matmul %A, %B : (tensor<4x32xi8>, tensor<32x8xi8>) -> tensor<4x8xi32>
    func.return %C : tensor<4x8xi32>
  }
  func.func @attn() -> tensor<2x16x8xf32> attributes {sparsec.outputs = ["O"]} {
    %Q = sparsec.input @Q : tensor<2x16x8xf32>
    %K = sparsec.input @K : tensor<2x16x8xf32>
    %V = sparsec.input @V : tensor<2x16x8xf32>
    %O = sparsec.attention %Q, %K, %V {scale = 0.35355339059327373 : f64, mask = "causal"} : (tensor<2x16x8xf32>, tensor<2x16x8xf32>, tensor<2x16x8xf32>) -> tensor<2x16x8xf32>
    func.return %O : tensor<2x16x8xf32>
  }
  func.func @attn_parts() -> (tensor<16x8xf32>, tensor<16x16xf32>) attributes {sparsec.outputs = ["O", "P"]} {
    %Q = sparsec.input @Q : tensor<16x8xf32>
    %K = sparsec.input @K : tensor<16x8xf32>
    %V = sparsec.input @V : tensor<16x8xf32>
    %S = sparsec.sddmm %Q, %K {scale = 0.35355339059327373 : f64, mask = "window", window = 4 : i64} : (tensor<16x8xf32>, tensor<16x8xf32>) -> tensor<16x16xf32>
    %P = sparsec.softmax %S {mask = "window", window = 4 : i64} : (tensor<16x16xf32>) -> tensor<16x16xf32>
    %O = sparsec.spmm %P, %V : (tensor<16x16xf32>, tensor<16x8xf32>) -> tensor<16x8xf32>
    func.return %O, %P : tensor<16x8xf32>, tensor<16x16xf32>
  }
  func.func @block() -> tensor<8x16xf32> attributes {sparsec.outputs = ["Z"]} {
    %X = sparsec.input @X : tensor<8x16xf32>
    %W = sparsec.param @W {nnz = 256 : i64, density = 1.000000e+00 : f64} : tensor<16x16xf32>
    %G = sparsec.param @G {nnz = 16 : i64, density = 1.000000e+00 : f64} : tensor<16xf32>
    %B = sparsec.param @B {nnz = 16 : i64, density = 1.000000e+00 : f64} : tensor<16xf32>
    %H = sparsec.matmul %X, %W : (tensor<8x16xf32>, tensor<16x16xf32>) -> tensor<8x16xf32>
    %R = sparsec.add %H, %X : (tensor<8x16xf32>, tensor<8x16xf32>) -> tensor<8x16xf32>
    %N = sparsec.layernorm %R, %G, %B {eps = 1.000000e-06 : f64} : (tensor<8x16xf32>, tensor<16xf32>, tensor<16xf32>) -> tensor<8x16xf32>
    %A = sparsec.gelu %N : tensor<8x16xf32> -> tensor<8x16xf32>
    %S = sparsec.silu %A : tensor<8x16xf32> -> tensor<8x16xf32>
    %M = sparsec.mul %S, %A : (tensor<8x16xf32>, tensor<8x16xf32>) -> tensor<8x16xf32>
    %E = sparsec.exp %M : tensor<8x16xf32> -> tensor<8x16xf32>
    %Z = sparsec.rmsnorm %E, %G {eps = 1.000000e-05 : f64} : (tensor<8x16xf32>, tensor<16xf32>) -> tensor<8x16xf32>
    func.return %Z : tensor<8x16xf32>
  }
  func.func @heads() -> tensor<8x32xf32> attributes {sparsec.outputs = ["C"]} {
    %X = sparsec.input @X : tensor<8x16xf32>
    %H = sparsec.heads %X {heads = 2 : i64} : tensor<8x16xf32> -> tensor<2x8x8xf32>
    %R = sparsec.rope %H {base = 5.000000e+02 : f64} : tensor<2x8x8xf32> -> tensor<2x8x8xf32>
    %M = sparsec.merge_heads %R : tensor<2x8x8xf32> -> tensor<8x16xf32>
    %C = sparsec.concat %M, %X {axis = 1 : i64} : (tensor<8x16xf32>, tensor<8x16xf32>) -> tensor<8x32xf32>
    func.return %C : tensor<8x32xf32>
  }
}
