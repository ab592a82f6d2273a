// RUN: xdsl-opt %s --split-input-file --verify-diagnostics -p 'lower-asadi' | filecheck %s

// One case per verifier rule of #sparsec.diagonal and of the asadi ISA, then each
// refusal of `lower-asadi`.

%a = sparsec.param @A : tensor<8x8xi8, #sparsec.diagonal<w = 0>>
// CHECK: sparsec.diagonal: w must be >= 1, got 0

// -----

%a = sparsec.param @A : tensor<8x8xi8, #sparsec.diagonal<w = 3, diagonals = 2>>
// CHECK: sparsec.diagonal: diagonals (2) must be >= w (3): the band is always stored

// -----

%a = sparsec.param @A : tensor<4x4xi8, #sparsec.diagonal<w = 3, diagonals = 9>>
// CHECK: sparsec.diagonal: 9 diagonals exceed the 7 a 4x4 matrix has

// -----

%a = sparsec.param @A : tensor<2x2x4x4xf32, #sparsec.diagonal<w = 3>>
// CHECK: sparsec.diagonal: expected a [T, S] or [heads, T, S] tensor, got 2x2x4x4

// -----

%w = "test.op"() : () -> tensor<4xf32>
%r = asadi.write %w : tensor<4xf32> -> tensor<4xf32>
%o = asadi.read %r : tensor<4xf32> -> tensor<4xf64>
// CHECK: asadi.read: result must have the accumulator's shape and element type

// -----

%q = "test.op"() : () -> tensor<8x4xf32>
%k = "test.op"() : () -> tensor<8x4xf32>
%m = "test.op"() : () -> tensor<8x8xi8>
%s = asadi.zeros : tensor<8x8xf32>
%r = asadi.sddmm %q, %k, %m, %s {paradigm = "dia", first = 0 : i64, last = 1 : i64, scale = 1.0 : f64} : (tensor<8x4xf32>, tensor<8x4xf32>, tensor<8x8xi8>, tensor<8x8xf32>) -> tensor<8x8xf32>
// CHECK: asadi.sddmm: the dia paradigm needs a mask with a #sparsec.diagonal encoding, got tensor<8x8xi8>

// -----

%q = "test.op"() : () -> tensor<8x4xf32>
%k = "test.op"() : () -> tensor<8x4xf32>
%m = "test.op"() : () -> tensor<8x8xi8>
%s = asadi.zeros : tensor<8x8xf32>
%r = asadi.sddmm %q, %k, %m, %s {paradigm = "coo", first = 0 : i64, last = 1 : i64, scale = 1.0 : f64} : (tensor<8x4xf32>, tensor<8x4xf32>, tensor<8x8xi8>, tensor<8x8xf32>) -> tensor<8x8xf32>
// CHECK: asadi.sddmm: paradigm must be dia or csr, got 'coo'

// -----

%q = "test.op"() : () -> tensor<8x4xf32>
%k = "test.op"() : () -> tensor<8x4xf32>
%m = "test.op"() : () -> tensor<8x8xi8, #sparsec.diagonal<w = 3, diagonals = 5>>
%s = asadi.zeros : tensor<8x8xf32>
%r = asadi.sddmm %q, %k, %m, %s {paradigm = "dia", first = 4 : i64, last = 6 : i64, scale = 1.0 : f64} : (tensor<8x4xf32>, tensor<8x4xf32>, tensor<8x8xi8, #sparsec.diagonal<w = 3, diagonals = 5>>, tensor<8x8xf32>) -> tensor<8x8xf32>
// CHECK: asadi.sddmm: band [4, 6) must lie in the mask's 5 diagonals

// -----

%q = "test.op"() : () -> tensor<8x4xf32>
%k = "test.op"() : () -> tensor<8x4xf32>
%m = "test.op"() : () -> tensor<8x8xi8>
%s = asadi.zeros : tensor<8x8xf32>
%r = asadi.sddmm %q, %k, %m, %s {paradigm = "csr", first = 0 : i64, last = 9 : i64, scale = 1.0 : f64} : (tensor<8x4xf32>, tensor<8x4xf32>, tensor<8x8xi8>, tensor<8x8xf32>) -> tensor<8x8xf32>
// CHECK: asadi.sddmm: band [0, 9) must lie in the mask's 8 rows

// -----

%q = "test.op"() : () -> tensor<8x4xf32>
%k = "test.op"() : () -> tensor<8x3xf32>
%m = "test.op"() : () -> tensor<8x8xi8>
%s = asadi.zeros : tensor<8x8xf32>
%r = asadi.sddmm %q, %k, %m, %s {paradigm = "csr", first = 0 : i64, last = 8 : i64, scale = 1.0 : f64} : (tensor<8x4xf32>, tensor<8x3xf32>, tensor<8x8xi8>, tensor<8x8xf32>) -> tensor<8x8xf32>
// CHECK: asadi.sddmm: Q [8, 4] and K [8, 3] must agree in heads and d, the accumulator be [8, 8]

// -----

%q = "test.op"() : () -> tensor<8x4xf32>
%k = "test.op"() : () -> tensor<6x4xf32>
%m = "test.op"() : () -> tensor<8x8xi8>
%s = asadi.zeros : tensor<8x6xf32>
%r = asadi.sddmm %q, %k, %m, %s {paradigm = "csr", first = 0 : i64, last = 8 : i64, scale = 1.0 : f64} : (tensor<8x4xf32>, tensor<6x4xf32>, tensor<8x8xi8>, tensor<8x6xf32>) -> tensor<8x6xf32>
// CHECK: asadi.sddmm: mask 8x8 must match the scores 8x6

// -----

%s = "test.op"() : () -> tensor<8x8xf32>
%m = "test.op"() : () -> tensor<8x8xi8>
%p = asadi.softmax %s, %m {paradigm = "dia"} : (tensor<8x8xf32>, tensor<8x8xi8>) -> tensor<8x8xf32>
// CHECK: asadi.softmax: the dia paradigm needs a mask with a #sparsec.diagonal encoding, got tensor<8x8xi8>

// -----

%s = "test.op"() : () -> tensor<8x8xf32>
%m = "test.op"() : () -> tensor<8x6xi8>
%p = asadi.softmax %s, %m {paradigm = "csr"} : (tensor<8x8xf32>, tensor<8x6xi8>) -> tensor<8x8xf32>
// CHECK: asadi.softmax: mask must be 8x8 (the scores' T x S)

// -----

%p = "test.op"() : () -> tensor<8x8xf32>
%v = "test.op"() : () -> tensor<6x4xf32>
%m = "test.op"() : () -> tensor<8x8xi8>
%z = asadi.zeros : tensor<8x4xf32>
%r = asadi.spmm %p, %v, %m, %z {paradigm = "csr", first = 0 : i64, last = 8 : i64} : (tensor<8x8xf32>, tensor<6x4xf32>, tensor<8x8xi8>, tensor<8x4xf32>) -> tensor<8x4xf32>
// CHECK: asadi.spmm: P [8, 8] and V [6, 4] must agree in heads and S, the accumulator be [8, 4]

// -----

// lower-asadi refuses a mask that is not a pattern in the diagonal format, naming the pass.
func.func @causal() -> tensor<8x4xf32> {
  %Q = sparsec.input @Q : tensor<8x4xf32>
  %K = sparsec.input @K : tensor<8x4xf32>
  %V = sparsec.input @V : tensor<8x4xf32>
  %O = sparsec.attention %Q, %K, %V {scale = 0.5 : f64, mask = "causal"} : (tensor<8x4xf32>, tensor<8x4xf32>, tensor<8x4xf32>) -> tensor<8x4xf32>
  func.return %O : tensor<8x4xf32>
}
// CHECK: asadi: sparsec.attention O has mask 'causal'; ASADI runs a pattern mask in the diagonal format: run encode-diagonal first (sparsec compare adds it)

// -----

func.func @plain_pattern() -> tensor<8x4xf32> {
  %Q = sparsec.input @Q : tensor<8x4xf32>
  %K = sparsec.input @K : tensor<8x4xf32>
  %V = sparsec.input @V : tensor<8x4xf32>
  %M = sparsec.param @M : tensor<8x8xi8>
  %O = sparsec.attention %Q, %K, %V pattern %M {scale = 0.5 : f64, mask = "pattern"} : (tensor<8x4xf32>, tensor<8x4xf32>, tensor<8x4xf32>, tensor<8x8xi8>) -> tensor<8x4xf32>
  func.return %O : tensor<8x4xf32>
}
// CHECK: asadi: the mask M of sparsec.attention O is not in the diagonal format (#sparsec.diagonal); run encode-diagonal first, or use asadi{diagonal=false} (CSR paradigm)

// -----

func.func @spmm_input() -> tensor<8x4xf32> {
  %P = sparsec.input @P : tensor<8x8xf32>
  %V = sparsec.input @V : tensor<8x4xf32>
  %O = sparsec.spmm %P, %V : (tensor<8x8xf32>, tensor<8x4xf32>) -> tensor<8x4xf32>
  func.return %O : tensor<8x4xf32>
}
// CHECK: asadi: operand P of sparsec.spmm has no known structure: P must come from a sddmm/softmax with a pattern mask, or be a param (run encode-diagonal on it)

// -----

func.func @matmul() -> tensor<2x2xf32> {
  %X = sparsec.input @X : tensor<2x3xf32>
  %W = sparsec.param @W : tensor<3x2xf32>
  %Y = sparsec.matmul %X, %W : (tensor<2x3xf32>, tensor<3x2xf32>) -> tensor<2x2xf32>
  func.return %Y : tensor<2x2xf32>
}
// CHECK: asadi: sparsec.matmul Y: ASADI's digital modules run attention (sddmm, softmax, spmm); its linear layers (analog crossbars) are not modeled; use another target for matmuls
