// RUN: xdsl-opt %s --split-input-file --parsing-diagnostics | filecheck %s

// Syntax errors in sparsec's format attributes: unknown, repeated and missing keys.

%a = sparsec.param @A : tensor<8x8xf32, #sparsec.rcsc<pes = 4, lanes = 2>>
// CHECK: sparsec.rcsc: unknown key 'lanes' (accepted: pes, index_bits, ptr_bits)

// -----

%a = sparsec.param @A : tensor<8x8xf32, #sparsec.bitmap<order = row, order = col>>
// CHECK: sparsec.bitmap: 'order' is given twice

// -----

%a = sparsec.param @A : tensor<8x8xf32, #sparsec.codebook<layout = #sparsec.bitmap<order = row>>>
// CHECK: #sparsec.codebook: 'bits' is required, e.g. #sparsec.codebook<bits = 4>

// -----

%a = sparsec.param @A : tensor<8x8xf32, #sparsec.quantized<scale = 1.0>>
// CHECK: #sparsec.quantized: 'bits' is required, e.g. #sparsec.quantized<bits = 8, scale = 0.1>

// -----

%a = sparsec.param @A : tensor<8x8xf32, #sparsec.quantized<bits = 8, symmetric = 1, axis = 0>>
// CHECK: Expected '>' to close sparsec.quantized
