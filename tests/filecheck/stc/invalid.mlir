// RUN: xdsl-opt %s --split-input-file --verify-diagnostics -p 'lower-stc' | filecheck %s

// One case per verifier rule of the stc ISA, then each refusal of `lower-stc`.

%a = "test.op"() : () -> tensor<8x8xf16>
%acc = stc.zeros : tensor<8x8xf16>
%r = stc.tile %a, %a, %acc {index = 0 : i64, m = array<i64: 0, 9>, n = array<i64: 0, 8>, tile = array<i64: 16, 8, 32>} : (tensor<8x8xf16>, tensor<8x8xf16>, tensor<8x8xf16>) -> tensor<8x8xf16>
// CHECK: stc.tile: tile m=0:9 n=0:8 exceeds the accumulator 8x8

// -----

%a = "test.op"() : () -> tensor<8x8xf16>
%acc = stc.zeros : tensor<8x8xf16>
%r = stc.tile %a, %a, %acc {index = 0 : i64, m = array<i64: 4, 4>, n = array<i64: 0, 8>, tile = array<i64: 16, 8, 32>} : (tensor<8x8xf16>, tensor<8x8xf16>, tensor<8x8xf16>) -> tensor<8x8xf16>
// CHECK: stc.tile: m must be array<i64: lo, hi> with 0 <= lo < hi, got [4, 4]

// -----

%a = "test.op"() : () -> tensor<8x8xf16>
%acc = stc.zeros : tensor<8x8xf16>
%r = stc.tile %a, %a, %acc {index = 0 : i64, m = array<i64: 0, 8>, n = array<i64: 0, 8>, tile = array<i64: 16, 8>} : (tensor<8x8xf16>, tensor<8x8xf16>, tensor<8x8xf16>) -> tensor<8x8xf16>
// CHECK: stc.tile: tile must be array<i64: rows, cols, k> of positive sizes, got [16, 8]

// -----

%a = "test.op"() : () -> tensor<32x32xf16>
%acc = stc.zeros : tensor<32x32xf16>
%r = stc.tile %a, %a, %acc {index = 0 : i64, m = array<i64: 0, 32>, n = array<i64: 0, 8>, tile = array<i64: 16, 8, 32>} : (tensor<32x32xf16>, tensor<32x32xf16>, tensor<32x32xf16>) -> tensor<32x32xf16>
// CHECK: stc.tile: 32x8 outputs (hardware order) exceed the 16x8 thread-block tile

// -----

%a = "test.op"() : () -> tensor<8x8xf16>
%acc = stc.zeros : tensor<8x8xf16>
%r = stc.tile %a, %a, %acc {index = 0 : i64, m = array<i64: 0, 8>, n = array<i64: 0, 8>, tile = array<i64: 16, 8, 32>} : (tensor<8x8xf16>, tensor<8x8xf16>, tensor<8x8xf16>) -> tensor<8x4xf16>
// CHECK: stc.tile: result type must equal the accumulator's

// -----

%a = "test.op"() : () -> tensor<8x8xi16>
%acc = stc.zeros : tensor<8x8xi32>
%r = stc.tile %a, %a, %acc {index = 0 : i64, m = array<i64: 0, 8>, n = array<i64: 0, 8>, tile = array<i64: 16, 8, 32>} : (tensor<8x8xi16>, tensor<8x8xi16>, tensor<8x8xi32>) -> tensor<8x8xi32>
// CHECK: stc.tile: operands must be f16/bf16/i8/f32, got i16

// -----

%a = "test.op"() : () -> tensor<8x8xf32>
%w = "test.op"() : () -> tensor<8x8xf32, #sparse_tensor.encoding<{ map = (d0, d1) -> (d1 : dense, d0 floordiv 4 : dense, d0 mod 4 : structured[2, 4]) }>>
%acc = stc.zeros : tensor<8x8xf32>
%r = stc.tile %a, %w, %acc {index = 0 : i64, m = array<i64: 0, 8>, n = array<i64: 0, 8>, tile = array<i64: 16, 8, 16>, sparse = "rhs"} : (tensor<8x8xf32>, tensor<8x8xf32, #sparse_tensor.encoding<{ map = (d0, d1) -> (d1 : dense, d0 floordiv 4 : dense, d0 mod 4 : structured[2, 4]) }>>, tensor<8x8xf32>) -> tensor<8x8xf32>
// CHECK: stc.tile: 2:4 sparse mma takes f16/bf16/i8 operands, got f32

// -----

%a = "test.op"() : () -> tensor<8x8xf16>
%acc = stc.zeros : tensor<8x8xf16>
%r = stc.tile %a, %a, %acc {index = 0 : i64, m = array<i64: 0, 8>, n = array<i64: 0, 8>, tile = array<i64: 16, 8, 32>, sparse = "both"} : (tensor<8x8xf16>, tensor<8x8xf16>, tensor<8x8xf16>) -> tensor<8x8xf16>
// CHECK: stc.tile: sparse must be one of ('lhs', 'rhs'), got 'both'

// -----

%a = "test.op"() : () -> tensor<8x8xf16>
%w = "test.op"() : () -> tensor<8x8xf16, #sparse_tensor.encoding<{ map = (d0, d1) -> (d0 : dense, d1 floordiv 4 : dense, d1 mod 4 : structured[2, 4]) }>>
%acc = stc.zeros : tensor<8x8xf16>
%r = stc.tile %a, %w, %acc {index = 0 : i64, m = array<i64: 0, 8>, n = array<i64: 0, 8>, tile = array<i64: 16, 8, 32>, sparse = "rhs"} : (tensor<8x8xf16>, tensor<8x8xf16, #sparse_tensor.encoding<{ map = (d0, d1) -> (d0 : dense, d1 floordiv 4 : dense, d1 mod 4 : structured[2, 4]) }>>, tensor<8x8xf16>) -> tensor<8x8xf16>
// CHECK: stc.tile: sparse operand rhs must be 2:4 along its reduction dimension (dim 0), got tensor<8x8xf16, #sparse_tensor.encoding<{ map = (d0, d1) -> (d0 : dense, d1 floordiv 4 : dense, d1 mod 4 : structured[2, 4]) }>>

// -----

%a = "test.op"() : () -> tensor<8x8xf16>
%w = "test.op"() : () -> tensor<8x8xf16, #sparse_tensor.encoding<{ map = (d0, d1) -> (d1 : dense, d0 floordiv 4 : dense, d0 mod 4 : structured[2, 4]) }>>
%acc = stc.zeros : tensor<8x8xf16>
%r = stc.tile %a, %w, %acc {index = 0 : i64, m = array<i64: 0, 8>, n = array<i64: 0, 8>, tile = array<i64: 16, 8, 32>, sparse = "rhs"} : (tensor<8x8xf16>, tensor<8x8xf16, #sparse_tensor.encoding<{ map = (d0, d1) -> (d1 : dense, d0 floordiv 4 : dense, d0 mod 4 : structured[2, 4]) }>>, tensor<8x8xf16>) -> tensor<8x8xf16>
// CHECK: stc.tile: sparse operand rhs must be the result of stc.compress

// -----

%w = "test.op"() : () -> tensor<8x8xf16, #sparse_tensor.encoding<{ map = (d0, d1) -> (d0 : dense, d1 : compressed) }>>
%c = stc.compress %w : tensor<8x8xf16, #sparse_tensor.encoding<{ map = (d0, d1) -> (d0 : dense, d1 : compressed) }>>
// CHECK: stc.compress: operand must be a matrix with a 2:4 #sparse_tensor.encoding (levels dense, dense, structured[2, 4]), got tensor<8x8xf16, #sparse_tensor.encoding<{ map = (d0, d1) -> (d0 : dense, d1 : compressed) }>>

// -----

%acc = stc.zeros : tensor<8x8xf16>
%r = stc.store %acc : tensor<8x8xf16> -> tensor<8x4xf16>
// CHECK: stc.store: result type must equal the accumulator's

// -----

%acc = stc.zeros : tensor<8x4xf16>
%r = stc.store %acc {transpose} : tensor<8x4xf16> -> tensor<8x4xf16>
// CHECK: stc.store: result type must equal the accumulator's transpose type, tensor<4x8xf16>

// -----

stc.launch {kernel = "relu"}
// CHECK: stc.launch: kernel must be one of ('pad', 'gemm', 'sparse_gemm', 'copy_out'), got 'relu'

// -----

%x = "test.op"() : () -> tensor<1x64xf16>
%p = stc.pad %x {dim = 0 : i64, multiple = 32 : i64} : tensor<1x64xf16> -> tensor<16x64xf16>
// CHECK: stc.pad: padding dim 0 of 1x64 to a multiple of 32 gives 32x64, not 16x64

// -----

%x = "test.op"() : () -> tensor<1x64xf16>
%p = stc.pad %x {dim = 2 : i64, multiple = 32 : i64} : tensor<1x64xf16> -> tensor<32x64xf16>
// CHECK: stc.pad: dim must be 0 or 1 and multiple >= 1, got dim 2, multiple 32

// -----

%x = "test.op"() : () -> tensor<1x64xf16>
%p = stc.pad %x {dim = 0 : i64, multiple = 32 : i64} : tensor<1x64xf16> -> tensor<32x64xbf16>
// CHECK: stc.pad: result element type must equal the source's

// -----

%x = "test.op"() : () -> tensor<64xf16>
%p = stc.pad %x {dim = 0 : i64, multiple = 32 : i64} : tensor<64xf16> -> tensor<64xf16>
// CHECK: stc.pad: source must be a matrix, got tensor<64xf16>

// -----

%y = "test.op"() : () -> tensor<4096x32xf16>
%r = stc.copy_out %y {transpose} : tensor<4096x32xf16> -> tensor<1x8192xf16>
// CHECK: stc.copy_out: a 1x8192 result does not fit the 32x4096 source (transposed)

// -----

%y = "test.op"() : () -> tensor<32x64xf16>
%r = stc.copy_out %y {view} : tensor<32x64xf16> -> tensor<1x64xbf16>
// CHECK: stc.copy_out: result element type must equal the source's

// -----

// lower-stc (sparse=true by default) refuses a matmul without a 2:4 operand.
func.func @dense() -> tensor<8x16xf16> {
  %X = sparsec.input @X : tensor<8x32xf16>
  %W = sparsec.param @W : tensor<32x16xf16>
  %Y = sparsec.matmul %X, %W : (tensor<8x32xf16>, tensor<32x16xf16>) -> tensor<8x16xf16>
  func.return %Y : tensor<8x16xf16>
}
// CHECK: stc: operand W of sparsec.matmul is not 2:4 sparse; run prune-nm{n=2 m=4} first, or use stc{sparse=false} for dense mma

// -----

// 2:4 along N (dim 1 of W) is not 2:4 along the reduction dimension K.
func.func @wrong_axis() -> tensor<8x16xf16> {
  %X = sparsec.input @X : tensor<8x32xf16>
  %W = sparsec.param @W : tensor<32x16xf16, #sparse_tensor.encoding<{ map = (d0, d1) -> (d0 : dense, d1 floordiv 4 : dense, d1 mod 4 : structured[2, 4]) }>>
  %Y = sparsec.matmul %X, %W : (tensor<8x32xf16>, tensor<32x16xf16, #sparse_tensor.encoding<{ map = (d0, d1) -> (d0 : dense, d1 floordiv 4 : dense, d1 mod 4 : structured[2, 4]) }>>) -> tensor<8x16xf16>
  func.return %Y : tensor<8x16xf16>
}
// CHECK: stc: operand W of sparsec.matmul is 2:4 along dim 1, but sparse tensor cores need its 4-blocks along the reduction dimension K (dim 0); run prune-nm{n=2 m=4} first, or use stc{sparse=false} for dense mma

// -----

func.func @four_of_eight() -> tensor<8x16xf16> {
  %X = sparsec.input @X : tensor<8x32xf16>
  %W = sparsec.param @W : tensor<32x16xf16, #sparse_tensor.encoding<{ map = (d0, d1) -> (d1 : dense, d0 floordiv 8 : dense, d0 mod 8 : structured[4, 8]) }>>
  %Y = sparsec.matmul %X, %W : (tensor<8x32xf16>, tensor<32x16xf16, #sparse_tensor.encoding<{ map = (d0, d1) -> (d1 : dense, d0 floordiv 8 : dense, d0 mod 8 : structured[4, 8]) }>>) -> tensor<8x16xf16>
  func.return %Y : tensor<8x16xf16>
}
// CHECK: stc: operand W of sparsec.matmul is 4:8 structured; sparse tensor cores run 2:4; run prune-nm{n=2 m=4} first, or use stc{sparse=false} for dense mma

// -----

func.func @fp32() -> tensor<8x16xf32> {
  %X = sparsec.input @X : tensor<8x32xf32>
  %W = sparsec.param @W : tensor<32x16xf32, #sparse_tensor.encoding<{ map = (d0, d1) -> (d1 : dense, d0 floordiv 4 : dense, d0 mod 4 : structured[2, 4]) }>>
  %Y = sparsec.matmul %X, %W : (tensor<8x32xf32>, tensor<32x16xf32, #sparse_tensor.encoding<{ map = (d0, d1) -> (d1 : dense, d0 floordiv 4 : dense, d0 mod 4 : structured[2, 4]) }>>) -> tensor<8x16xf32>
  func.return %Y : tensor<8x16xf32>
}
// CHECK: stc: sparsec.matmul has f32 operands, which run on the CUDA cores (FP32 FMA) with no 2:4 path; declare f16, bf16 or i8 operands for sparse tensor cores, or use stc{sparse=false} for dense FP32

// -----

func.func @int16() -> tensor<8x16xi32> {
  %X = sparsec.input @X : tensor<8x32xi16>
  %W = sparsec.param @W : tensor<32x16xi16>
  %Y = sparsec.matmul %X, %W : (tensor<8x32xi16>, tensor<32x16xi16>) -> tensor<8x16xi32>
  func.return %Y : tensor<8x16xi32>
}
// CHECK: stc: sparsec.matmul has i16 operands; the tensor cores multiply f16, bf16 or i8 (and f32 runs dense on the CUDA cores)
