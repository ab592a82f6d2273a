// RUN: xdsl-opt %s -p 'lower-hottiles{hot_workers=1 cold_workers=2}' | filecheck %s
// RUN: xdsl-opt %s -p 'lower-hottiles{hot_workers=1 cold_workers=2 seed=3}' | filecheck %s
// RUN: xdsl-opt %s -p 'lower-hottiles{hot_workers=1 cold_workers=2}' | xdsl-opt | filecheck %s

// C = A . B with A (96 x 80) already partitioned by tile-hot-cold into 32x32 tiles for
// 1 hot + 2 cold workers (5 hot, 4 cold non-empty tiles; the labels live in the
// DataStore, so the lowering reads only the IR). One instruction per worker, hot then
// cold, between the zeroed C and the drain; the policy of the target does not matter
// once A carries a partition for the target's worker counts.

func.func @k() -> tensor<96x8xf32> {
  %A = sparsec.param @A : tensor<96x80xf32, #sparsec.tiled<tile = [32, 32], workers = [1, 2], hot = 5, cold = 4, policy = hottiles>>
  %B = sparsec.input @B : tensor<80x8xf32>
  %C = sparsec.matmul %A, %B : (tensor<96x80xf32, #sparsec.tiled<tile = [32, 32], workers = [1, 2], hot = 5, cold = 4, policy = hottiles>>, tensor<80x8xf32>) -> tensor<96x8xf32>
  func.return %C : tensor<96x8xf32>
}

// CHECK-LABEL: func.func @k
// CHECK:       %[[ACC:.*]] = hottiles.zeros : tensor<96x8xf32>
// CHECK-NEXT:  %[[H0:.*]] = hottiles.worker %A, %B, %[[ACC]] {kind = "hot", index = 0 : i64} : (tensor<96x80xf32, #sparsec.tiled<tile = [32, 32], workers = [1, 2], hot = 5, cold = 4, policy = hottiles>>, tensor<80x8xf32>, tensor<96x8xf32>) -> tensor<96x8xf32>
// CHECK-NEXT:  %[[C0:.*]] = hottiles.worker %A, %B, %[[H0]] {kind = "cold", index = 0 : i64}
// CHECK-NEXT:  %[[C1:.*]] = hottiles.worker %A, %B, %[[C0]] {kind = "cold", index = 1 : i64}
// CHECK-NEXT:  %[[OUT:.*]] = hottiles.drain %[[C1]] : tensor<96x8xf32> -> tensor<96x8xf32>
// CHECK-NEXT:  func.return %[[OUT]] : tensor<96x8xf32>
// CHECK-NOT:   sparsec.matmul
