// RUN: xdsl-opt %s | filecheck %s
// RUN: xdsl-opt %s | xdsl-opt | filecheck %s

// Every encoding below prints exactly as mlir-opt-22 prints it (the CHECK
// strings were recorded from `mlir-opt-22 --mlir-print-local-scope`).

func.func private @csr(tensor<8x8xf32, #sparse_tensor.encoding<{ map = (i, j) -> (i : dense, j : compressed) }>>)
// CHECK: func.func private @csr(tensor<8x8xf32, #sparse_tensor.encoding<{ map = (d0, d1) -> (d0 : dense, d1 : compressed) }>>)

func.func private @dcsr(tensor<8x8xf32, #sparse_tensor.encoding<{ map = (i, j) -> (i : compressed, j : compressed) }>>)
// CHECK: func.func private @dcsr(tensor<8x8xf32, #sparse_tensor.encoding<{ map = (d0, d1) -> (d0 : compressed, d1 : compressed) }>>)

func.func private @csc(tensor<8x8xf32, #sparse_tensor.encoding<{ map = (i, j) -> (j : dense, i : compressed) }>>)
// CHECK: func.func private @csc(tensor<8x8xf32, #sparse_tensor.encoding<{ map = (d0, d1) -> (d1 : dense, d0 : compressed) }>>)

func.func private @dcsc(tensor<8x8xf32, #sparse_tensor.encoding<{ map = (i, j) -> (j : compressed, i : compressed) }>>)
// CHECK: func.func private @dcsc(tensor<8x8xf32, #sparse_tensor.encoding<{ map = (d0, d1) -> (d1 : compressed, d0 : compressed) }>>)

func.func private @coo(tensor<8x8xf32, #sparse_tensor.encoding<{ map = (i, j) -> (i : compressed(nonunique), j : singleton) }>>)
// CHECK: func.func private @coo(tensor<8x8xf32, #sparse_tensor.encoding<{ map = (d0, d1) -> (d0 : compressed(nonunique), d1 : singleton) }>>)

func.func private @soa(tensor<4x4x4xf32, #sparse_tensor.encoding<{ map = (i, j, k) -> (i : compressed(nonunique), j : singleton(soa, nonunique), k : singleton(soa)) }>>)
// CHECK: func.func private @soa(tensor<4x4x4xf32, #sparse_tensor.encoding<{ map = (d0, d1, d2) -> (d0 : compressed(nonunique), d1 : singleton(nonunique, soa), d2 : singleton(soa)) }>>)

func.func private @bsr(tensor<8x9xf32, #sparse_tensor.encoding<{ map = (i, j) -> (i floordiv 2 : dense, j floordiv 3 : compressed, i mod 2 : dense, j mod 3 : dense) }>>)
// CHECK: func.func private @bsr(tensor<8x9xf32, #sparse_tensor.encoding<{ map = (d0, d1) -> (d0 floordiv 2 : dense, d1 floordiv 3 : compressed, d0 mod 2 : dense, d1 mod 3 : dense) }>>)

func.func private @nv_2_4(tensor<8x8xf16, #sparse_tensor.encoding<{ map = (i, j) -> (i : dense, j floordiv 4 : dense, j mod 4 : structured[2, 4]), crdWidth = 8 }>>)
// CHECK: func.func private @nv_2_4(tensor<8x8xf16, #sparse_tensor.encoding<{ map = (d0, d1) -> (d0 : dense, d1 floordiv 4 : dense, d1 mod 4 : structured[2, 4]), crdWidth = 8 }>>)

func.func private @batch(tensor<2x8x8xf32, #sparse_tensor.encoding<{ map = (b, i, j) -> (b : batch, i : dense, j : compressed) }>>)
// CHECK: func.func private @batch(tensor<2x8x8xf32, #sparse_tensor.encoding<{ map = (d0, d1, d2) -> (d0 : batch, d1 : dense, d2 : compressed) }>>)

func.func private @loose(tensor<8x8xf32, #sparse_tensor.encoding<{ map = (i, j) -> (i : dense, j : loose_compressed) }>>)
// CHECK: func.func private @loose(tensor<8x8xf32, #sparse_tensor.encoding<{ map = (d0, d1) -> (d0 : dense, d1 : loose_compressed) }>>)

func.func private @widths(tensor<8x8xf32, #sparse_tensor.encoding<{ map = (i, j) -> (i : dense, j : compressed), crdWidth = 16, posWidth = 32 }>>)
// CHECK: func.func private @widths(tensor<8x8xf32, #sparse_tensor.encoding<{ map = (d0, d1) -> (d0 : dense, d1 : compressed), posWidth = 32, crdWidth = 16 }>>)

func.func private @values(tensor<8x8xf32, #sparse_tensor.encoding<{ map = (i, j) -> (i : dense, j : compressed), explicitVal = 1.0 : f32, implicitVal = 0.0 : f32 }>>)
// CHECK: func.func private @values(tensor<8x8xf32, #sparse_tensor.encoding<{ map = (d0, d1) -> (d0 : dense, d1 : compressed), explicitVal = 1.000000e+00 : f32, implicitVal = 0.000000e+00 : f32 }>>)

func.func private @symbols(tensor<8x8xf32, #sparse_tensor.encoding<{ map = [s0](i, j) -> (i + s0 : dense, j : compressed) }>>)
// CHECK: func.func private @symbols(tensor<8x8xf32, #sparse_tensor.encoding<{ map = [s0](d0, d1) -> (d0 + s0 : dense, d1 : compressed) }>>)

func.func private @level_vars(tensor<8x9xf32, #sparse_tensor.encoding<{ map = {l0, l1, l2, l3} (i = l0 * 2 + l2, j = l1 * 3 + l3) -> (l0 = i floordiv 2 : dense, l1 = j floordiv 3 : compressed, l2 = i mod 2 : dense, l3 = j mod 3 : dense) }>>)
// CHECK: func.func private @level_vars(tensor<8x9xf32, #sparse_tensor.encoding<{ map = (d0, d1) -> (d0 floordiv 2 : dense, d1 floordiv 3 : compressed, d0 mod 2 : dense, d1 mod 3 : dense) }>>)

func.func private @slices(tensor<8x8xf32, #sparse_tensor.encoding<{ map = (i : #sparse_tensor<slice(1, 4, 1)>, j) -> (i : dense, j : compressed) }>>)
// CHECK: func.func private @slices(tensor<8x8xf32, #sparse_tensor.encoding<{ map = (d0 : #sparse_tensor<slice(1, 4, 1)>, d1 : #sparse_tensor<slice(0, ?, 1)>) -> (d0 : dense, d1 : compressed) }>>)
