// RUN: xdsl-opt %s -p 'lower-stc{path=kernel fill_sms=false}' | filecheck %s --check-prefix=SPARSE
// RUN: xdsl-opt %s -p 'lower-stc{path=kernel sparse=false fill_sms=false}' | filecheck %s --check-prefix=DENSE
// RUN: xdsl-opt %s -p 'lower-stc{path=kernel preset=h100 fill_sms=false}' | filecheck %s --check-prefix=H100
// RUN: xdsl-opt %s -p 'lower-stc{path=kernel sparse=false tile_m=16 tile_n=8 swizzle=2}' | filecheck %s --check-prefix=SWIZZLE
// RUN: xdsl-opt %s -p 'lower-stc{path=kernel sms=8}' | filecheck %s --check-prefix=FILL
// RUN: xdsl-opt %s -p 'lower-stc{sparse_library=cusparselt}' | filecheck %s --check-prefix=LIB
// RUN: xdsl-opt %s -p 'lower-stc{sms=8 sparse_library=cusparselt}' | filecheck %s --check-prefix=LIBFILL
// RUN: xdsl-opt %s -p 'lower-stc{copy_out=true sparse_library=cusparselt}' | filecheck %s --check-prefix=LIBCOPY
// RUN: xdsl-opt %s -p 'lower-stc{sparse=false}' | filecheck %s --check-prefix=LIBDENSE
// RUN: xdsl-opt %s -p 'lower-stc{sparse_library=cutlass}' | filecheck %s --check-prefix=CUTLASS
// RUN: xdsl-opt %s -p 'lower-stc{sparse_library=cusparselt}' | xdsl-opt | filecheck %s --check-prefix=LIB

// path=kernel (the first five RUN lines): one ideal kernel per matmul. The default
// path=library (LIB*, CUTLASS) adds what PyTorch runs through cuSPARSELt: a launch
// before every kernel, the dense operand padded to a multiple of 32 rows (f16/bf16; 64
// for i8), the 2:4 GEMM on the padded problem without the fill-SMs split, its result
// stored transposed (Y^T = W . X^T) and handed back as a strided view (copy_out=true:
// a launch and a copy kernel). The last RUN line checks the ISA parses back.

// Y = X . W with W (K x N = 72 x 200) 2:4 along K (its dim 0). The hardware's sparse
// operand is mma's A, so the 2:4 run computes Y^T = W^T . X^T: tiles are
// (rows of W^T = N) x (columns = M), `sparse = "rhs"`, ranges still in Y's coordinates.
// A100 tiles are 128x128x32 f16, shrunk to the problem rounded up to the mma's 16 x 8:
// sparse rows min(128, 208) = 128, cols min(128, 40) = 40; dense rows min(128, 48) = 48.

func.func @w24() -> tensor<40x200xf16> {
  %X = sparsec.input @X : tensor<40x72xf16>
  %W = sparsec.param @W : tensor<72x200xf16, #sparse_tensor.encoding<{ map = (d0, d1) -> (d1 : dense, d0 floordiv 4 : dense, d0 mod 4 : structured[2, 4]) }>>
  %Y = sparsec.matmul %X, %W : (tensor<40x72xf16>, tensor<72x200xf16, #sparse_tensor.encoding<{ map = (d0, d1) -> (d1 : dense, d0 floordiv 4 : dense, d0 mod 4 : structured[2, 4]) }>>) -> tensor<40x200xf16>
  func.return %Y : tensor<40x200xf16>
}

// SPARSE-LABEL: func.func @w24
// SPARSE:       %[[ACC:.*]] = stc.zeros : tensor<40x200xf16>
// SPARSE-NEXT:  %[[WC:.*]] = stc.compress %W : tensor<72x200xf16, #sparse_tensor.encoding<{ map = (d0, d1) -> (d1 : dense, d0 floordiv 4 : dense, d0 mod 4 : structured[2, 4]) }>>
// SPARSE-NEXT:  %[[T0:.*]] = stc.tile %X, %[[WC]], %[[ACC]] {index = 0 : i64, m = array<i64: 0, 40>, n = array<i64: 0, 128>, tile = array<i64: 128, 40, 32>, sparse = "rhs"}
// SPARSE-NEXT:  %[[T1:.*]] = stc.tile %X, %[[WC]], %[[T0]] {index = 1 : i64, m = array<i64: 0, 40>, n = array<i64: 128, 200>, tile = array<i64: 128, 40, 32>, sparse = "rhs"}
// SPARSE-NEXT:  %{{.*}} = stc.store %[[T1]] : tensor<40x200xf16> -> tensor<40x200xf16>
// SPARSE-NOT:   sparsec.matmul

// Library path: M = 40 rows of X are padded to 64 (a multiple of 32) by their own
// kernel; the 2:4 GEMM runs 64 x 200 (rows N = 200, cols padded M = 64: tile 128x64).
// LIB-LABEL: func.func @w24
// LIB:       stc.launch {kernel = "pad"}
// LIB-NEXT:  %[[XP:.*]] = stc.pad %X {dim = 0 : i64, multiple = 32 : i64} : tensor<40x72xf16> -> tensor<64x72xf16>
// LIB-NEXT:  stc.launch {kernel = "sparse_gemm"}
// LIB-NEXT:  %[[ACC:.*]] = stc.zeros : tensor<64x200xf16>
// LIB-NEXT:  %[[WC:.*]] = stc.compress %W
// LIB-NEXT:  %[[T0:.*]] = stc.tile %[[XP]], %[[WC]], %[[ACC]] {index = 0 : i64, m = array<i64: 0, 64>, n = array<i64: 0, 128>, tile = array<i64: 128, 64, 32>, sparse = "rhs"}
// LIB-NEXT:  %[[T1:.*]] = stc.tile %[[XP]], %[[WC]], %[[T0]] {index = 1 : i64, m = array<i64: 0, 64>, n = array<i64: 128, 200>, tile = array<i64: 128, 64, 32>, sparse = "rhs"}
// LIB-NEXT:  %[[YT:.*]] = stc.store %[[T1]] {transpose} : tensor<64x200xf16> -> tensor<200x64xf16>
// LIB-NEXT:  %[[Y:.*]] = stc.copy_out %[[YT]] {transpose, view} : tensor<200x64xf16> -> tensor<40x200xf16>
// LIB-NEXT:  func.return %[[Y]] : tensor<40x200xf16>

// On 8 SMs the kernel path splits its tile (FILL below); the library's 2:4 kernel keeps
// its 2 tiles of 128x64.
// LIBFILL-LABEL: func.func @w24
// LIBFILL:       stc.tile {{.*}}index = 1 : i64, m = array<i64: 0, 64>, n = array<i64: 128, 200>, tile = array<i64: 128, 64, 32>, sparse = "rhs"}
// LIBFILL-NEXT:  stc.store

// copy_out=true: the transposed result is copied into a contiguous 40x200 tensor by a
// third kernel.
// LIBCOPY-LABEL: func.func @w24
// LIBCOPY:       %[[YT:.*]] = stc.store %{{.*}} {transpose} : tensor<64x200xf16> -> tensor<200x64xf16>
// LIBCOPY-NEXT:  stc.launch {kernel = "copy_out"}
// LIBCOPY-NEXT:  stc.copy_out %[[YT]] {transpose} : tensor<200x64xf16> -> tensor<40x200xf16>

// Dense on the library path: cuBLAS, one launch, the kernel path's tiles (split to fill
// the SMs: 40x200 on 108 SMs gives 3 x 25 = 75 tiles of 16x8), no pad, no copy.
// LIBDENSE-LABEL: func.func @w24
// LIBDENSE:       stc.launch {kernel = "gemm"}
// LIBDENSE-NEXT:  stc.zeros : tensor<40x200xf16>
// LIBDENSE-NEXT:  stc.tile %X, %W, %{{.*}} {index = 0 : i64, m = array<i64: 0, 16>, n = array<i64: 0, 8>, tile = array<i64: 16, 8, 32>}
// LIBDENSE:       stc.tile %X, %W, %{{.*}} {index = 74 : i64,
// LIBDENSE-NEXT:  stc.store %{{.*}} : tensor<40x200xf16> -> tensor<40x200xf16>
// LIBDENSE-NEXT:  func.return

// sparse_library=cutlass: a fixed tile, not shrunk to the 64 padded columns.
// CUTLASS-LABEL: func.func @w24
// CUTLASS:       stc.tile {{.*}}index = 0 : i64, m = array<i64: 0, 64>, n = array<i64: 0, 128>, tile = array<i64: 128, 128, 32>, sparse = "rhs"}

// DENSE-LABEL: func.func @w24
// DENSE:       stc.zeros
// DENSE-NOT:   stc.compress
// DENSE-NEXT:  stc.tile %X, %W, %{{.*}} {index = 0 : i64, m = array<i64: 0, 40>, n = array<i64: 0, 128>, tile = array<i64: 48, 128, 32>} :
// DENSE-NEXT:  stc.tile %X, %W, %{{.*}} {index = 1 : i64, m = array<i64: 0, 40>, n = array<i64: 128, 200>, tile = array<i64: 48, 128, 32>} :
// DENSE-NEXT:  stc.store

// fill_sms (default): 2 tiles would leave 6 of 8 SMs idle, so the 128x40 tile (rows = N
// = 200, cols = M = 40) is split into power-of-two multiples of 16 x 8, keeping the split
// with the most tiles that fit one wave: 128x32 -> 2*2 = 4, 128x16 -> 2*3 = 6, 32x40 ->
// 7*1 = 7, 64x32 -> 4*2 = 8 (128x8 -> 2*5 = 10 and 64x16 -> 4*3 = 12 exceed 8 SMs).
// FILL-LABEL: func.func @w24
// FILL:       stc.tile {{.*}}index = 0 : i64, m = array<i64: 0, 32>, n = array<i64: 0, 64>, tile = array<i64: 64, 32, 32>, sparse = "rhs"}
// FILL:       stc.tile {{.*}}index = 7 : i64, m = array<i64: 32, 40>, n = array<i64: 192, 200>, tile = array<i64: 64, 32, 32>, sparse = "rhs"}
// FILL-NEXT:  stc.store

// H100 tiles are 128x256x64: rows min(128, 208) = 128, cols min(256, 40) = 40.
// H100-LABEL: func.func @w24
// H100:       stc.tile {{.*}}index = 0 : i64, m = array<i64: 0, 40>, n = array<i64: 0, 128>, tile = array<i64: 128, 40, 64>, sparse = "rhs"}
// H100:       stc.tile {{.*}}index = 1 : i64, m = array<i64: 0, 40>, n = array<i64: 128, 200>, tile = array<i64: 128, 40, 64>, sparse = "rhs"}

// Y = X . W^T with W (N x K = 24 x 64) 2:4 along K = its dim 1 (PyTorch's nn.Linear
// layout): W is A without a transpose of the data, the tiles still compute Y^T.

func.func @linear() -> tensor<16x24xbf16> {
  %X = sparsec.input @X : tensor<16x64xbf16>
  %W = sparsec.param @W : tensor<24x64xbf16, #sparse_tensor.encoding<{ map = (d0, d1) -> (d0 : dense, d1 floordiv 4 : dense, d1 mod 4 : structured[2, 4]) }>>
  %Y = sparsec.matmul %X, %W {transpose_b} : (tensor<16x64xbf16>, tensor<24x64xbf16, #sparse_tensor.encoding<{ map = (d0, d1) -> (d0 : dense, d1 floordiv 4 : dense, d1 mod 4 : structured[2, 4]) }>>) -> tensor<16x24xbf16>
  func.return %Y : tensor<16x24xbf16>
}

// SPARSE-LABEL: func.func @linear
// SPARSE:       stc.compress %W
// SPARSE-NEXT:  stc.tile %X, %{{.*}}, %{{.*}} {index = 0 : i64, m = array<i64: 0, 16>, n = array<i64: 0, 24>, tile = array<i64: 32, 16, 32>, sparse = "rhs", transpose_b} : (tensor<16x64xbf16>
// SPARSE-NEXT:  stc.store

// A (M x K = 20 x 128) 2:4 along K (dim 1) is the hardware's A as it stands: no swap.
// i8 chunks are 64 elements (the same 64 bytes per row as 32 f16).

func.func @a24() -> tensor<20x8xi32> {
  %A = sparsec.param @A : tensor<20x128xi8, #sparse_tensor.encoding<{ map = (d0, d1) -> (d0 : dense, d1 floordiv 4 : dense, d1 mod 4 : structured[2, 4]) }>>
  %B = sparsec.input @B : tensor<128x8xi8>
  %C = sparsec.matmul %A, %B : (tensor<20x128xi8, #sparse_tensor.encoding<{ map = (d0, d1) -> (d0 : dense, d1 floordiv 4 : dense, d1 mod 4 : structured[2, 4]) }>>, tensor<128x8xi8>) -> tensor<20x8xi32>
  func.return %C : tensor<20x8xi32>
}

// SPARSE-LABEL: func.func @a24
// SPARSE:       %[[AC:.*]] = stc.compress %A
// SPARSE-NEXT:  stc.tile %[[AC]], %B, %{{.*}} {index = 0 : i64, m = array<i64: 0, 20>, n = array<i64: 0, 8>, tile = array<i64: 32, 8, 64>, sparse = "lhs"} : (tensor<20x128xi8
// SPARSE-NEXT:  stc.store

// Library path, 2:4 lhs: the dense B's N = 8 columns are padded to 64 (i8); the result
// is not transposed, only sliced (a view).
// LIB-LABEL: func.func @a24
// LIB:       stc.launch {kernel = "pad"}
// LIB-NEXT:  %[[BP:.*]] = stc.pad %B {dim = 1 : i64, multiple = 64 : i64} : tensor<128x8xi8> -> tensor<128x64xi8>
// LIB-NEXT:  stc.launch {kernel = "sparse_gemm"}
// LIB-NEXT:  stc.zeros : tensor<20x64xi32>
// LIB-NEXT:  %[[AC:.*]] = stc.compress %A
// LIB-NEXT:  stc.tile %[[AC]], %[[BP]], %{{.*}} {index = 0 : i64, m = array<i64: 0, 20>, n = array<i64: 0, 64>, tile = array<i64: 32, 64, 64>, sparse = "lhs"}
// LIB-NEXT:  %[[C:.*]] = stc.store %{{.*}} : tensor<20x64xi32> -> tensor<20x64xi32>
// LIB-NEXT:  stc.copy_out %[[C]] {view} : tensor<20x64xi32> -> tensor<20x8xi32>
// LIBCOPY-LABEL: func.func @a24
// LIBCOPY:       stc.launch {kernel = "copy_out"}
// LIBCOPY-NEXT:  stc.copy_out %{{.*}} : tensor<20x64xi32> -> tensor<20x8xi32>
// H100-LABEL: func.func @a24
// H100:       tile = array<i64: 32, 8, 128>, sparse = "lhs"}

// Launch order: CUTLASS's swizzle in strips of `swizzle` tile-columns, columns fastest.
// 32x24 with 16x8 tiles = 2 x 3 tiles; swizzle=2: strip {c0, c1}: (r0,c0) (r0,c1)
// (r1,c0) (r1,c1), then strip {c2}: (r0,c2) (r1,c2).

func.func @order() -> tensor<32x24xf16> {
  %A = sparsec.input @A : tensor<32x16xf16>
  %B = sparsec.param @B : tensor<16x24xf16, #sparse_tensor.encoding<{ map = (d0, d1) -> (d1 : dense, d0 floordiv 4 : dense, d0 mod 4 : structured[2, 4]) }>>
  %C = sparsec.matmul %A, %B : (tensor<32x16xf16>, tensor<16x24xf16, #sparse_tensor.encoding<{ map = (d0, d1) -> (d1 : dense, d0 floordiv 4 : dense, d0 mod 4 : structured[2, 4]) }>>) -> tensor<32x24xf16>
  func.return %C : tensor<32x24xf16>
}

// SWIZZLE-LABEL: func.func @order
// SWIZZLE:       stc.tile {{.*}}index = 0 : i64, m = array<i64: 0, 16>, n = array<i64: 0, 8>, tile = array<i64: 16, 8, 32>}
// SWIZZLE-NEXT:  stc.tile {{.*}}index = 1 : i64, m = array<i64: 0, 16>, n = array<i64: 8, 16>, tile = array<i64: 16, 8, 32>}
// SWIZZLE-NEXT:  stc.tile {{.*}}index = 2 : i64, m = array<i64: 16, 32>, n = array<i64: 0, 8>, tile = array<i64: 16, 8, 32>}
// SWIZZLE-NEXT:  stc.tile {{.*}}index = 3 : i64, m = array<i64: 16, 32>, n = array<i64: 8, 16>, tile = array<i64: 16, 8, 32>}
// SWIZZLE-NEXT:  stc.tile {{.*}}index = 4 : i64, m = array<i64: 0, 16>, n = array<i64: 16, 24>, tile = array<i64: 16, 8, 32>}
// SWIZZLE-NEXT:  stc.tile {{.*}}index = 5 : i64, m = array<i64: 16, 32>, n = array<i64: 16, 24>, tile = array<i64: 16, 8, 32>}
// SWIZZLE-NEXT:  stc.store

// Library path with M = 32 (already a multiple of 32): no pad, the result is still
// transposed.
// LIB-LABEL: func.func @order
// LIB-NOT:   stc.pad
// LIB:       stc.launch {kernel = "sparse_gemm"}
// LIB:       stc.store %{{.*}} {transpose} : tensor<32x24xf16> -> tensor<24x32xf16>
// LIB-NEXT:  stc.copy_out %{{.*}} {transpose, view} : tensor<24x32xf16> -> tensor<32x24xf16>
