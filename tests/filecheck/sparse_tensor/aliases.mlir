// RUN: xdsl-opt %s | filecheck %s

// Attribute aliases are resolved by the parser; xDSL prints the encodings inline.

#CSR = #sparse_tensor.encoding<{ map = (i, j) -> (i : dense, j : compressed), posWidth = 32, crdWidth = 32 }>
#COO = #sparse_tensor.encoding<{ map = (i, j) -> (i : compressed(nonunique), j : singleton) }>

func.func @convert(%a: tensor<8x8xf32, #CSR>, %b: tensor<8x8xf32, #COO>) -> tensor<8x8xf32, #CSR> {
  func.return %a : tensor<8x8xf32, #CSR>
}

// CHECK:      func.func @convert(%a: tensor<8x8xf32, #sparse_tensor.encoding<{ map = (d0, d1) -> (d0 : dense, d1 : compressed), posWidth = 32, crdWidth = 32 }>>, %b: tensor<8x8xf32, #sparse_tensor.encoding<{ map = (d0, d1) -> (d0 : compressed(nonunique), d1 : singleton) }>>) -> tensor<8x8xf32, #sparse_tensor.encoding<{ map = (d0, d1) -> (d0 : dense, d1 : compressed), posWidth = 32, crdWidth = 32 }>> {
// CHECK-NEXT:   func.return %a : tensor<8x8xf32, #sparse_tensor.encoding<{ map = (d0, d1) -> (d0 : dense, d1 : compressed), posWidth = 32, crdWidth = 32 }>>
// CHECK-NEXT: }
