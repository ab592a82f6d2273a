// RUN: xdsl-opt %s --split-input-file --verify-diagnostics | filecheck %s

// One case per verifier rule of the bitllm ISA.

%a = "test.op"() : () -> tensor<8x8xbf16>
%acc = bitllm.zeros : tensor<8x8xbf16>
%r = bitllm.gemm %a, %a, %acc {m = array<i64: 0, 9>, n = array<i64: 0, 8>} : (tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>) -> tensor<8x8xbf16>
// CHECK: bitllm.gemm: tile m<9 n<8 exceeds the accumulator 8x8

// -----

%a = "test.op"() : () -> tensor<8x8xbf16>
%acc = bitllm.zeros : tensor<8x8xbf16>
%r = bitllm.gemm %a, %a, %acc {m = array<i64: 4, 4>, n = array<i64: 0, 8>} : (tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>) -> tensor<8x8xbf16>
// CHECK: bitllm.gemm: m must be array<i64: lo, hi> with 0 <= lo < hi, got [4, 4]

// -----

%q = "test.op"() : () -> tensor<4x8x16xbf16>
%k = "test.op"() : () -> tensor<2x8x16xbf16>
%acc = bitllm.zeros : tensor<4x8x8xbf16>
%r = bitllm.fgemm %q, %k, %acc {head = 4 : i64, rhs_head = 0 : i64, transpose_b} : (tensor<4x8x16xbf16>, tensor<2x8x16xbf16>, tensor<4x8x8xbf16>) -> tensor<4x8x8xbf16>
// CHECK: bitllm.fgemm: head 4 is out of range for 4 heads

// -----

%q = "test.op"() : () -> tensor<4x8x16xbf16>
%k = "test.op"() : () -> tensor<2x8x16xbf16>
%acc = bitllm.zeros : tensor<4x8x8xbf16>
%r = bitllm.fgemm %q, %k, %acc {head = 0 : i64, rhs_head = 2 : i64, transpose_b} : (tensor<4x8x16xbf16>, tensor<2x8x16xbf16>, tensor<4x8x8xbf16>) -> tensor<4x8x8xbf16>
// CHECK: bitllm.fgemm: rhs_head 2 is out of range for 2 heads

// -----

%x = "test.op"() : () -> tensor<8x8xbf16>
%r = bitllm.nonlinear "tanh" %x {order = 6 : i64} : (tensor<8x8xbf16>) -> tensor<8x8xbf16>
// CHECK: bitllm.nonlinear: kind must be one of rmsnorm, silu, gelu, exp, add, mul, rope, softmax, got 'tanh'

// -----

%x = "test.op"() : () -> tensor<8x8xbf16>
%r = bitllm.nonlinear "add" %x {order = 6 : i64} : (tensor<8x8xbf16>) -> tensor<8x8xbf16>
// CHECK: bitllm.nonlinear: 'add' takes 2 input(s), got 1

// -----

%x = "test.op"() : () -> tensor<8x8xbf16>
%r = bitllm.nonlinear "silu" %x {order = 0 : i64} : (tensor<8x8xbf16>) -> tensor<8x8xbf16>
// CHECK: bitllm.nonlinear: order must lie in [1, 16], got 0

// -----

%x = "test.op"() : () -> tensor<8x8xbf16>
%r = bitllm.move "transpose" %x : (tensor<8x8xbf16>) -> tensor<8x8xbf16>
// CHECK: bitllm.move: kind must be one of heads, merge_heads, concat, got 'transpose'

// -----

%x = "test.op"() : () -> tensor<8x8xbf16>
bitllm.load %x {bytes = -1 : i64} : tensor<8x8xbf16>
// CHECK: bitllm.load: bytes must be >= 0

// -----

// bitllm.kv_load holds sparsec.kv_compress's rules: sink 2 + window 24 of 41 tokens keep 26.
%k = "test.op"() : () -> tensor<3x41x64xbf16>
%r = bitllm.kv_load %k {role = "key", bits = [16 : i64, 4 : i64, 2 : i64], tiers = [8 : i64, 16 : i64], group = 8 : i64, axis = "channel", sink = 2 : i64, window = 24 : i64, meta_bits = 16 : i64} : tensor<3x41x64xbf16> -> tensor<3x41x64xbf16>
// CHECK: bitllm.kv_load: result must be tensor<3x26x64xbf16> (sink 2 + window 24 of 41 tokens), got tensor<3x41x64xbf16>

// -----

%x = "test.op"() : () -> tensor<4x8xbf16>
%r = bitllm.prune %x {threshold = -1.0 : f64, estimate = "abs"} : tensor<4x8xbf16> -> tensor<4x8xbf16>
// CHECK: bitllm.prune: threshold must be >= 0, got -1.0

// -----

%s = "test.op"() : () -> tensor<2x16xf32>
%r = bitllm.prune_tokens %s {threshold = 0.01 : f64, sink = 1 : i64, recent = 4 : i64, min_seen = 2 : i64, heads = 3 : i64} : tensor<2x16xf32> -> tensor<17xf32>
// CHECK: bitllm.prune_tokens: state must be [3, S] (attention received, steps seen, alive per cached token), got tensor<2x16xf32>
