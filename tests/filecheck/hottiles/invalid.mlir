// RUN: xdsl-opt %s --split-input-file --parsing-diagnostics --verify-diagnostics -p 'lower-hottiles{hot_workers=1 cold_workers=2}' | filecheck %s

// One case per verifier rule of #sparsec.tiled, its syntax errors, each verifier rule of
// the hottiles ISA, then each refusal of `lower-hottiles` (run under xdsl-opt, where
// there is no DataStore).

%a = sparsec.param @A : tensor<8x8xf32, #sparsec.tiled<tile = [0, 4], workers = [1, 2]>>
// CHECK: sparsec.tiled: tile sizes must be >= 1, got [0, 4]

// -----

%a = sparsec.param @A : tensor<8x8xf32, #sparsec.tiled<tile = [4, 4], workers = [0, 0]>>
// CHECK: sparsec.tiled: workers must be >= 0 and not both 0, got [0, 0]

// -----

%a = sparsec.param @A : tensor<8x8xf32, #sparsec.tiled<tile = [4, 4], workers = [0, 2], hot = 1, cold = 1>>
// CHECK: sparsec.tiled: 1 hot tiles but no hot worker

// -----

%a = sparsec.param @A : tensor<8x8xf32, #sparsec.tiled<tile = [4, 4], workers = [2, 0], hot = 1, cold = 1>>
// CHECK: sparsec.tiled: 1 cold tiles but no cold worker

// -----

%a = sparsec.param @A : tensor<8x8xf32, #sparsec.tiled<tile = [4, 4], workers = [1, 1], hot = -1>>
// CHECK: sparsec.tiled: tile counts must be >= 0, got hot = -1, cold = 0

// -----

%a = sparsec.param @A : tensor<8x8xf32, #sparsec.tiled<tile = [4, 4], workers = [1, 1], policy = greedy>>
// CHECK: sparsec.tiled: policy must be one of hottiles, hotonly, coldonly, best, iunaware, random, roundrobin, got 'greedy'

// -----

%a = sparsec.param @A : tensor<8xf32, #sparsec.tiled<tile = [4, 4], workers = [1, 1]>>
// CHECK: sparsec.tiled: expected a matrix, got 8

// -----

%a = sparsec.param @A : tensor<8x8xf32, #sparsec.tiled<tile = [4, 4], workers = [1, 1], hot = 3, cold = 2>>
// CHECK: sparsec.tiled: 3 hot + 2 cold tiles exceed the 4 tiles of a 8x8 matrix in 4x4 tiles

// -----

%a = sparsec.param @A : tensor<8x8xf32, #sparsec.tiled<workers = [1, 1]>>
// CHECK: sparsec.tiled: 'tile' is required, e.g. #sparsec.tiled<tile = [256, 256], workers = [2, 16], hot = 3, cold = 40>

// -----

%a = sparsec.param @A : tensor<8x8xf32, #sparsec.tiled<tile = [4, 4], workers = [1, 1], rows = 2>>
// CHECK: sparsec.tiled: unknown key 'rows' (accepted: tile, workers, hot, cold, policy)

// -----

%a = sparsec.param @A : tensor<8x8xf32, #sparsec.tiled<tile = [4 4], workers = [1, 1]>>
// CHECK: between the two numbers of a pair

// -----

%a = "test.op"() : () -> tensor<8x8xf32, #sparsec.tiled<tile = [4, 4], workers = [1, 2], hot = 1, cold = 1>>
%b = "test.op"() : () -> tensor<8x4xf32>
%acc = hottiles.zeros : tensor<8x4xf32>
%r = hottiles.worker %a, %b, %acc {kind = "warm", index = 0 : i64} : (tensor<8x8xf32, #sparsec.tiled<tile = [4, 4], workers = [1, 2], hot = 1, cold = 1>>, tensor<8x4xf32>, tensor<8x4xf32>) -> tensor<8x4xf32>
// CHECK: hottiles.worker: kind must be hot or cold, got 'warm'

// -----

%a = "test.op"() : () -> tensor<8x8xf32, #sparsec.tiled<tile = [4, 4], workers = [1, 2], hot = 1, cold = 1>>
%b = "test.op"() : () -> tensor<8x4xf32>
%acc = hottiles.zeros : tensor<8x4xf32>
%r = hottiles.worker %a, %b, %acc {kind = "cold", index = 2 : i64} : (tensor<8x8xf32, #sparsec.tiled<tile = [4, 4], workers = [1, 2], hot = 1, cold = 1>>, tensor<8x4xf32>, tensor<8x4xf32>) -> tensor<8x4xf32>
// CHECK: hottiles.worker: cold worker 2 does not exist: the partition of lhs is for 2 cold workers

// -----

%a = "test.op"() : () -> tensor<8x8xf32>
%b = "test.op"() : () -> tensor<8x4xf32>
%acc = hottiles.zeros : tensor<8x4xf32>
%r = hottiles.worker %a, %b, %acc {kind = "hot", index = 0 : i64} : (tensor<8x8xf32>, tensor<8x4xf32>, tensor<8x4xf32>) -> tensor<8x4xf32>
// CHECK: hottiles.worker: lhs must be a matrix with a #sparsec.tiled partition (run tile-hot-cold), got tensor<8x8xf32>

// -----

%a = "test.op"() : () -> tensor<8x8xf32, #sparsec.tiled<tile = [4, 4], workers = [1, 2], hot = 1, cold = 1>>
%b = "test.op"() : () -> tensor<6x4xf32>
%acc = hottiles.zeros : tensor<8x4xf32>
%r = hottiles.worker %a, %b, %acc {kind = "hot", index = 0 : i64} : (tensor<8x8xf32, #sparsec.tiled<tile = [4, 4], workers = [1, 2], hot = 1, cold = 1>>, tensor<6x4xf32>, tensor<8x4xf32>) -> tensor<8x4xf32>
// CHECK: hottiles.worker: rhs must be a 8xN matrix (K = 8), got tensor<6x4xf32>

// -----

%a = "test.op"() : () -> tensor<8x8xf32, #sparsec.tiled<tile = [4, 4], workers = [1, 2], hot = 1, cold = 1>>
%b = "test.op"() : () -> tensor<8x4xf64>
%acc = hottiles.zeros : tensor<8x4xf32>
%r = hottiles.worker %a, %b, %acc {kind = "hot", index = 0 : i64} : (tensor<8x8xf32, #sparsec.tiled<tile = [4, 4], workers = [1, 2], hot = 1, cold = 1>>, tensor<8x4xf64>, tensor<8x4xf32>) -> tensor<8x4xf32>
// CHECK: hottiles.worker: lhs and rhs must have one element type

// -----

%a = "test.op"() : () -> tensor<8x8xf32, #sparsec.tiled<tile = [4, 4], workers = [1, 2], hot = 1, cold = 1>>
%b = "test.op"() : () -> tensor<8x4xf32>
%acc = hottiles.zeros : tensor<8x5xf32>
%r = hottiles.worker %a, %b, %acc {kind = "hot", index = 0 : i64} : (tensor<8x8xf32, #sparsec.tiled<tile = [4, 4], workers = [1, 2], hot = 1, cold = 1>>, tensor<8x4xf32>, tensor<8x5xf32>) -> tensor<8x5xf32>
// CHECK: hottiles.worker: accumulator must be 8x4 (M x N), got tensor<8x5xf32>

// -----

%a = "test.op"() : () -> tensor<8x8xf32, #sparsec.tiled<tile = [4, 4], workers = [1, 2], hot = 1, cold = 1>>
%b = "test.op"() : () -> tensor<8x4xf32>
%acc = hottiles.zeros : tensor<8x4xf32>
%r = hottiles.worker %a, %b, %acc {kind = "hot", index = 0 : i64} : (tensor<8x8xf32, #sparsec.tiled<tile = [4, 4], workers = [1, 2], hot = 1, cold = 1>>, tensor<8x4xf32>, tensor<8x4xf32>) -> tensor<8x4xf64>
// CHECK: hottiles.worker: result type must equal the accumulator's

// -----

%acc = hottiles.zeros : tensor<8x4xf32>
%r = hottiles.drain %acc : tensor<8x4xf32> -> tensor<4x8xf32>
// CHECK: hottiles.drain: result type must equal the accumulator's

// -----

// The lowering needs A's partition (tile-hot-cold, which the hottiles target adds).
func.func @untiled() -> tensor<8x4xf32> {
  %A = sparsec.param @A : tensor<8x8xf32>
  %B = sparsec.input @B : tensor<8x4xf32>
  %C = sparsec.matmul %A, %B : (tensor<8x8xf32>, tensor<8x4xf32>) -> tensor<8x4xf32>
  func.return %C : tensor<8x4xf32>
}
// CHECK: hottiles: operand A of sparsec.matmul has no #sparsec.tiled partition; run tile-hot-cold first (the hottiles target adds it under `sparsec compile` / `run`)

// -----

func.func @other_machine() -> tensor<8x4xf32> {
  %A = sparsec.param @A : tensor<8x8xf32, #sparsec.tiled<tile = [4, 4], workers = [2, 24], hot = 1, cold = 3>>
  %B = sparsec.input @B : tensor<8x4xf32>
  %C = sparsec.matmul %A, %B : (tensor<8x8xf32, #sparsec.tiled<tile = [4, 4], workers = [2, 24], hot = 1, cold = 3>>, tensor<8x4xf32>) -> tensor<8x4xf32>
  func.return %C : tensor<8x4xf32>
}
// CHECK: hottiles: operand A of sparsec.matmul is partitioned for 2 hot + 24 cold workers but the target (hottiles) has 1 hot + 2 cold workers; run tile-hot-cold with the target's options

// -----

func.func @transposed() -> tensor<8x4xf32> {
  %A = sparsec.param @A : tensor<8x8xf32, #sparsec.tiled<tile = [4, 4], workers = [1, 2], hot = 1, cold = 3>>
  %B = sparsec.input @B : tensor<4x8xf32>
  %C = sparsec.matmul %A, %B {transpose_b} : (tensor<8x8xf32, #sparsec.tiled<tile = [4, 4], workers = [1, 2], hot = 1, cold = 3>>, tensor<4x8xf32>) -> tensor<8x4xf32>
  func.return %C : tensor<8x4xf32>
}
// CHECK: hottiles: sparsec.matmul with transpose_a / transpose_b: HotTiles runs C = A . B
