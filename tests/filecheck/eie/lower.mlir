// RUN: xdsl-opt %s -p 'lower-eie{pes=4}' | filecheck %s
// RUN: xdsl-opt %s -p 'lower-eie{pes=4 fifo_depth=1}' | filecheck %s --check-prefix=DEPTH

// Y = X . W with X (3 vectors x K = 4 activations, 16-bit fixed point, scale 2^-8) and
// W (K x N = 4 x 6) a 4-bit codebook over rcsc on 4 PEs. EIE stores the (out, in)
// matrix W^T (`in_out`), and broadcasts one activation column to all PEs per
// eie.column: K = 4 of them, whatever the number of nonzeros.

func.func @ffn() -> tensor<3x6xf64> {
  %X = sparsec.param @X : tensor<3x4xf64, #sparsec.quantized<bits = 16, scale = 3.906250e-03, symmetric>>
  %W = sparsec.param @W : tensor<4x6xf64, #sparsec.codebook<bits = 4, layout = #sparsec.rcsc<pes = 4, index_bits = 4, ptr_bits = 16>>>
  %Y = sparsec.matmul %X, %W : (tensor<3x4xf64, #sparsec.quantized<bits = 16, scale = 3.906250e-03, symmetric>>, tensor<4x6xf64, #sparsec.codebook<bits = 4, layout = #sparsec.rcsc<pes = 4, index_bits = 4, ptr_bits = 16>>>) -> tensor<3x6xf64>
  func.return %Y : tensor<3x6xf64>
}

// CHECK-LABEL: func.func @ffn
// CHECK:       %[[WP:.*]] = eie.encode %W {in_out} : tensor<4x6xf64, #sparsec.codebook<bits = 4, layout = #sparsec.rcsc<pes = 4, index_bits = 4, ptr_bits = 16>>>
// CHECK-NEXT:  %[[A0:.*]] = eie.zeros : tensor<3x6xf64>
// CHECK-NEXT:  %[[A1:.*]] = eie.column %X, %[[WP]], %[[A0]] {column = 0 : i64} : (tensor<3x4xf64, #sparsec.quantized<bits = 16, scale = 3.906250e-03, symmetric>>, tensor<4x6xf64, #sparsec.codebook<bits = 4, layout = #sparsec.rcsc<pes = 4, index_bits = 4, ptr_bits = 16>>>, tensor<3x6xf64>) -> tensor<3x6xf64>
// CHECK-NEXT:  %[[A2:.*]] = eie.column %X, %[[WP]], %[[A1]] {column = 1 : i64}
// CHECK-NEXT:  %[[A3:.*]] = eie.column %X, %[[WP]], %[[A2]] {column = 2 : i64}
// CHECK-NEXT:  %[[A4:.*]] = eie.column %X, %[[WP]], %[[A3]] {column = 3 : i64}
// CHECK-NEXT:  %{{.*}} = eie.store %[[A4]] : tensor<3x6xf64> -> tensor<3x6xf64>
// CHECK-NOT:   sparsec.matmul

// The FIFO depth changes the simulation, not the program.
// DEPTH-LABEL: func.func @ffn
// DEPTH-COUNT-4: eie.column
// DEPTH-NEXT:  eie.store

// With transpose_b, W is given as (out, in) = N x K (a checkpoint's own layout): no
// `in_out`; with transpose_a, X is K x T (one input vector per column).

func.func @out_in() -> tensor<2x5xf64> {
  %X = sparsec.input @X : tensor<3x2xf64, #sparsec.quantized<bits = 16, symmetric>>
  %W = sparsec.param @W : tensor<5x3xf64, #sparsec.codebook<bits = 4, layout = #sparsec.rcsc<pes = 4, index_bits = 4, ptr_bits = 16>>>
  %Y = sparsec.matmul %X, %W {transpose_a, transpose_b} : (tensor<3x2xf64, #sparsec.quantized<bits = 16, symmetric>>, tensor<5x3xf64, #sparsec.codebook<bits = 4, layout = #sparsec.rcsc<pes = 4, index_bits = 4, ptr_bits = 16>>>) -> tensor<2x5xf64>
  func.return %Y : tensor<2x5xf64>
}

// CHECK-LABEL: func.func @out_in
// CHECK:       %[[WP:.*]] = eie.encode %W : tensor<5x3xf64
// CHECK-NEXT:  eie.zeros : tensor<2x5xf64>
// CHECK-NEXT:  eie.column %X, %[[WP]], %{{.*}} {column = 0 : i64, transpose_a}
// CHECK-NEXT:  eie.column %X, %[[WP]], %{{.*}} {column = 1 : i64, transpose_a}
// CHECK-NEXT:  eie.column %X, %[[WP]], %{{.*}} {column = 2 : i64, transpose_a}
// CHECK-NEXT:  eie.store
