// RUN: xdsl-opt %s --split-input-file --verify-diagnostics | filecheck %s --check-prefix=BAD

// One case per verifier rule of the transformer-block ops.

%x = sparsec.input @X : tensor<4x16xf32>
%g = sparsec.param @G : tensor<8xf32>
%n = sparsec.rmsnorm %x, %g {eps = 1.0e-05 : f64} : (tensor<4x16xf32>, tensor<8xf32>) -> tensor<4x16xf32>
// BAD: sparsec.rmsnorm: weight must be a vector of the input's last dimension (16), got tensor<8xf32>

// -----

%x = sparsec.input @X : tensor<4x16xf32>
%g = sparsec.param @G : tensor<16xf32>
%n = sparsec.rmsnorm %x, %g {eps = 0.0 : f64} : (tensor<4x16xf32>, tensor<16xf32>) -> tensor<4x16xf32>
// BAD: sparsec.rmsnorm: eps must be > 0, got 0.0

// -----

%x = sparsec.input @X : tensor<4x16xf32>
%g = sparsec.param @G : tensor<16xf16>
%n = sparsec.rmsnorm %x, %g {eps = 1.0e-05 : f64} : (tensor<4x16xf32>, tensor<16xf16>) -> tensor<4x16xf32>
// BAD: sparsec.rmsnorm: operands and result must have one element type, got f16, f32

// -----

%x = sparsec.input @X : tensor<4x16xf32>
%g = sparsec.param @G : tensor<16xf32>
%b = sparsec.param @B : tensor<4xf32>
%n = sparsec.layernorm %x, %g, %b {eps = 1.0e-05 : f64} : (tensor<4x16xf32>, tensor<16xf32>, tensor<4xf32>) -> tensor<4x16xf32>
// BAD: sparsec.layernorm: bias must be a vector of the input's last dimension (16), got tensor<4xf32>

// -----

%x = sparsec.input @X : tensor<4x16xi8>
%y = sparsec.silu %x : tensor<4x16xi8> -> tensor<4x16xi8>
// BAD: sparsec.silu: input must be floating point, got tensor<4x16xi8>

// -----

%x = sparsec.input @X : tensor<4x16xf32>
%y = sparsec.exp %x : tensor<4x16xf32> -> tensor<4x8xf32>
// BAD: sparsec.exp: result must be tensor<4x16xf32>, got tensor<4x8xf32>

// -----

%x = sparsec.input @X : tensor<4x16xf32>
%y = sparsec.gelu %x {approximate = "sigmoid"} : tensor<4x16xf32> -> tensor<4x16xf32>
// BAD: sparsec.gelu: approximate must be one of none, tanh, got 'sigmoid'

// -----

%x = sparsec.input @X : tensor<4x16xf32>
%y = sparsec.input @Y : tensor<4x8xf32>
%z = sparsec.add %x, %y : (tensor<4x16xf32>, tensor<4x8xf32>) -> tensor<4x16xf32>
// BAD: sparsec.add: shapes 4x16 and 4x8 do not broadcast (aligned at the last dimension, each pair must be equal or 1)

// -----

%x = sparsec.input @X : tensor<4x16xf32>
%y = sparsec.input @Y : tensor<16xf32>
%z = sparsec.mul %x, %y : (tensor<4x16xf32>, tensor<16xf32>) -> tensor<16xf32>
// BAD: sparsec.mul: result must be tensor<4x16xf32>, got tensor<16xf32>

// -----

%x = sparsec.input @X : tensor<2x4x7xf32>
%y = sparsec.rope %x {base = 1.0e+04 : f64} : tensor<2x4x7xf32> -> tensor<2x4x7xf32>
// BAD: sparsec.rope: the rotated (last) dimension must be even, got 7

// -----

%x = sparsec.input @X : tensor<2x4x8xf32>
%y = sparsec.rope %x {base = 1.0e+04 : f64, start = -1 : i64} : tensor<2x4x8xf32> -> tensor<2x4x8xf32>
// BAD: sparsec.rope: start must be >= 0, got -1

// -----

%x = sparsec.input @X : tensor<8xf32>
%y = sparsec.rope %x {base = 1.0e+04 : f64} : tensor<8xf32> -> tensor<8xf32>
// BAD: sparsec.rope: input must be [T, d] or [heads, T, d], got tensor<8xf32>

// -----

%x = sparsec.input @X : tensor<4x16xf32>
%y = sparsec.heads %x {heads = 3 : i64} : tensor<4x16xf32> -> tensor<3x4x5xf32>
// BAD: sparsec.heads: heads = 3 must divide the input's 16 columns

// -----

%x = sparsec.input @X : tensor<4x16xf32>
%y = sparsec.heads %x {heads = 2 : i64} : tensor<4x16xf32> -> tensor<4x2x8xf32>
// BAD: sparsec.heads: result must be tensor<2x4x8xf32>, got tensor<4x2x8xf32>

// -----

%x = sparsec.input @X : tensor<4x16xf32>
%y = sparsec.merge_heads %x : tensor<4x16xf32> -> tensor<4x16xf32>
// BAD: sparsec.merge_heads: input must be rank 3 [H, T, d], got tensor<4x16xf32>

// -----

%a = sparsec.input @A : tensor<2x5x8xf32>
%b = sparsec.input @B : tensor<2x1x4xf32>
%c = sparsec.concat %a, %b {axis = 1 : i64} : (tensor<2x5x8xf32>, tensor<2x1x4xf32>) -> tensor<2x6x8xf32>
// BAD: sparsec.concat: tensor<2x5x8xf32> and tensor<2x1x4xf32> must agree in every dimension but axis 1

// -----

%a = sparsec.input @A : tensor<2x5x8xf32>
%b = sparsec.input @B : tensor<2x1x8xf32>
%c = sparsec.concat %a, %b {axis = 1 : i64} : (tensor<2x5x8xf32>, tensor<2x1x8xf32>) -> tensor<2x5x8xf32>
// BAD: sparsec.concat: result must be tensor<2x6x8xf32>, got tensor<2x5x8xf32>

// -----

%a = sparsec.input @A : tensor<2x5x8xf32>
%c = sparsec.concat %a, %a {axis = 3 : i64} : (tensor<2x5x8xf32>, tensor<2x5x8xf32>) -> tensor<2x5x8xf32>
// BAD: sparsec.concat: operands must have one rank and 0 <= axis < rank, got tensor<2x5x8xf32>, tensor<2x5x8xf32> and axis 3

// -----

%q = sparsec.input @Q : tensor<9x1x64xf32>
%k = sparsec.input @K : tensor<2x8x64xf32>
%o = sparsec.gqa_attention %q, %k, %k {scale = 0.125 : f64} : (tensor<9x1x64xf32>, tensor<2x8x64xf32>, tensor<2x8x64xf32>) -> tensor<9x1x64xf32>
// BAD: sparsec.gqa_attention: key/value heads (2) must divide query heads (9)

// -----

%q = sparsec.input @Q : tensor<9x1x64xf32>
%k = sparsec.input @K : tensor<3x8x64xf32>
%v = sparsec.input @V : tensor<3x7x64xf32>
%o = sparsec.gqa_attention %q, %k, %v {scale = 0.125 : f64} : (tensor<9x1x64xf32>, tensor<3x8x64xf32>, tensor<3x7x64xf32>) -> tensor<9x1x64xf32>
// BAD: sparsec.gqa_attention: key tensor<3x8x64xf32> and value tensor<3x7x64xf32> must agree in heads and rows

// -----

%q = sparsec.input @Q : tensor<9x1x32xf32>
%k = sparsec.input @K : tensor<3x8x64xf32>
%o = sparsec.gqa_attention %q, %k, %k {scale = 0.125 : f64} : (tensor<9x1x32xf32>, tensor<3x8x64xf32>, tensor<3x8x64xf32>) -> tensor<9x1x64xf32>
// BAD: sparsec.gqa_attention: query and key must agree in their last dimension, got 32 and 64

// -----

%q = sparsec.input @Q : tensor<9x1x64xf32>
%k = sparsec.input @K : tensor<3x8x64xf32>
%o = sparsec.gqa_attention %q, %k, %k {scale = 0.125 : f64, start = 3 : i64} : (tensor<9x1x64xf32>, tensor<3x8x64xf32>, tensor<3x8x64xf32>) -> tensor<9x1x64xf32>
// BAD: sparsec.gqa_attention: `start` places the queries for a causal mask; it needs mask = "causal"

// -----

%q = sparsec.input @Q : tensor<9x2x64xf32>
%k = sparsec.input @K : tensor<3x8x64xf32>
%o = sparsec.gqa_attention %q, %k, %k {scale = 0.125 : f64, mask = "causal", start = 7 : i64} : (tensor<9x2x64xf32>, tensor<3x8x64xf32>, tensor<3x8x64xf32>) -> tensor<9x2x64xf32>
// BAD: sparsec.gqa_attention: query positions 7..8 need keys up to position 8, but there are 8

// -----

%q = sparsec.input @Q : tensor<9x1x64xf32>
%k = sparsec.input @K : tensor<3x8x64xf32>
%o = sparsec.gqa_attention %q, %k, %k {scale = 0.125 : f64, mask = "window"} : (tensor<9x1x64xf32>, tensor<3x8x64xf32>, tensor<3x8x64xf32>) -> tensor<9x1x64xf32>
// BAD: sparsec.gqa_attention: mask must be one of none, causal, got 'window'

// -----

%q = sparsec.input @Q : tensor<9x1x64xf32>
%k = sparsec.input @K : tensor<3x8x64xf32>
%o = sparsec.gqa_attention %q, %k, %k {scale = 0.125 : f64} : (tensor<9x1x64xf32>, tensor<3x8x64xf32>, tensor<3x8x64xf32>) -> tensor<3x1x64xf32>
// BAD: sparsec.gqa_attention: result must be tensor<9x1x64xf32>, got tensor<3x1x64xf32>

// -----

%q = sparsec.input @Q : tensor<1x64xf32>
%k = sparsec.input @K : tensor<8x64xf32>
%o = sparsec.gqa_attention %q, %k, %k {scale = 0.125 : f64} : (tensor<1x64xf32>, tensor<8x64xf32>, tensor<8x64xf32>) -> tensor<1x64xf32>
// BAD: sparsec.gqa_attention: query must be rank 3 [heads, rows, d], got tensor<1x64xf32>

// -----

%x = sparsec.input @X : tensor<2x4x8xf32>
%y = sparsec.rope %x {base = 1.0e+04 : f64, convention = "gptj"} : tensor<2x4x8xf32> -> tensor<2x4x8xf32>
// BAD: sparsec.rope: convention must be one of normal, neox, got 'gptj'
