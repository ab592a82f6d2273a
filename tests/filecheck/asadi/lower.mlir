// RUN: xdsl-opt %s -p 'lower-asadi' | filecheck %s
// RUN: xdsl-opt %s -p 'lower-asadi{arrays=2}' | filecheck %s --check-prefix=BATCH
// RUN: xdsl-opt %s -p 'lower-asadi{diagonal=false}' | filecheck %s --check-prefix=CSR

// Two-head attention (T = S = 8, d = 4) on a pattern mask in the diagonal format: three
// central diagonals and two overflow diagonals. lower-asadi writes Q, K, V into the
// ReRAM arrays once, runs the DIA iterations in batches of `arrays` diagonals (the
// vectors a Tile accumulates at once: all 5 with 512 arrays, 2 + 2 + 1 with 2), the
// softmax, the P V iterations and reads O out. The CSR paradigm runs the same program
// over the mask's 8 rows instead.

func.func @attn() -> tensor<2x8x4xf32> {
  %Q = sparsec.input @Q : tensor<2x8x4xf32>
  %K = sparsec.input @K : tensor<2x8x4xf32>
  %V = sparsec.input @V : tensor<2x8x4xf32>
  %M = sparsec.param @M : tensor<8x8xi8, #sparsec.diagonal<w = 3, diagonals = 5>>
  %O = sparsec.attention %Q, %K, %V pattern %M {scale = 0.5 : f64, mask = "pattern"} : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<8x8xi8, #sparsec.diagonal<w = 3, diagonals = 5>>) -> tensor<2x8x4xf32>
  func.return %O : tensor<2x8x4xf32>
}

// CHECK-LABEL: func.func @attn
// CHECK:       %[[M:.*]] = sparsec.param @M
// CHECK-NEXT:  %[[Q:.*]], %[[K:.*]], %[[V:.*]] = asadi.write %Q, %K, %V : tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32> -> tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>
// CHECK-NEXT:  %[[S0:.*]] = asadi.zeros : tensor<2x8x8xf32, #sparsec.diagonal<w = 3, diagonals = 5>>
// CHECK-NEXT:  %[[S1:.*]] = asadi.sddmm %[[Q]], %[[K]], %[[M]], %[[S0]] {paradigm = "dia", first = 0 : i64, last = 5 : i64, scale = 5.000000e-01 : f64} : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<8x8xi8, #sparsec.diagonal<w = 3, diagonals = 5>>, tensor<2x8x8xf32, #sparsec.diagonal<w = 3, diagonals = 5>>) -> tensor<2x8x8xf32, #sparsec.diagonal<w = 3, diagonals = 5>>
// CHECK-NEXT:  %[[P:.*]] = asadi.softmax %[[S1]], %[[M]] {paradigm = "dia"}
// CHECK-NEXT:  %[[Z0:.*]] = asadi.zeros : tensor<2x8x4xf32>
// CHECK-NEXT:  %[[Z1:.*]] = asadi.spmm %[[P]], %[[V]], %[[M]], %[[Z0]] {paradigm = "dia", first = 0 : i64, last = 5 : i64}
// CHECK-NEXT:  %[[O:.*]] = asadi.read %[[Z1]] : tensor<2x8x4xf32> -> tensor<2x8x4xf32>
// CHECK-NEXT:  func.return %[[O]] : tensor<2x8x4xf32>
// CHECK-NOT:   sparsec.attention

// BATCH-LABEL: func.func @attn
// BATCH:       asadi.sddmm {{.*}} {paradigm = "dia", first = 0 : i64, last = 2 : i64
// BATCH-NEXT:  asadi.sddmm {{.*}} {paradigm = "dia", first = 2 : i64, last = 4 : i64
// BATCH-NEXT:  asadi.sddmm {{.*}} {paradigm = "dia", first = 4 : i64, last = 5 : i64
// BATCH-NEXT:  asadi.softmax
// BATCH-NEXT:  asadi.zeros
// BATCH-COUNT-3: asadi.spmm
// BATCH-NEXT:  asadi.read

// CSR-LABEL: func.func @attn
// CSR:       asadi.sddmm {{.*}} {paradigm = "csr", first = 0 : i64, last = 8 : i64
// CSR:       asadi.softmax {{.*}} {paradigm = "csr"}
// CSR:       asadi.spmm {{.*}} {paradigm = "csr", first = 0 : i64, last = 8 : i64}

// A decomposed chain: sddmm writes Q and K, spmm writes V; the probabilities stay in
// the arrays between the ops (no write, no read).

func.func @chain() -> tensor<6x2xf64> {
  %Q = sparsec.input @Q : tensor<6x2xf64>
  %K = sparsec.input @K : tensor<6x2xf64>
  %V = sparsec.input @V : tensor<6x2xf64>
  %M = sparsec.param @M : tensor<6x6xi8, #sparsec.diagonal<w = 2, diagonals = 2>>
  %S = sparsec.sddmm %Q, %K pattern %M {scale = 1.0 : f64, mask = "pattern"} : (tensor<6x2xf64>, tensor<6x2xf64>, tensor<6x6xi8, #sparsec.diagonal<w = 2, diagonals = 2>>) -> tensor<6x6xf64, #sparsec.diagonal<w = 2, diagonals = 2>>
  %P = sparsec.softmax %S pattern %M {mask = "pattern"} : (tensor<6x6xf64, #sparsec.diagonal<w = 2, diagonals = 2>>, tensor<6x6xi8, #sparsec.diagonal<w = 2, diagonals = 2>>) -> tensor<6x6xf64, #sparsec.diagonal<w = 2, diagonals = 2>>
  %O = sparsec.spmm %P, %V : (tensor<6x6xf64, #sparsec.diagonal<w = 2, diagonals = 2>>, tensor<6x2xf64>) -> tensor<6x2xf64>
  func.return %O : tensor<6x2xf64>
}

// CHECK-LABEL: func.func @chain
// CHECK:       %[[Q:.*]], %[[K:.*]] = asadi.write %Q, %K : tensor<6x2xf64>, tensor<6x2xf64> -> tensor<6x2xf64>, tensor<6x2xf64>
// CHECK-NEXT:  %[[S0:.*]] = asadi.zeros : tensor<6x6xf64, #sparsec.diagonal<w = 2, diagonals = 2>>
// CHECK-NEXT:  %[[S1:.*]] = asadi.sddmm %[[Q]], %[[K]], %M, %[[S0]] {paradigm = "dia", first = 0 : i64, last = 2 : i64, scale = 1.000000e+00 : f64}
// CHECK-NEXT:  %[[P:.*]] = asadi.softmax %[[S1]], %M {paradigm = "dia"}
// CHECK-NEXT:  %[[V:.*]] = asadi.write %V : tensor<6x2xf64> -> tensor<6x2xf64>
// CHECK-NEXT:  %[[Z0:.*]] = asadi.zeros : tensor<6x2xf64>
// CHECK-NEXT:  %[[Z1:.*]] = asadi.spmm %[[P]], %[[V]], %M, %[[Z0]] {paradigm = "dia", first = 0 : i64, last = 2 : i64}
// CHECK-NEXT:  %[[O:.*]] = asadi.read %[[Z1]]
// CHECK-NEXT:  func.return %[[O]]

// Scores a kernel returns leave the arrays through asadi.read.

func.func @scores() -> tensor<6x6xf64, #sparsec.diagonal<w = 2, diagonals = 2>> {
  %Q = sparsec.input @Q : tensor<6x2xf64>
  %K = sparsec.input @K : tensor<6x2xf64>
  %M = sparsec.param @M : tensor<6x6xi8, #sparsec.diagonal<w = 2, diagonals = 2>>
  %S = sparsec.sddmm %Q, %K pattern %M {scale = 1.0 : f64, mask = "pattern"} : (tensor<6x2xf64>, tensor<6x2xf64>, tensor<6x6xi8, #sparsec.diagonal<w = 2, diagonals = 2>>) -> tensor<6x6xf64, #sparsec.diagonal<w = 2, diagonals = 2>>
  func.return %S : tensor<6x6xf64, #sparsec.diagonal<w = 2, diagonals = 2>>
}

// CHECK-LABEL: func.func @scores
// CHECK:       %[[S1:.*]] = asadi.sddmm
// CHECK-NEXT:  %[[R:.*]] = asadi.read %[[S1]] : tensor<6x6xf64, #sparsec.diagonal<w = 2, diagonals = 2>> -> tensor<6x6xf64, #sparsec.diagonal<w = 2, diagonals = 2>>
// CHECK-NEXT:  func.return %[[R]]

// A param P of a standalone spmm is its own structure (the mask operand).

func.func @spmm_param() -> tensor<6x2xf64> {
  %P = sparsec.param @P : tensor<6x6xf64, #sparsec.diagonal<w = 3, diagonals = 3>>
  %V = sparsec.input @V : tensor<6x2xf64>
  %O = sparsec.spmm %P, %V : (tensor<6x6xf64, #sparsec.diagonal<w = 3, diagonals = 3>>, tensor<6x2xf64>) -> tensor<6x2xf64>
  func.return %O : tensor<6x2xf64>
}

// CHECK-LABEL: func.func @spmm_param
// CHECK:       %[[P:.*]], %[[V:.*]] = asadi.write %P, %V
// CHECK-NEXT:  %[[Z0:.*]] = asadi.zeros : tensor<6x2xf64>
// CHECK-NEXT:  %[[Z1:.*]] = asadi.spmm %[[P]], %[[V]], %P, %[[Z0]] {paradigm = "dia", first = 0 : i64, last = 3 : i64}
// CHECK-NEXT:  asadi.read %[[Z1]]
