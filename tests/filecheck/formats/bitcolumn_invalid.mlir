// RUN: xdsl-opt %s --split-input-file --verify-diagnostics | filecheck %s

// The verifier rules of #sparsec.bitcolumn.

%a = sparsec.param @A : tensor<64x32xi8, #sparsec.bitcolumn<group = 0>>
// CHECK: sparsec.bitcolumn: group must lie in [1, 1024], got 0

// -----

%a = sparsec.param @A : tensor<64x32xi8, #sparsec.bitcolumn<group = 16, axis = 2>>
// CHECK: sparsec.bitcolumn: axis must lie in [0, 1], got 2

// -----

%a = sparsec.param @A : tensor<4x64x32xi8, #sparsec.bitcolumn<group = 16>>
// CHECK: sparsec.bitcolumn: expected a rank-2 tensor (groups along dimension 0), got rank 3 (4x64x32)

// -----

%a = sparsec.param @A : tensor<64x32xi16, #sparsec.bitcolumn<group = 16>>
// CHECK: sparsec.bitcolumn: stores 8-bit codes, got element type i16; quantize{bits=8} a float tensor or declare i8

// -----

%a = sparsec.param @A : tensor<64x32xf32, #sparsec.quantized<bits = 8, axis = 1, layout = #sparsec.bitcolumn<group = 16>>>
// CHECK: sparsec.quantized: a #sparsec.bitcolumn layout stores 8-bit signed codes; give bits <= 8 and symmetric, got bits = 8 (asymmetric)
