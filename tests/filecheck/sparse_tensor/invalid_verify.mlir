// RUN: xdsl-opt %s --split-input-file --verify-diagnostics | filecheck %s

// One case per rule of MLIR's SparseTensorEncodingAttr::verify; each CHECK is
// the message mlir-opt-22 reports for the same input.

func.func private @f0(tensor<8x8xf32, #sparse_tensor.encoding<{ map = (d0, d1) -> (d0 : dense, d1 : compressed), posWidth = 7 }>>)
// CHECK: unexpected position bitwidth: 7

// -----

func.func private @f1(tensor<8x8xf32, #sparse_tensor.encoding<{ map = (d0, d1) -> (d0 : dense, d1 : compressed), crdWidth = 12 }>>)
// CHECK: unexpected coordinate bitwidth: 12

// -----

func.func private @f2(tensor<8x8xf32, #sparse_tensor.encoding<{ map = (d0, d1) -> (d0 : dense, d1 : singleton) }>>)
// CHECK: expected compressed or loose_compressed level before singleton level

// -----

func.func private @f3(tensor<8x8xf32, #sparse_tensor.encoding<{ map = (d0, d1, d2) -> (d0 : compressed(nonunique), d1 : singleton(nonunique), d2 : singleton(soa)) }>>)
// CHECK: expected all singleton lvlTypes stored in the same memory layout (SoA vs AoS).

// -----

func.func private @f4(tensor<8x8xf32, #sparse_tensor.encoding<{ map = (d0, d1) -> (d0 : dense, d1 : batch) }>>)
// CHECK: Batch lvlType can only be leading levels.

// -----

func.func private @f5(tensor<8x8xf32, #sparse_tensor.encoding<{ map = (d0, d1) -> (d0 : compressed(soa), d1 : singleton) }>>)
// CHECK: SoA is only applicable to singleton lvlTypes.

// -----

func.func private @f6(tensor<8x8xf32, #sparse_tensor.encoding<{ map = (d0, d1) -> (d0 : structured[2, 4], d1 : dense) }>>)
// CHECK: expected n_out_of_m to be the last level type

// -----

func.func private @f7(tensor<8x8xf32, #sparse_tensor.encoding<{ map = (d0, d1) -> (d0 : compressed, d1 : structured[2, 4]) }>>)
// CHECK: expected all dense lvlTypes before a n_out_of_m level

// -----

func.func private @f8(tensor<8x8xf32, #sparse_tensor.encoding<{ map = (i, j) -> (i : dense, j floordiv 4 : dense, j mod 3 : structured[2, 4]) }>>)
// CHECK: expected 1xm block structure for n_out_of_m level

// -----

func.func private @f9(tensor<8x8xf32, #sparse_tensor.encoding<{ map = (i, j) -> (i floordiv 2 : dense, j floordiv 4 : dense, i mod 2 : dense, j mod 4 : structured[2, 4]) }>>)
// CHECK: expected only one blocked level with the same coefficients

// -----

func.func private @f10(tensor<8x8xf32, #sparse_tensor.encoding<{ map = (i, j) -> (i : dense, j floordiv 4 : dense, j mod 4 : structured[2, 8]) }>>)
// CHECK: expected coeffiencts of Affine expressions to be equal to m of n_out_of_m level

// -----

func.func private @f11(tensor<8x8xf32, #sparse_tensor.encoding<{ map = (d0, d1) -> () }>>)
// CHECK: expected a non-empty array for lvlTypes

// -----

func.func private @f12(tensor<8x8xf32, #sparse_tensor.encoding<{ map = (d0, d1) -> (d0 : dense, d1 : compressed), map = (d0, d1) -> (d1 : dense, d0 : compressed) }>>)
// CHECK: level-rank mismatch between dimToLvl and lvlTypes: 2 != 4

// -----

func.func private @f13(tensor<8x8xf32, #sparse_tensor.encoding<{ map = (d0, d1) -> (d0 + d1 : dense, d1 : compressed) }>>)
// CHECK: failed to infer lvlToDim from dimToLvl

// -----

func.func private @f14(tensor<8x8xf32, #sparse_tensor.encoding<{ map = {l0, l1} (d0 = l1, d1 = l0) -> (l0 = d0 : dense, l1 = d1 : compressed) }>>)
// CHECK: expected lvlToDim to be an inverse of dimToLvl

// -----

func.func private @f15(tensor<8x8xf32, #sparse_tensor.encoding<{ map = [s0](d0, d1) -> (d0 : dense) }>>)
// CHECK: unexpected dimToLvl mapping from 2 to 1

// -----

func.func private @f16(tensor<8x8xf32, #sparse_tensor.encoding<{ map = (d0 : #sparse_tensor<slice(1, 4, 1)>, d1) -> (d0 floordiv 2 : dense, d1 : compressed, d0 mod 2 : dense) }>>)
// CHECK: dimSlices expected dimension-rank to match level-rank: 2 != 3

// -----

func.func private @f17(tensor<8x8xf32, #sparse_tensor.encoding<{ map = (d0 : #sparse_tensor<slice(1, 0, 1)>, d1) -> (d0 : dense, d1 : compressed) }>>)
// CHECK: expect positive value or ? for slice size
