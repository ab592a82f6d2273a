// RUN: xdsl-opt %s --split-input-file --verify-diagnostics | filecheck %s

// One case per verifier rule of the bitwave ISA.

%w = "test.op"() : () -> tensor<40x36xf32, #sparsec.quantized<bits = 8, axis = 1, symmetric>>
%e = bitwave.encode %w : tensor<40x36xf32, #sparsec.quantized<bits = 8, axis = 1, symmetric>>
// CHECK: bitwave.encode: operand must be a K x N matrix of type #sparsec.quantized<bits = 8, ..., symmetric, layout = #sparsec.bitcolumn<..., axis = 0, ...>>, got tensor<40x36xf32, #sparsec.quantized<bits = 8, axis = 1, symmetric>>

// -----

%x = "test.op"() : () -> tensor<4x40xf32>
%w = "test.op"() : () -> tensor<40x36xf32, #sparsec.quantized<bits = 8, axis = 1, symmetric, layout = #sparsec.bitcolumn<group = 16, axis = 0, sign_magnitude>>>
%e = bitwave.encode %w : tensor<40x36xf32, #sparsec.quantized<bits = 8, axis = 1, symmetric, layout = #sparsec.bitcolumn<group = 16, axis = 0, sign_magnitude>>>
%a = bitwave.zeros : tensor<4x36xf32>
%t = bitwave.tile %x, %e, %a {index = 0 : i64, n = array<i64: 0, 36>, shape = array<i64: 8, 32, 16>} : (tensor<4x40xf32>, tensor<40x36xf32, #sparsec.quantized<bits = 8, axis = 1, symmetric, layout = #sparsec.bitcolumn<group = 16, axis = 0, sign_magnitude>>>, tensor<4x36xf32>) -> tensor<4x36xf32>
// CHECK: bitwave.tile: 36 output channels exceed the 32 PE rows

// -----

%x = "test.op"() : () -> tensor<4x40xf32>
%w = "test.op"() : () -> tensor<40x36xf32, #sparsec.quantized<bits = 8, axis = 1, symmetric, layout = #sparsec.bitcolumn<group = 16, axis = 0, sign_magnitude>>>
%a = bitwave.zeros : tensor<4x36xf32>
%t = bitwave.tile %x, %w, %a {index = 0 : i64, n = array<i64: 0, 32>, shape = array<i64: 8, 32, 16>} : (tensor<4x40xf32>, tensor<40x36xf32, #sparsec.quantized<bits = 8, axis = 1, symmetric, layout = #sparsec.bitcolumn<group = 16, axis = 0, sign_magnitude>>>, tensor<4x36xf32>) -> tensor<4x36xf32>
// CHECK: bitwave.tile: weights must be the result of bitwave.encode

// -----

%x = "test.op"() : () -> tensor<4x40xf32>
%w = "test.op"() : () -> tensor<40x36xf32, #sparsec.quantized<bits = 8, axis = 1, symmetric, layout = #sparsec.bitcolumn<group = 16, axis = 0, sign_magnitude>>>
%e = bitwave.encode %w : tensor<40x36xf32, #sparsec.quantized<bits = 8, axis = 1, symmetric, layout = #sparsec.bitcolumn<group = 16, axis = 0, sign_magnitude>>>
%a = bitwave.zeros : tensor<4x36xf32>
%t = bitwave.tile %x, %e, %a {index = 0 : i64, n = array<i64: 4, 2>, shape = array<i64: 8, 32, 16>} : (tensor<4x40xf32>, tensor<40x36xf32, #sparsec.quantized<bits = 8, axis = 1, symmetric, layout = #sparsec.bitcolumn<group = 16, axis = 0, sign_magnitude>>>, tensor<4x36xf32>) -> tensor<4x36xf32>
// CHECK: bitwave.tile: n must be array<i64: lo, hi> with 0 <= lo < hi, got [4, 2]

// -----

%x = "test.op"() : () -> tensor<4x40xf32>
%w = "test.op"() : () -> tensor<40x36xf32, #sparsec.quantized<bits = 8, axis = 1, symmetric, layout = #sparsec.bitcolumn<group = 16, axis = 0, sign_magnitude>>>
%e = bitwave.encode %w : tensor<40x36xf32, #sparsec.quantized<bits = 8, axis = 1, symmetric, layout = #sparsec.bitcolumn<group = 16, axis = 0, sign_magnitude>>>
%a = bitwave.zeros : tensor<4x36xf32>
%t = bitwave.tile %x, %e, %a {index = 0 : i64, n = array<i64: 0, 32>, shape = array<i64: 8, 0, 16>} : (tensor<4x40xf32>, tensor<40x36xf32, #sparsec.quantized<bits = 8, axis = 1, symmetric, layout = #sparsec.bitcolumn<group = 16, axis = 0, sign_magnitude>>>, tensor<4x36xf32>) -> tensor<4x36xf32>
// CHECK: bitwave.tile: shape must be array<i64: lanes, rows, cols> of positive sizes, got [8, 0, 16]

// -----

%a = bitwave.zeros : tensor<4x36xf32>
%x = "test.op"() : () -> tensor<4x40xf32>
%w = "test.op"() : () -> tensor<40x36xf32>
%s = bitwave.store %a, %w, %x : (tensor<4x36xf32>, tensor<40x36xf32>, tensor<4x40xf32>) -> tensor<4x30xf32>
// CHECK: bitwave.store: result shape must equal the accumulator's
