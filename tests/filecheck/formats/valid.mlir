// RUN: xdsl-opt %s | xdsl-opt | filecheck %s

// sparsec's own formats round-trip through xdsl-opt (with sparsec's Universe) in their
// canonical spelling: keys in a fixed order, defaults filled in, floats as MLIR prints them.

func.func @formats() {
  %bm = sparsec.param @BM : tensor<8x16xf32, #sparsec.bitmap<order = row>>
  %bc = sparsec.param @BC : tensor<8x16xf32, #sparsec.bitmap<order = col>>
  %b3 = sparsec.param @B3 : tensor<2x8x16xbf16, #sparsec.bitmap<>>
  %r0 = sparsec.param @R0 : tensor<64x32xf32, #sparsec.rcsc<pes = 64, index_bits = 4, ptr_bits = 16>>
  %r1 = sparsec.param @R1 : tensor<64x32xf32, #sparsec.rcsc<ptr_bits = 8, pes = 4>>
  %r2 = sparsec.param @R2 : tensor<64x32xf32, #sparsec.rcsc<>>
  %c0 = sparsec.param @C0 : tensor<64x32xf32, #sparsec.codebook<bits = 4>>
  %c1 = sparsec.param @C1 : tensor<64x32xf32, #sparsec.codebook<layout = #sparsec.rcsc<pes = 8>, bits = 4>>
  %c2 = sparsec.param @C2 : tensor<64x32xf16, #sparsec.codebook<bits = 2, layout = #sparse_tensor.encoding<{ map = (i, j) -> (j : dense, i : compressed), crdWidth = 8 }>>>
  %q0 = sparsec.param @Q0 : tensor<64x32xf32, #sparsec.quantized<bits = 8, scale = 1.0e-02, zero_point = 0>>
  %q1 = sparsec.param @Q1 : tensor<64x32xf32, #sparsec.quantized<bits = 8, scale = 0.5>>
  %q2 = sparsec.param @Q2 : tensor<64x32xf32, #sparsec.quantized<symmetric, bits = 4, scale = 0.0123456789>>
  %q3 = sparsec.param @Q3 : tensor<64x32xf32, #sparsec.quantized<bits = 8, axis = 1>>
  %q4 = sparsec.param @Q4 : tensor<64x32xf32, #sparsec.quantized<bits = 8, axis = 0, symmetric, layout = #sparse_tensor.encoding<{ map = (i, j) -> (i : dense, j floordiv 4 : dense, j mod 4 : structured[2, 4]) }>>>
  %q5 = sparsec.param @Q5 : tensor<64x32xf32, #sparsec.quantized<bits = 8, scale = 2.5e-01, zero_point = 128, layout = #sparsec.bitmap<order = col>>>
  %q6 = sparsec.param @Q6 : tensor<64x32xf32, #sparsec.quantized<bits = 4, axis = 1, layout = #sparsec.rcsc<pes = 2, index_bits = 2, ptr_bits = 8>>>
  func.return
}

// CHECK:      %bm = sparsec.param @BM : tensor<8x16xf32, #sparsec.bitmap<order = row>>
// CHECK-NEXT: %bc = sparsec.param @BC : tensor<8x16xf32, #sparsec.bitmap<order = col>>
// CHECK-NEXT: %b3 = sparsec.param @B3 : tensor<2x8x16xbf16, #sparsec.bitmap<order = row>>
// CHECK-NEXT: %r0 = sparsec.param @R0 : tensor<64x32xf32, #sparsec.rcsc<pes = 64, index_bits = 4, ptr_bits = 16>>
// CHECK-NEXT: %r1 = sparsec.param @R1 : tensor<64x32xf32, #sparsec.rcsc<pes = 4, index_bits = 4, ptr_bits = 8>>
// CHECK-NEXT: %r2 = sparsec.param @R2 : tensor<64x32xf32, #sparsec.rcsc<pes = 64, index_bits = 4, ptr_bits = 16>>
// CHECK-NEXT: %c0 = sparsec.param @C0 : tensor<64x32xf32, #sparsec.codebook<bits = 4>>
// CHECK-NEXT: %c1 = sparsec.param @C1 : tensor<64x32xf32, #sparsec.codebook<bits = 4, layout = #sparsec.rcsc<pes = 8, index_bits = 4, ptr_bits = 16>>>
// CHECK-NEXT: %c2 = sparsec.param @C2 : tensor<64x32xf16, #sparsec.codebook<bits = 2, layout = #sparse_tensor.encoding<{ map = (d0, d1) -> (d1 : dense, d0 : compressed), crdWidth = 8 }>>>
// CHECK-NEXT: %q0 = sparsec.param @Q0 : tensor<64x32xf32, #sparsec.quantized<bits = 8, scale = 1.000000e-02, zero_point = 0>>
// CHECK-NEXT: %q1 = sparsec.param @Q1 : tensor<64x32xf32, #sparsec.quantized<bits = 8, scale = 5.000000e-01, zero_point = 0>>
// CHECK-NEXT: %q2 = sparsec.param @Q2 : tensor<64x32xf32, #sparsec.quantized<bits = 4, scale = 0.0123456789, symmetric>>
// CHECK-NEXT: %q3 = sparsec.param @Q3 : tensor<64x32xf32, #sparsec.quantized<bits = 8, axis = 1>>
// CHECK-NEXT: %q4 = sparsec.param @Q4 : tensor<64x32xf32, #sparsec.quantized<bits = 8, axis = 0, symmetric, layout = #sparse_tensor.encoding<{ map = (d0, d1) -> (d0 : dense, d1 floordiv 4 : dense, d1 mod 4 : structured[2, 4]) }>>>
// CHECK-NEXT: %q5 = sparsec.param @Q5 : tensor<64x32xf32, #sparsec.quantized<bits = 8, scale = 2.500000e-01, zero_point = 128, layout = #sparsec.bitmap<order = col>>>
// CHECK-NEXT: %q6 = sparsec.param @Q6 : tensor<64x32xf32, #sparsec.quantized<bits = 4, axis = 1, layout = #sparsec.rcsc<pes = 2, index_bits = 2, ptr_bits = 8>>>

// Formats also appear in function signatures and as operands of kernel ops.
func.func @matmul() -> tensor<4x6xf32> {
  %X = sparsec.input @X : tensor<4x8xf32, #sparsec.bitmap<order = row>>
  %W = sparsec.param @W : tensor<8x6xf32, #sparsec.codebook<bits = 4, layout = #sparsec.rcsc<pes = 4, index_bits = 4, ptr_bits = 16>>>
  %Y = sparsec.matmul %X, %W : (tensor<4x8xf32, #sparsec.bitmap<order = row>>, tensor<8x6xf32, #sparsec.codebook<bits = 4, layout = #sparsec.rcsc<pes = 4, index_bits = 4, ptr_bits = 16>>>) -> tensor<4x6xf32>
  func.return %Y : tensor<4x6xf32>
}
func.func private @sig(tensor<16x16xf32, #sparsec.quantized<bits = 8, axis = 0>>) -> tensor<16xf32, #sparsec.bitmap<order = row>>

// CHECK:      %Y = sparsec.matmul %X, %W : (tensor<4x8xf32, #sparsec.bitmap<order = row>>, tensor<8x6xf32, #sparsec.codebook<bits = 4, layout = #sparsec.rcsc<pes = 4, index_bits = 4, ptr_bits = 16>>>) -> tensor<4x6xf32>
// CHECK:      func.func private @sig(tensor<16x16xf32, #sparsec.quantized<bits = 8, axis = 0>>) -> tensor<16xf32, #sparsec.bitmap<order = row>>
