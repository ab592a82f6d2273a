// RUN: xdsl-opt %s --split-input-file --verify-diagnostics -p 'lower-eie{pes=4}' | filecheck %s

// One case per verifier rule of the eie ISA, then each refusal of `lower-eie`.

%w = "test.op"() : () -> tensor<8x8xf64, #sparsec.rcsc<pes = 4, index_bits = 4, ptr_bits = 16>>
%e = eie.encode %w : tensor<8x8xf64, #sparsec.rcsc<pes = 4, index_bits = 4, ptr_bits = 16>>
// CHECK: eie.encode: operand must be a matrix with a #sparsec.codebook<bits = b, layout = #sparsec.rcsc<...>> encoding, got tensor<8x8xf64, #sparsec.rcsc<pes = 4, index_bits = 4, ptr_bits = 16>>

// -----

%x = "test.op"() : () -> tensor<2x8xf64>
%w = "test.op"() : () -> tensor<8x6xf64, #sparsec.codebook<bits = 4, layout = #sparsec.rcsc<pes = 4, index_bits = 4, ptr_bits = 16>>>
%acc = eie.zeros : tensor<2x6xf64>
%r = eie.column %x, %w, %acc {column = 0 : i64} : (tensor<2x8xf64>, tensor<8x6xf64, #sparsec.codebook<bits = 4, layout = #sparsec.rcsc<pes = 4, index_bits = 4, ptr_bits = 16>>>, tensor<2x6xf64>) -> tensor<2x6xf64>
// CHECK: eie.column: weights must be the result of eie.encode

// -----

%x = "test.op"() : () -> tensor<2x5xf64>
%w = "test.op"() : () -> tensor<8x6xf64, #sparsec.codebook<bits = 4, layout = #sparsec.rcsc<pes = 4, index_bits = 4, ptr_bits = 16>>>
%e = eie.encode %w {in_out} : tensor<8x6xf64, #sparsec.codebook<bits = 4, layout = #sparsec.rcsc<pes = 4, index_bits = 4, ptr_bits = 16>>>
%acc = eie.zeros : tensor<2x6xf64>
%r = eie.column %x, %e, %acc {column = 0 : i64} : (tensor<2x5xf64>, tensor<8x6xf64, #sparsec.codebook<bits = 4, layout = #sparsec.rcsc<pes = 4, index_bits = 4, ptr_bits = 16>>>, tensor<2x6xf64>) -> tensor<2x6xf64>
// CHECK: eie.column: input vectors have 5 activations but the weight matrix has 8 columns

// -----

%x = "test.op"() : () -> tensor<2x8xf64>
%w = "test.op"() : () -> tensor<8x6xf64, #sparsec.codebook<bits = 4, layout = #sparsec.rcsc<pes = 4, index_bits = 4, ptr_bits = 16>>>
%e = eie.encode %w {in_out} : tensor<8x6xf64, #sparsec.codebook<bits = 4, layout = #sparsec.rcsc<pes = 4, index_bits = 4, ptr_bits = 16>>>
%acc = eie.zeros : tensor<2x8xf64>
%r = eie.column %x, %e, %acc {column = 0 : i64} : (tensor<2x8xf64>, tensor<8x6xf64, #sparsec.codebook<bits = 4, layout = #sparsec.rcsc<pes = 4, index_bits = 4, ptr_bits = 16>>>, tensor<2x8xf64>) -> tensor<2x8xf64>
// CHECK: eie.column: accumulator must be 2x6 (vectors x output neurons), got tensor<2x8xf64>

// -----

%x = "test.op"() : () -> tensor<2x8xf64>
%w = "test.op"() : () -> tensor<8x6xf64, #sparsec.codebook<bits = 4, layout = #sparsec.rcsc<pes = 4, index_bits = 4, ptr_bits = 16>>>
%e = eie.encode %w {in_out} : tensor<8x6xf64, #sparsec.codebook<bits = 4, layout = #sparsec.rcsc<pes = 4, index_bits = 4, ptr_bits = 16>>>
%acc = eie.zeros : tensor<2x6xf64>
%r = eie.column %x, %e, %acc {column = 8 : i64} : (tensor<2x8xf64>, tensor<8x6xf64, #sparsec.codebook<bits = 4, layout = #sparsec.rcsc<pes = 4, index_bits = 4, ptr_bits = 16>>>, tensor<2x6xf64>) -> tensor<2x6xf64>
// CHECK: eie.column: column 8 is out of range for 8 columns

// -----

%acc = eie.zeros : tensor<2x6xf64>
%r = eie.store %acc : tensor<2x6xf64> -> tensor<2x5xf64>
// CHECK: eie.store: result type must equal the accumulator's

// -----

// lower-eie refuses a weight that is not in EIE's format, naming the passes to run.
func.func @dense() -> tensor<2x6xf64> {
  %X = sparsec.input @X : tensor<2x8xf64, #sparsec.quantized<bits = 16, scale = 3.906250e-03, symmetric>>
  %W = sparsec.param @W : tensor<8x6xf64>
  %Y = sparsec.matmul %X, %W : (tensor<2x8xf64, #sparsec.quantized<bits = 16, scale = 3.906250e-03, symmetric>>, tensor<8x6xf64>) -> tensor<2x6xf64>
  func.return %Y : tensor<2x6xf64>
}
// CHECK: eie: operand W of sparsec.matmul is not in EIE's format (a 4-bit codebook over #sparsec.rcsc); run prune-magnitude{sparsity=0.9},share-weights{bits=4 frac_bits=12},sparsify{format=rcsc pes=4 index_bits=4} first

// -----

func.func @no_codebook() -> tensor<2x6xf64> {
  %X = sparsec.input @X : tensor<2x8xf64, #sparsec.quantized<bits = 16, scale = 3.906250e-03, symmetric>>
  %W = sparsec.param @W : tensor<8x6xf64, #sparsec.rcsc<pes = 4, index_bits = 4, ptr_bits = 16>>
  %Y = sparsec.matmul %X, %W : (tensor<2x8xf64, #sparsec.quantized<bits = 16, scale = 3.906250e-03, symmetric>>, tensor<8x6xf64, #sparsec.rcsc<pes = 4, index_bits = 4, ptr_bits = 16>>) -> tensor<2x6xf64>
  func.return %Y : tensor<2x6xf64>
}
// CHECK: eie: operand W of sparsec.matmul is rcsc but not weight-shared (EIE decodes 4-bit codebook indices); run share-weights{bits=4 frac_bits=12} first

// -----

func.func @no_rcsc() -> tensor<2x6xf64> {
  %X = sparsec.input @X : tensor<2x8xf64, #sparsec.quantized<bits = 16, scale = 3.906250e-03, symmetric>>
  %W = sparsec.param @W : tensor<8x6xf64, #sparsec.codebook<bits = 4>>
  %Y = sparsec.matmul %X, %W : (tensor<2x8xf64, #sparsec.quantized<bits = 16, scale = 3.906250e-03, symmetric>>, tensor<8x6xf64, #sparsec.codebook<bits = 4>>) -> tensor<2x6xf64>
  func.return %Y : tensor<2x6xf64>
}
// CHECK: eie: operand W of sparsec.matmul is weight-shared but not in relative-indexed CSC; run sparsify{format=rcsc pes=4 index_bits=4} first

// -----

func.func @pes() -> tensor<2x6xf64> {
  %X = sparsec.input @X : tensor<2x8xf64, #sparsec.quantized<bits = 16, scale = 3.906250e-03, symmetric>>
  %W = sparsec.param @W : tensor<8x6xf64, #sparsec.codebook<bits = 4, layout = #sparsec.rcsc<pes = 2, index_bits = 4, ptr_bits = 16>>>
  %Y = sparsec.matmul %X, %W : (tensor<2x8xf64, #sparsec.quantized<bits = 16, scale = 3.906250e-03, symmetric>>, tensor<8x6xf64, #sparsec.codebook<bits = 4, layout = #sparsec.rcsc<pes = 2, index_bits = 4, ptr_bits = 16>>>) -> tensor<2x6xf64>
  func.return %Y : tensor<2x6xf64>
}
// CHECK: eie: operand W of sparsec.matmul is interleaved over 2 PEs but the target has 4; run sparsify{format=rcsc pes=4} (or use eie{pes=2})

// -----

func.func @index_bits() -> tensor<2x6xf64> {
  %X = sparsec.input @X : tensor<2x8xf64, #sparsec.quantized<bits = 16, scale = 3.906250e-03, symmetric>>
  %W = sparsec.param @W : tensor<8x6xf64, #sparsec.codebook<bits = 4, layout = #sparsec.rcsc<pes = 4, index_bits = 3, ptr_bits = 16>>>
  %Y = sparsec.matmul %X, %W : (tensor<2x8xf64, #sparsec.quantized<bits = 16, scale = 3.906250e-03, symmetric>>, tensor<8x6xf64, #sparsec.codebook<bits = 4, layout = #sparsec.rcsc<pes = 4, index_bits = 3, ptr_bits = 16>>>) -> tensor<2x6xf64>
  func.return %Y : tensor<2x6xf64>
}
// CHECK: eie: operand W of sparsec.matmul has 3-bit relative indices but the PEs decode 4-bit ones; run sparsify{format=rcsc pes=4 index_bits=4}

// -----

func.func @wide_codebook() -> tensor<2x6xf64> {
  %X = sparsec.input @X : tensor<2x8xf64, #sparsec.quantized<bits = 16, scale = 3.906250e-03, symmetric>>
  %W = sparsec.param @W : tensor<8x6xf64, #sparsec.codebook<bits = 5, layout = #sparsec.rcsc<pes = 4, index_bits = 4, ptr_bits = 16>>>
  %Y = sparsec.matmul %X, %W : (tensor<2x8xf64, #sparsec.quantized<bits = 16, scale = 3.906250e-03, symmetric>>, tensor<8x6xf64, #sparsec.codebook<bits = 5, layout = #sparsec.rcsc<pes = 4, index_bits = 4, ptr_bits = 16>>>) -> tensor<2x6xf64>
  func.return %Y : tensor<2x6xf64>
}
// CHECK: eie: operand W of sparsec.matmul has a 5-bit codebook but the Spmat entries hold 4-bit indices; run share-weights{bits=4} instead

// -----

func.func @float_activations() -> tensor<2x6xf64> {
  %X = sparsec.input @X : tensor<2x8xf64>
  %W = sparsec.param @W : tensor<8x6xf64, #sparsec.codebook<bits = 4, layout = #sparsec.rcsc<pes = 4, index_bits = 4, ptr_bits = 16>>>
  %Y = sparsec.matmul %X, %W : (tensor<2x8xf64>, tensor<8x6xf64, #sparsec.codebook<bits = 4, layout = #sparsec.rcsc<pes = 4, index_bits = 4, ptr_bits = 16>>>) -> tensor<2x6xf64>
  func.return %Y : tensor<2x6xf64>
}
// CHECK: eie: operand X of sparsec.matmul is not 16-bit fixed point (EIE's activations are); run quantize{bits=16 frac_bits=8 operand=a} first

// -----

func.func @per_channel() -> tensor<2x6xf64> {
  %X = sparsec.input @X : tensor<2x8xf64, #sparsec.quantized<bits = 16, axis = 0, symmetric>>
  %W = sparsec.param @W : tensor<8x6xf64, #sparsec.codebook<bits = 4, layout = #sparsec.rcsc<pes = 4, index_bits = 4, ptr_bits = 16>>>
  %Y = sparsec.matmul %X, %W : (tensor<2x8xf64, #sparsec.quantized<bits = 16, axis = 0, symmetric>>, tensor<8x6xf64, #sparsec.codebook<bits = 4, layout = #sparsec.rcsc<pes = 4, index_bits = 4, ptr_bits = 16>>>) -> tensor<2x6xf64>
  func.return %Y : tensor<2x6xf64>
}
// CHECK: eie: operand X of sparsec.matmul must be quantized per tensor and symmetric (zero must stay zero for the nonzero detector); run quantize{bits=16 frac_bits=8 operand=a} instead

// -----

func.func @half() -> tensor<2x6xf16> {
  %X = sparsec.input @X : tensor<2x8xf16, #sparsec.quantized<bits = 8, scale = 3.906250e-03, symmetric>>
  %W = sparsec.param @W : tensor<8x6xf16, #sparsec.codebook<bits = 4, layout = #sparsec.rcsc<pes = 4, index_bits = 4, ptr_bits = 16>>>
  %Y = sparsec.matmul %X, %W : (tensor<2x8xf16, #sparsec.quantized<bits = 8, scale = 3.906250e-03, symmetric>>, tensor<8x6xf16, #sparsec.codebook<bits = 4, layout = #sparsec.rcsc<pes = 4, index_bits = 4, ptr_bits = 16>>>) -> tensor<2x6xf16>
  func.return %Y : tensor<2x6xf16>
}
// CHECK: eie: sparsec.matmul has f16 operands; 16-bit fixed-point values and their products need f64 (bit-exact) or f32 elements

// -----

// 300 output neurons on 4 PEs are 75 per PE, more than the 64 destination registers.
func.func @too_many_outputs() -> tensor<2x300xf64> {
  %X = sparsec.input @X : tensor<2x8xf64, #sparsec.quantized<bits = 16, scale = 3.906250e-03, symmetric>>
  %W = sparsec.param @W : tensor<8x300xf64, #sparsec.codebook<bits = 4, layout = #sparsec.rcsc<pes = 4, index_bits = 4, ptr_bits = 16>>>
  %Y = sparsec.matmul %X, %W : (tensor<2x8xf64, #sparsec.quantized<bits = 16, scale = 3.906250e-03, symmetric>>, tensor<8x300xf64, #sparsec.codebook<bits = 4, layout = #sparsec.rcsc<pes = 4, index_bits = 4, ptr_bits = 16>>>) -> tensor<2x300xf64>
  func.return %Y : tensor<2x300xf64>
}
// CHECK: eie: sparsec.matmul has 300 output neurons, 75 per PE, but the destination register file holds 64; EIE would run it in batches of 256 outputs, which this model does not: split the matmul along N

// -----

// The weight is the lhs: EIE multiplies a sparse weight by activation vectors Y = X . W.
func.func @weight_lhs() -> tensor<6x2xf64> {
  %W = sparsec.param @W : tensor<6x8xf64, #sparsec.codebook<bits = 4, layout = #sparsec.rcsc<pes = 4, index_bits = 4, ptr_bits = 16>>>
  %X = sparsec.input @X : tensor<8x2xf64>
  %Y = sparsec.matmul %W, %X : (tensor<6x8xf64, #sparsec.codebook<bits = 4, layout = #sparsec.rcsc<pes = 4, index_bits = 4, ptr_bits = 16>>>, tensor<8x2xf64>) -> tensor<6x2xf64>
  func.return %Y : tensor<6x2xf64>
}
// CHECK: eie: the weight of sparsec.matmul must be its rhs W (Y = X . W, or X . W^T with transpose_b); the lhs is the activations
