builtin.module attributes {sparsec.target = "systolic{preset=\22default\22 rows=32 cols=32 dataflow=\22os\22 ifmap_sram_kb=64 filter_sram_kb=64 ofmap_sram_kb=64 word_bytes=1 mode=\22calc\22 bandwidth=10 clock_ghz=1.0 vector_lanes=0 vector_alu_cycles=1 vector_sfu_cycles=4 vector_alu_pj=2.3 vector_sfu_pj=13.8 mac_pj=0.23 sram_pj_per_byte=3.0 dram_pj_per_byte=160.0}"} {
  func.func @gemm() -> tensor<8x12xf32> attributes {sparsec.outputs = ["Y"]} {
    %X = sparsec.input @X : tensor<8x16xf32>
    %W = sparsec.param @W {nnz = 96 : i64, density = 5.000000e-01 : f64} : tensor<16x12xf32>
    %Y = systolic.zeros : tensor<8x12xf32>
    systolic.prefetch %X {operand = "ifmap", words = 128 : i64, first_use = 0 : i64} : tensor<8x16xf32>
    systolic.prefetch %W {operand = "filter", words = 192 : i64, first_use = 0 : i64} : tensor<16x12xf32>
    %Y_1 = systolic.fold %X, %W, %Y {index = 0 : i64, m = array<i64: 0, 8>, n = array<i64: 0, 12>, k = array<i64: 0, 16>} : (tensor<8x16xf32>, tensor<16x12xf32>, tensor<8x12xf32>) -> tensor<8x12xf32>
    %Y_2 = systolic.writeback %Y_1 {words = 96 : i64} : tensor<8x12xf32> -> tensor<8x12xf32>
    func.return %Y_2 : tensor<8x12xf32>
  }
  func.func @gemm_tb() -> tensor<8x12xf32> attributes {sparsec.outputs = ["Y"]} {
    %X = sparsec.input @X : tensor<8x16xf32>
    %W = sparsec.param @W {nnz = 48 : i64, density = 2.500000e-01 : f64} : tensor<12x16xf32>
    %Y = systolic.zeros : tensor<8x12xf32>
    systolic.prefetch %X {operand = "ifmap", words = 128 : i64, first_use = 0 : i64} : tensor<8x16xf32>
    systolic.prefetch %W {operand = "filter", words = 192 : i64, first_use = 0 : i64} : tensor<12x16xf32>
    %Y_1 = systolic.fold %X, %W, %Y {index = 0 : i64, m = array<i64: 0, 8>, n = array<i64: 0, 12>, k = array<i64: 0, 16>, transpose_b} : (tensor<8x16xf32>, tensor<12x16xf32>, tensor<8x12xf32>) -> tensor<8x12xf32>
    %Y_2 = systolic.writeback %Y_1 {words = 96 : i64} : tensor<8x12xf32> -> tensor<8x12xf32>
    func.return %Y_2 : tensor<8x12xf32>
  }
  func.func @int8() -> tensor<4x8xi32> attributes {sparsec.outputs = ["C"]} {
    %A = sparsec.input @A : tensor<4x32xi8>
    %B = sparsec.param @B {nnz = 192 : i64, density = 7.500000e-01 : f64} : tensor<32x8xi8>
    %C = systolic.zeros : tensor<4x8xi32>
    systolic.prefetch %A {operand = "ifmap", words = 128 : i64, first_use = 0 : i64} : tensor<4x32xi8>
    systolic.prefetch %B {operand = "filter", words = 256 : i64, first_use = 0 : i64} : tensor<32x8xi8>
    %C_1 = systolic.fold %A, %B, %C {index = 0 : i64, m = array<i64: 0, 4>, n = array<i64: 0, 8>, k = array<i64: 0, 32>} : (tensor<4x32xi8>, tensor<32x8xi8>, tensor<4x8xi32>) -> tensor<4x8xi32>
    %C_2 = systolic.writeback %C_1 {words = 32 : i64} : tensor<4x8xi32> -> tensor<4x8xi32>
    func.return %C_2 : tensor<4x8xi32>
  }
  func.func @attn() -> tensor<2x16x8xf32> attributes {sparsec.outputs = ["O"]} {
    %Q = sparsec.input @Q : tensor<2x16x8xf32>
    %K = sparsec.input @K : tensor<2x16x8xf32>
    %V = sparsec.input @V : tensor<2x16x8xf32>
    %O_scores = systolic.zeros : tensor<2x16x16xf32>
    systolic.prefetch %Q {operand = "ifmap", words = 256 : i64, first_use = 0 : i64} : tensor<2x16x8xf32>
    systolic.prefetch %K {operand = "filter", words = 256 : i64, first_use = 0 : i64} : tensor<2x16x8xf32>
    %O_scores_1 = systolic.fold %Q, %K, %O_scores {index = 0 : i64, m = array<i64: 0, 16>, n = array<i64: 0, 16>, k = array<i64: 0, 8>, head = 0 : i64, transpose_b} : (tensor<2x16x8xf32>, tensor<2x16x8xf32>, tensor<2x16x16xf32>) -> tensor<2x16x16xf32>
    %O_scores_2 = systolic.fold %Q, %K, %O_scores_1 {index = 1 : i64, m = array<i64: 0, 16>, n = array<i64: 0, 16>, k = array<i64: 0, 8>, head = 1 : i64, transpose_b} : (tensor<2x16x8xf32>, tensor<2x16x8xf32>, tensor<2x16x16xf32>) -> tensor<2x16x16xf32>
    %O_scores_3 = systolic.epilogue %O_scores_2 {scale = 0.35355339059327373 : f64, mask = "causal"} : (tensor<2x16x16xf32>) -> tensor<2x16x16xf32>
    %O_scores_4 = systolic.writeback %O_scores_3 {words = 512 : i64} : tensor<2x16x16xf32> -> tensor<2x16x16xf32>
    %O_probs = systolic.softmax %O_scores_4 {mask = "causal"} : (tensor<2x16x16xf32>) -> tensor<2x16x16xf32>
    %O = systolic.zeros : tensor<2x16x8xf32>
    systolic.prefetch %O_probs {operand = "ifmap", words = 512 : i64, first_use = 0 : i64} : tensor<2x16x16xf32>
    systolic.prefetch %V {operand = "filter", words = 256 : i64, first_use = 0 : i64} : tensor<2x16x8xf32>
    %O_1 = systolic.fold %O_probs, %V, %O {index = 0 : i64, m = array<i64: 0, 16>, n = array<i64: 0, 8>, k = array<i64: 0, 16>, head = 0 : i64} : (tensor<2x16x16xf32>, tensor<2x16x8xf32>, tensor<2x16x8xf32>) -> tensor<2x16x8xf32>
    %O_2 = systolic.fold %O_probs, %V, %O_1 {index = 1 : i64, m = array<i64: 0, 16>, n = array<i64: 0, 8>, k = array<i64: 0, 16>, head = 1 : i64} : (tensor<2x16x16xf32>, tensor<2x16x8xf32>, tensor<2x16x8xf32>) -> tensor<2x16x8xf32>
    %O_3 = systolic.writeback %O_2 {words = 256 : i64} : tensor<2x16x8xf32> -> tensor<2x16x8xf32>
    func.return %O_3 : tensor<2x16x8xf32>
  }
  func.func @attn_parts() -> (tensor<16x8xf32>, tensor<16x16xf32>) attributes {sparsec.outputs = ["O", "P"]} {
    %Q = sparsec.input @Q : tensor<16x8xf32>
    %K = sparsec.input @K : tensor<16x8xf32>
    %V = sparsec.input @V : tensor<16x8xf32>
    %S = systolic.zeros : tensor<16x16xf32>
    systolic.prefetch %Q {operand = "ifmap", words = 128 : i64, first_use = 0 : i64} : tensor<16x8xf32>
    systolic.prefetch %K {operand = "filter", words = 128 : i64, first_use = 0 : i64} : tensor<16x8xf32>
    %S_1 = systolic.fold %Q, %K, %S {index = 0 : i64, m = array<i64: 0, 16>, n = array<i64: 0, 16>, k = array<i64: 0, 8>, transpose_b} : (tensor<16x8xf32>, tensor<16x8xf32>, tensor<16x16xf32>) -> tensor<16x16xf32>
    %S_2 = systolic.epilogue %S_1 {scale = 0.35355339059327373 : f64, mask = "window", window = 4 : i64} : (tensor<16x16xf32>) -> tensor<16x16xf32>
    %S_3 = systolic.writeback %S_2 {words = 256 : i64} : tensor<16x16xf32> -> tensor<16x16xf32>
    %P = systolic.softmax %S_3 {mask = "window", window = 4 : i64} : (tensor<16x16xf32>) -> tensor<16x16xf32>
    %O = systolic.zeros : tensor<16x8xf32>
    systolic.prefetch %P {operand = "ifmap", words = 256 : i64, first_use = 0 : i64} : tensor<16x16xf32>
    systolic.prefetch %V {operand = "filter", words = 128 : i64, first_use = 0 : i64} : tensor<16x8xf32>
    %O_1 = systolic.fold %P, %V, %O {index = 0 : i64, m = array<i64: 0, 16>, n = array<i64: 0, 8>, k = array<i64: 0, 16>} : (tensor<16x16xf32>, tensor<16x8xf32>, tensor<16x8xf32>) -> tensor<16x8xf32>
    %O_2 = systolic.writeback %O_1 {words = 128 : i64} : tensor<16x8xf32> -> tensor<16x8xf32>
    func.return %O_2, %P : tensor<16x8xf32>, tensor<16x16xf32>
  }
  func.func @block() -> tensor<8x16xf32> attributes {sparsec.outputs = ["Z"]} {
    %X = sparsec.input @X : tensor<8x16xf32>
    %W = sparsec.param @W {nnz = 256 : i64, density = 1.000000e+00 : f64} : tensor<16x16xf32>
    %G = sparsec.param @G {nnz = 16 : i64, density = 1.000000e+00 : f64} : tensor<16xf32>
    %B = sparsec.param @B {nnz = 16 : i64, density = 1.000000e+00 : f64} : tensor<16xf32>
    %H = systolic.zeros : tensor<8x16xf32>
    systolic.prefetch %X {operand = "ifmap", words = 128 : i64, first_use = 0 : i64} : tensor<8x16xf32>
    systolic.prefetch %W {operand = "filter", words = 256 : i64, first_use = 0 : i64} : tensor<16x16xf32>
    %H_1 = systolic.fold %X, %W, %H {index = 0 : i64, m = array<i64: 0, 8>, n = array<i64: 0, 16>, k = array<i64: 0, 16>} : (tensor<8x16xf32>, tensor<16x16xf32>, tensor<8x16xf32>) -> tensor<8x16xf32>
    %H_2 = systolic.writeback %H_1 {words = 128 : i64} : tensor<8x16xf32> -> tensor<8x16xf32>
    %R = systolic.vector "add" %H_2, %X : (tensor<8x16xf32>, tensor<8x16xf32>) -> tensor<8x16xf32>
    %N = systolic.vector "layernorm" %R, %G, %B {eps = 1.000000e-06 : f64} : (tensor<8x16xf32>, tensor<16xf32>, tensor<16xf32>) -> tensor<8x16xf32>
    %A = systolic.vector "gelu" %N : (tensor<8x16xf32>) -> tensor<8x16xf32>
    %S = systolic.vector "silu" %A : (tensor<8x16xf32>) -> tensor<8x16xf32>
    %M = systolic.vector "mul" %S, %A : (tensor<8x16xf32>, tensor<8x16xf32>) -> tensor<8x16xf32>
    %E = systolic.vector "exp" %M : (tensor<8x16xf32>) -> tensor<8x16xf32>
    %Z = systolic.vector "rmsnorm" %E, %G {eps = 1.000000e-05 : f64} : (tensor<8x16xf32>, tensor<16xf32>) -> tensor<8x16xf32>
    func.return %Z : tensor<8x16xf32>
  }
  func.func @heads() -> tensor<8x32xf32> attributes {sparsec.outputs = ["C"]} {
    %X = sparsec.input @X : tensor<8x16xf32>
    %H = systolic.move "heads" %X {heads = 2 : i64} : (tensor<8x16xf32>) -> tensor<2x8x8xf32>
    %R = systolic.vector "rope" %H {base = 5.000000e+02 : f64} : (tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
    %M = systolic.move "merge_heads" %R : (tensor<2x8x8xf32>) -> tensor<8x16xf32>
    %C = systolic.move "concat" %M, %X {axis = 1 : i64} : (tensor<8x16xf32>, tensor<8x16xf32>) -> tensor<8x32xf32>
    func.return %C : tensor<8x32xf32>
  }
}
