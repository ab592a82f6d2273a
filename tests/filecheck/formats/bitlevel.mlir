// RUN: xdsl-opt %s | xdsl-opt | filecheck %s

func.func @bitlevel() {
  %a = sparsec.param @A : tensor<64x32xbf16, #sparsec.bitlevel<method = csd, max_ones = 3, codes = #sparsec.quantized<bits = 8, scale = 0.5, symmetric>>>
  %b = sparsec.param @B : tensor<64x32xi8, #sparsec.bitlevel<max_ones = 2, method = sm>>
  func.return
}

// CHECK: tensor<64x32xbf16, #sparsec.bitlevel<max_ones = 3, method = csd, codes = #sparsec.quantized<bits = 8, scale = 5.000000e-01, symmetric>>>
// CHECK: tensor<64x32xi8, #sparsec.bitlevel<max_ones = 2, method = sm>>
