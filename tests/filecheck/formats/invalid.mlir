// RUN: xdsl-opt %s --split-input-file --verify-diagnostics | filecheck %s

// One case per verifier rule of sparsec's format attributes (dialects/formats.py):
// first the rules of each attribute alone, then those that need the tensor type.

%a = sparsec.param @A : tensor<8x8xf32, #sparsec.bitmap<order = diagonal>>
// CHECK: sparsec.bitmap: order must be row or col, got 'diagonal'

// -----

%a = sparsec.param @A : tensor<f32, #sparsec.bitmap<order = row>>
// CHECK: sparsec.bitmap: expected a tensor of rank >= 1 (one bit per element), got a scalar

// -----

%a = sparsec.param @A : tensor<8x8xf32, #sparsec.rcsc<pes = 0>>
// CHECK: sparsec.rcsc: pes must be >= 1, got 0

// -----

%a = sparsec.param @A : tensor<8x8xf32, #sparsec.rcsc<index_bits = 0>>
// CHECK: sparsec.rcsc: index_bits must lie in [1, 16], got 0

// -----

%a = sparsec.param @A : tensor<8x8xf32, #sparsec.rcsc<ptr_bits = 65>>
// CHECK: sparsec.rcsc: ptr_bits must lie in [1, 64], got 65

// -----

%a = sparsec.param @A : tensor<4x8x8xf32, #sparsec.rcsc<pes = 4>>
// CHECK: sparsec.rcsc: expected a rank-2 tensor (rows x cols, weights in (out, in) layout), got rank 3 (4x8x8)

// -----

%a = sparsec.param @A : tensor<8x8xf32, #sparsec.codebook<bits = 17>>
// CHECK: sparsec.codebook: bits must lie in [1, 16], got 17

// -----

%a = sparsec.param @A : tensor<8x8xf32, #sparsec.codebook<bits = 4, layout = #sparsec.codebook<bits = 2>>>
// CHECK: sparsec.codebook: layout must be a #sparse_tensor.encoding, #sparsec.bitmap or #sparsec.rcsc, got #sparsec.codebook<bits = 2>

// -----

%a = sparsec.param @A : tensor<2x8x8xf32, #sparsec.codebook<bits = 4, layout = #sparsec.rcsc<pes = 4>>>
// CHECK: sparsec.rcsc: expected a rank-2 tensor (rows x cols, weights in (out, in) layout), got rank 3 (2x8x8)

// -----

%a = sparsec.param @A : tensor<8x8x8xf32, #sparsec.codebook<bits = 4, layout = #sparse_tensor.encoding<{ map = (i, j) -> (i : dense, j : compressed) }>>>
// CHECK: dimension-rank mismatch between encoding and tensor shape: 2 != 3

// -----

%a = sparsec.param @A : tensor<8x8xf32, #sparsec.quantized<bits = 0, scale = 1.0>>
// CHECK: sparsec.quantized: bits must lie in [1, 32], got 0

// -----

%a = sparsec.param @A : tensor<8x8xf32, #sparsec.quantized<bits = 8, scale = 1.0, axis = 0>>
// CHECK: sparsec.quantized: scale (per-tensor) and axis (per-channel) exclude each other; give one

// -----

%a = sparsec.param @A : tensor<8x8xf32, #sparsec.quantized<bits = 8, scale = -0.5>>
// CHECK: sparsec.quantized: scale must be positive and finite, got -0.5

// -----

%a = sparsec.param @A : tensor<8x8xf32, #sparsec.quantized<bits = 8, axis = -1>>
// CHECK: sparsec.quantized: axis must be >= 0, got -1

// -----

%a = sparsec.param @A : tensor<8x8xf32, #sparsec.quantized<bits = 8, axis = 1, zero_point = 3>>
// CHECK: sparsec.quantized: a per-channel encoding takes no zero_point (per-channel zero points live in the DataStore under #zero_point)

// -----

%a = sparsec.param @A : tensor<8x8xf32, #sparsec.quantized<bits = 8, scale = 1.0, zero_point = 3, symmetric>>
// CHECK: sparsec.quantized: symmetric quantization has zero_point 0, got 3

// -----

%a = sparsec.param @A : tensor<8x8xf32, #sparsec.quantized<bits = 8, scale = 1.0, zero_point = 256>>
// CHECK: sparsec.quantized: zero_point of 8-bit codes must lie in [0, 255], got 256

// -----

%a = sparsec.param @A : tensor<8x8xf32, #sparsec.quantized<bits = 8, axis = 0, layout = #sparsec.quantized<bits = 4, axis = 0>>>
// CHECK: sparsec.quantized: layout must be a #sparse_tensor.encoding, #sparsec.bitmap or #sparsec.rcsc, got #sparsec.quantized<bits = 4, axis = 0>

// -----

%a = sparsec.param @A : tensor<8x8xi8, #sparsec.quantized<bits = 8, scale = 1.0>>
// CHECK: sparsec.quantized: the element type is that of the dequantized values and must be a float type, got i8

// -----

%a = sparsec.param @A : tensor<8x8xf32, #sparsec.quantized<bits = 8, axis = 2>>
// CHECK: sparsec.quantized: axis 2 is out of range for a rank-2 tensor

// -----

%a = sparsec.param @A : tensor<8x8x8xf32, #sparsec.quantized<bits = 8, axis = 0, layout = #sparsec.rcsc<pes = 2>>>
// CHECK: sparsec.rcsc: expected a rank-2 tensor (rows x cols, weights in (out, in) layout), got rank 3 (8x8x8)
