// RUN: xdsl-opt %s | xdsl-opt | filecheck %s

// BitWave's bit-column format round-trips in its canonical spelling (axis 0 filled in).

func.func @bitcolumn() {
  %a = sparsec.param @A : tensor<64x32xi8, #sparsec.bitcolumn<group = 16, sign_magnitude>>
  %b = sparsec.param @B : tensor<64x32xi8, #sparsec.bitcolumn<axis = 1, group = 8>>
  %c = sparsec.param @C : tensor<64x32xf32, #sparsec.quantized<bits = 8, axis = 1, symmetric, layout = #sparsec.bitcolumn<group = 16, axis = 0, sign_magnitude>>>
  func.return
}

// CHECK:      %a = sparsec.param @A : tensor<64x32xi8, #sparsec.bitcolumn<group = 16, axis = 0, sign_magnitude>>
// CHECK-NEXT: %b = sparsec.param @B : tensor<64x32xi8, #sparsec.bitcolumn<group = 8, axis = 1>>
// CHECK-NEXT: %c = sparsec.param @C : tensor<64x32xf32, #sparsec.quantized<bits = 8, axis = 1, symmetric, layout = #sparsec.bitcolumn<group = 16, axis = 0, sign_magnitude>>>
