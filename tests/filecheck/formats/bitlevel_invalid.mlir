// RUN: xdsl-opt %s --split-input-file --verify-diagnostics | filecheck %s

%a = sparsec.param @A : tensor<8x8xi8, #sparsec.bitlevel<max_ones = 0, method = csd>>
// CHECK: sparsec.bitlevel: max_ones must lie in [1, 16], got 0

// -----

%a = sparsec.param @A : tensor<8x8xi8, #sparsec.bitlevel<max_ones = 3, method = booth>>
// CHECK: sparsec.bitlevel: method must be one of csd, sm, got 'booth'

// -----

%a = sparsec.param @A : tensor<8x8xf32, #sparsec.bitlevel<max_ones = 3, method = csd>>
// CHECK: sparsec.bitlevel without codes needs an i8 tensor (its values are the codes), got f32

// -----

%a = sparsec.param @A : tensor<8x8xf32, #sparsec.bitlevel<max_ones = 3, method = csd, codes = #sparsec.quantized<bits = 8, scale = 0.5, zero_point = 3>>>
// CHECK: sparsec.bitlevel: codes must be symmetric with at most 16 bits
