// RUN: xdsl-opt %s --split-input-file --verify-diagnostics | filecheck %s --check-prefix=BAD
// RUN: xdsl-opt %s --split-input-file --verify-diagnostics | filecheck %s --check-prefix=GOOD

// One case per verifier rule of sparsec.kv_compress and sparsec.prune_activations.

%k = sparsec.input @K : tensor<3x41x64xf32>
%c = sparsec.kv_compress %k {role = "key", bits = [16 : i64, 4 : i64], tiers = [8 : i64], group = 8 : i64, axis = "channel", sink = 2 : i64, window = 24 : i64, meta_bits = 16 : i64} : tensor<3x41x64xf32> -> tensor<3x26x64xf32>
// GOOD: sparsec.kv_compress %k {role = "key", bits = [16 : i64, 4 : i64], tiers = [8 : i64], group = 8 : i64, axis = "channel", sink = 2 : i64, window = 24 : i64, meta_bits = 16 : i64} : tensor<3x41x64xf32> -> tensor<3x26x64xf32>

// -----

%k = sparsec.input @K : tensor<3x41x64xf32>
%c = sparsec.kv_compress %k {role = "key", bits = [16 : i64, 4 : i64], tiers = [8 : i64], group = 8 : i64, axis = "channel", sink = 2 : i64, window = 24 : i64, meta_bits = 16 : i64} : tensor<3x41x64xf32> -> tensor<3x41x64xf32>
// BAD: sparsec.kv_compress: result must be tensor<3x26x64xf32> (sink 2 + window 24 of 41 tokens), got tensor<3x41x64xf32>

// -----

%k = sparsec.input @K : tensor<3x41x64xf32>
%c = sparsec.kv_compress %k {role = "key", bits = [4 : i64, 16 : i64], tiers = [8 : i64], group = 8 : i64, axis = "channel", sink = 0 : i64, window = 0 : i64, meta_bits = 16 : i64} : tensor<3x41x64xf32> -> tensor<3x41x64xf32>
// BAD: sparsec.kv_compress: bits must not increase with age (older tiers get fewer bits), got [4, 16]

// -----

%k = sparsec.input @K : tensor<3x41x64xf32>
%c = sparsec.kv_compress %k {role = "query", bits = [16 : i64], tiers = [], group = 8 : i64, axis = "channel", sink = 0 : i64, window = 0 : i64, meta_bits = 16 : i64} : tensor<3x41x64xf32> -> tensor<3x41x64xf32>
// BAD: sparsec.kv_compress: role must be key or value, got 'query'

// -----

%k = sparsec.input @K : tensor<3x41x64xf32>
%c = sparsec.kv_compress %k {role = "value", bits = [2 : i64], tiers = [], group = 8 : i64, axis = "head", sink = 0 : i64, window = 0 : i64, meta_bits = 16 : i64} : tensor<3x41x64xf32> -> tensor<3x41x64xf32>
// BAD: sparsec.kv_compress: axis must be channel or token, got 'head'

// -----

%k = sparsec.input @K : tensor<41x64xf32>
%c = sparsec.kv_compress %k {role = "value", bits = [2 : i64], tiers = [], group = 8 : i64, axis = "token", sink = 0 : i64, window = 0 : i64, meta_bits = 16 : i64} : tensor<41x64xf32> -> tensor<41x64xf32>
// BAD: sparsec.kv_compress: input must be [heads, tokens, d], got tensor<41x64xf32>

// -----

%x = sparsec.input @X : tensor<4x16xf32>
%p = sparsec.prune_activations %x {threshold = 0.1 : f64, estimate = "abs_w"} : tensor<4x16xf32> -> tensor<4x16xf32>
// BAD: sparsec.prune_activations: estimate abs_w takes the weight operand (and only abs_w does)

// -----

%x = sparsec.input @X : tensor<4x16xf32>
%w = sparsec.param @W : tensor<8x16xf32>
%p = sparsec.prune_activations %x weight %w {threshold = 0.1 : f64, estimate = "abs_w"} : tensor<4x16xf32>, tensor<8x16xf32> -> tensor<4x16xf32>
// BAD: sparsec.prune_activations: weight tensor<8x16xf32> must have K = 16 rows (columns with transpose_w)

// -----

%x = sparsec.input @X : tensor<4x16xf32>
%p = sparsec.prune_activations %x {threshold = -1.0 : f64, estimate = "abs"} : tensor<4x16xf32> -> tensor<4x16xf32>
// BAD: sparsec.prune_activations: threshold must be >= 0, got -1.0

// -----

%x = sparsec.input @X : tensor<4x16xi8>
%p = sparsec.prune_activations %x {threshold = 1.0 : f64, estimate = "abs"} : tensor<4x16xi8> -> tensor<4x16xi8>
// BAD: sparsec.prune_activations: input must be a float [M, K] activation, got tensor<4x16xi8>

// -----

%s = sparsec.input @S : tensor<3x40xf32>
%k = sparsec.prune_tokens %s {threshold = 0.3 : f64, sink = 2 : i64, recent = 8 : i64, min_seen = 1 : i64, heads = 9 : i64} : tensor<3x40xf32> -> tensor<41xf32>
// GOOD: sparsec.prune_tokens %s {threshold = 3.000000e-01 : f64, sink = 2 : i64, recent = 8 : i64, min_seen = 1 : i64, heads = 9 : i64} : tensor<3x40xf32> -> tensor<41xf32>

// -----

%s = sparsec.input @S : tensor<2x40xf32>
%k = sparsec.prune_tokens %s {threshold = 0.3 : f64, sink = 2 : i64, recent = 8 : i64, min_seen = 1 : i64, heads = 9 : i64} : tensor<2x40xf32> -> tensor<41xf32>
// BAD: sparsec.prune_tokens: state must be [3, S] (attention received, steps seen, alive per cached token), got tensor<2x40xf32>

// -----

%s = sparsec.input @S : tensor<3x40xf32>
%k = sparsec.prune_tokens %s {threshold = 0.3 : f64, sink = 2 : i64, recent = 8 : i64, min_seen = 1 : i64, heads = 9 : i64} : tensor<3x40xf32> -> tensor<40xf32>
// BAD: sparsec.prune_tokens: result must be [S + new] with new >= 1 (S = 40) of f32, got tensor<40xf32>

// -----

%s = sparsec.input @S : tensor<3x40xf32>
%k = sparsec.prune_tokens %s {threshold = -0.3 : f64, sink = 2 : i64, recent = 8 : i64, min_seen = 1 : i64, heads = 9 : i64} : tensor<3x40xf32> -> tensor<41xf32>
// BAD: sparsec.prune_tokens: threshold must be >= 0, got -0.3

// -----

%s = sparsec.input @S : tensor<3x40xf32>
%k = sparsec.prune_tokens %s {threshold = 0.3 : f64, sink = 2 : i64, recent = 8 : i64, min_seen = 1 : i64, heads = 0 : i64} : tensor<3x40xf32> -> tensor<41xf32>
// BAD: sparsec.prune_tokens: heads must be >= 1, got 0

// -----

%q = sparsec.input @Q : tensor<9x1x64xf32>
%kk = sparsec.input @K : tensor<3x41x64xf32>
%v = sparsec.input @V : tensor<3x41x64xf32>
%keep = sparsec.input @keep : tensor<40xf32>
%c = sparsec.gqa_attention %q, %kk, %v keep %keep {scale = 0.125 : f64, mask = "causal", start = 40 : i64} : (tensor<9x1x64xf32>, tensor<3x41x64xf32>, tensor<3x41x64xf32>, tensor<40xf32>) -> tensor<9x1x64xf32>
// BAD: sparsec.gqa_attention: keep must be [41] (one flag per key), got tensor<40xf32>
