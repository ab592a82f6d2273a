// RUN: xdsl-opt %s --split-input-file --parsing-diagnostics | filecheck %s

// Errors MLIR reports while parsing an encoding; each CHECK is the message
// mlir-opt-22 reports for the same input.

func.func private @f0(tensor<8x8xf32, #sparse_tensor.encoding<{ map = (d0, d1) -> (d0 : dense, d1 : compressed), foo = 8 }>>)
// CHECK: unexpected key: foo

// -----

func.func private @f1(tensor<8x8xf32, #sparse_tensor.encoding<{ map = (d0, d1) -> (d0 : dense, d1 : compressed), posWidth = "x" }>>)
// CHECK: expected an integral position bitwidth

// -----

func.func private @f2(tensor<8x8xf32, #sparse_tensor.encoding<{ map = (d0, d1) -> (d0 : dense, d1 : compressed), explicitVal = "x" }>>)
// CHECK: expected a numeric value for explicitVal

// -----

func.func private @f3(tensor<8x8xf32, #sparse_tensor.encoding<{ map = (d0, d1) -> (d0 : dense, d1 : foo) }>>)
// CHECK: unknown level format: foo

// -----

func.func private @f4(tensor<8x8xf32, #sparse_tensor.encoding<{ map = (d0, d1) -> (d0 : dense, d1 : compressed(foo)) }>>)
// CHECK: unknown level property: foo

// -----

func.func private @f5(tensor<8x8xf32, #sparse_tensor.encoding<{ map = (d0, d1) -> (d0 : dense(nonunique), d1 : compressed) }>>)
// CHECK: invalid level type: level format doesn't support the properties

// -----

func.func private @f6(tensor<8x8xf32, #sparse_tensor.encoding<{ map = (d0, d1) -> (d0 : dense, d1 : structured[4, 2]) }>>)
// CHECK: expected n <= m in n_out_of_m

// -----

func.func private @f7(tensor<8x8xf32, #sparse_tensor.encoding<{ map = (d0, d1) -> (d0 : dense, d1 : structured[2]) }>>)
// CHECK: expected exactly 2 structured sizes

// -----

func.func private @f8(tensor<8x8xf32, #sparse_tensor.encoding<{ map = (d0, d0) -> (d0 : dense, d0 : compressed) }>>)
// CHECK: redefinition of identifier 'd0'

// -----

func.func private @f9(tensor<8x8xf32, #sparse_tensor.encoding<{ map = {l0, l1} (d0 = l0, d1 = l1) -> (l0 = d0 : dense) }>>)
// CHECK: Level-rank mismatch between forward-declarations and specifiers. Declared 2 level-variables; but got 1 level-specifiers.

// -----

func.func private @f10(tensor<8x8xf32, #sparse_tensor.encoding<{ map = {l0, l1} (d0 = l0, d1 = l1) -> (l1 = d0 : dense, l0 = d1 : compressed) }>>)
// CHECK: Level-variable ordering mismatch. The variable 'l1' was forward-declared as the 1st level; but is bound by the 0th specification.

// -----

func.func private @f11(tensor<8x8xf32, #sparse_tensor.encoding<{ map = [s0](d0, d1) -> (d0 * d1 : dense, d1 : compressed) }>>)
// CHECK: non-affine expression: at least one of the multiply operands has to be either a constant or symbolic

// -----

func.func private @f12(tensor<8x8xf32, #sparse_tensor.encoding<{ map = (d0 : 5, d1) -> (d0 : dense, d1 : compressed) }>>)
// CHECK: expected SparseTensorDimSliceAttr
