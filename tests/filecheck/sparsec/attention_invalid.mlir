// RUN: xdsl-opt %s --split-input-file --verify-diagnostics | filecheck %s --check-prefix=BAD

// One case per verifier rule of the attention-family ops.


%q = sparsec.input @Q : tensor<4x8xf32>
%o = sparsec.attention %q, %q, %q {scale = 1.0 : f64, mask = "window"} : (tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
// BAD: sparsec.attention: a window mask needs `window` (and only it)

// -----

%q = sparsec.input @Q : tensor<4x8xf32>
%o = sparsec.attention %q, %q, %q {scale = 1.0 : f64, mask = "pattern"} : (tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
// BAD: sparsec.attention: a pattern mask takes the pattern as its last operand (and only a pattern mask does)

// -----

%q = sparsec.input @Q : tensor<4x8xf32>
%s = sparsec.sddmm %q, %q {scale = 1.0 : f64, mask = "diagonal"} : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x4xf32>
// BAD: sparsec.sddmm: mask must be one of none, causal, window, pattern, got 'diagonal'

// -----

%q = sparsec.input @Q : tensor<4x8xf32>
%s = sparsec.sddmm %q, %q {scale = 1.0 : f64} : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
// BAD: sparsec.sddmm: result must be tensor<4x4xf32>, got tensor<4x8xf32>

// -----

%q = sparsec.input @Q : tensor<4x8xi8>
%s = sparsec.softmax %q : (tensor<4x8xi8>) -> tensor<4x8xi8>
// BAD: sparsec.softmax: attention operands must be floating point

// -----

%p = sparsec.input @P : tensor<2x4x6xf32>
%v = sparsec.input @V : tensor<2x5x8xf32>
%o = sparsec.spmm %p, %v : (tensor<2x4x6xf32>, tensor<2x5x8xf32>) -> tensor<2x4x8xf32>
// BAD: sparsec.spmm: lhs tensor<2x4x6xf32> and rhs tensor<2x5x8xf32> must agree in heads and the contracted dimension (S)

// -----

%q = sparsec.input @Q : tensor<4x8xf32>
%p = sparsec.param @P : tensor<4x5xi8>
%s = sparsec.softmax %q pattern %p {mask = "pattern"} : (tensor<4x8xf32>, tensor<4x5xi8>) -> tensor<4x8xf32>
// BAD: sparsec.softmax: pattern must be 4x8 (T x S), got tensor<4x5xi8>
