// RUN: xdsl-opt %s -p 'lower-sparc' | filecheck %s
// RUN: xdsl-opt %s -p 'lower-sparc{preset=paper}' | xdsl-opt | filecheck %s

// Two heads of 6 query rows in blocks of 4 (rows 0:4 and 4:6). Head 0's second block
// keeps both rows (2 clusters of 2 rows): sparc.singletons replaces lowrank + cluster.
// Every head has two blocks, so the pipeline runs two blocks ahead: block i+2's
// lowrank/cluster/centroids, then block i+1's scores/softmax, then block i's av/expand;
// a head's three loads (Q, K, V) come just before its first block's lowrank.

func.func @att() -> tensor<2x6x3xf32> {
  %Q = sparsec.input @Q : tensor<2x6x4xf32, #sparsec.row_clustered<block = 4, columns = [[0, 2], [1, 3]], clusters = [[2, 2], [1, 1]]>>
  %K = sparsec.input @K : tensor<2x8x4xf32>
  %V = sparsec.input @V : tensor<2x8x3xf32>
  %O = sparsec.attention %Q, %K, %V {scale = 0.5 : f64} : (tensor<2x6x4xf32, #sparsec.row_clustered<block = 4, columns = [[0, 2], [1, 3]], clusters = [[2, 2], [1, 1]]>>, tensor<2x8x4xf32>, tensor<2x8x3xf32>) -> tensor<2x6x3xf32>
  func.return %O : tensor<2x6x3xf32>
}

// CHECK-LABEL: func.func @att()
// CHECK:      %[[ACC:.*]] = sparc.zeros : tensor<2x6x3xf32>
// CHECK-NEXT: sparc.load %Q {head = 0 : i64, slot = 0 : i64}
// CHECK-NEXT: sparc.load %K {head = 0 : i64, slot = 0 : i64}
// CHECK-NEXT: sparc.load %V {head = 0 : i64, slot = 0 : i64}
// CHECK-NEXT: %[[L0:.*]] = sparc.lowrank %Q, %K {head = 0 : i64, rows = array<i64: 0, 4>, columns = array<i64: 0, 2>, scale = 5.000000e-01 : f64} : ({{.*}}) -> tensor<4x8xf32>
// CHECK-NEXT: %[[A0:.*]] = sparc.cluster %[[L0]] {clusters = 2 : i64} : tensor<4x8xf32> -> tensor<4xi32>
// CHECK-NEXT: %[[C0:.*]] = sparc.centroids %Q, %[[A0]] {head = 0 : i64, rows = array<i64: 0, 4>, clusters = 2 : i64} : ({{.*}}) -> tensor<2x4xf32>
// CHECK-NEXT: %[[A1:.*]] = sparc.singletons : tensor<2xi32>
// CHECK-NEXT: %[[C1:.*]] = sparc.centroids %Q, %[[A1]] {head = 0 : i64, rows = array<i64: 4, 6>, clusters = 2 : i64}
// CHECK-NEXT: %[[S0:.*]] = sparc.scores %[[C0]], %K {head = 0 : i64, scale = 5.000000e-01 : f64} : (tensor<2x4xf32>, tensor<2x8x4xf32>) -> tensor<2x8xf32>
// CHECK-NEXT: %[[P0:.*]] = sparc.softmax %[[S0]] : tensor<2x8xf32> -> tensor<2x8xf32>
// CHECK-NEXT: sparc.load %Q {head = 1 : i64, slot = 1 : i64}
// CHECK-NEXT: sparc.load %K {head = 1 : i64, slot = 1 : i64}
// CHECK-NEXT: sparc.load %V {head = 1 : i64, slot = 1 : i64}
// CHECK-NEXT: %[[L2:.*]] = sparc.lowrank %Q, %K {head = 1 : i64, rows = array<i64: 0, 4>, columns = array<i64: 1, 3>
// CHECK-NEXT: %[[A2:.*]] = sparc.cluster %[[L2]] {clusters = 1 : i64}
// CHECK-NEXT: %[[C2:.*]] = sparc.centroids %Q, %[[A2]] {head = 1 : i64, rows = array<i64: 0, 4>, clusters = 1 : i64} : ({{.*}}) -> tensor<1x4xf32>
// CHECK-NEXT: %[[S1:.*]] = sparc.scores %[[C1]], %K {head = 0 : i64
// CHECK-NEXT: %[[P1:.*]] = sparc.softmax %[[S1]]
// CHECK-NEXT: %[[O0:.*]] = sparc.av %[[P0]], %V {head = 0 : i64} : (tensor<2x8xf32>, tensor<2x8x3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT: %[[E0:.*]] = sparc.expand %[[O0]], %[[A0]], %[[ACC]] {head = 0 : i64, rows = array<i64: 0, 4>} : (tensor<2x3xf32>, tensor<4xi32>, tensor<2x6x3xf32>) -> tensor<2x6x3xf32>
// CHECK-NEXT: %[[L3:.*]] = sparc.lowrank %Q, %K {head = 1 : i64, rows = array<i64: 4, 6>
// CHECK-NEXT: %[[A3:.*]] = sparc.cluster %[[L3]] {clusters = 1 : i64} : tensor<2x8xf32> -> tensor<2xi32>
// CHECK-NEXT: %[[C3:.*]] = sparc.centroids %Q, %[[A3]] {head = 1 : i64, rows = array<i64: 4, 6>
// CHECK-NEXT: %[[S2:.*]] = sparc.scores %[[C2]], %K {head = 1 : i64
// CHECK-NEXT: %[[P2:.*]] = sparc.softmax %[[S2]]
// CHECK-NEXT: %[[O1:.*]] = sparc.av %[[P1]], %V {head = 0 : i64}
// CHECK-NEXT: %[[E1:.*]] = sparc.expand %[[O1]], %[[A1]], %[[E0]] {head = 0 : i64, rows = array<i64: 4, 6>}
// CHECK-NEXT: %[[S3:.*]] = sparc.scores %[[C3]], %K {head = 1 : i64
// CHECK-NEXT: %[[P3:.*]] = sparc.softmax %[[S3]]
// CHECK-NEXT: %[[O2:.*]] = sparc.av %[[P2]], %V {head = 1 : i64}
// CHECK-NEXT: %[[E2:.*]] = sparc.expand %[[O2]], %[[A2]], %[[E1]] {head = 1 : i64, rows = array<i64: 0, 4>}
// CHECK-NEXT: %[[O3:.*]] = sparc.av %[[P3]], %V {head = 1 : i64}
// CHECK-NEXT: %[[E3:.*]] = sparc.expand %[[O3]], %[[A3]], %[[E2]] {head = 1 : i64, rows = array<i64: 4, 6>}
// CHECK-NEXT: func.return %[[E3]] : tensor<2x6x3xf32>

// One head (rank 2) in one block: the pipeline runs one block ahead, so the block's
// stages follow one another; its loads take the kernel's next buffer slot (0 here:
// each function is its own kernel).

func.func @one_block() -> tensor<4x4xf32> {
  %Q = sparsec.input @Q : tensor<4x4xf32, #sparsec.row_clustered<block = 8, columns = [[3]], clusters = [[2]]>>
  %K = sparsec.input @K : tensor<5x4xf32>
  %V = sparsec.input @V : tensor<5x4xf32>
  %O = sparsec.attention %Q, %K, %V {scale = 0.5 : f64} : (tensor<4x4xf32, #sparsec.row_clustered<block = 8, columns = [[3]], clusters = [[2]]>>, tensor<5x4xf32>, tensor<5x4xf32>) -> tensor<4x4xf32>
  func.return %O : tensor<4x4xf32>
}

// CHECK-LABEL: func.func @one_block()
// CHECK:      sparc.zeros : tensor<4x4xf32>
// CHECK-NEXT: sparc.load %Q {head = 0 : i64, slot = 0 : i64}
// CHECK-NEXT: sparc.load %K {head = 0 : i64, slot = 0 : i64}
// CHECK-NEXT: sparc.load %V {head = 0 : i64, slot = 0 : i64}
// CHECK-NEXT: sparc.lowrank %Q, %K {head = 0 : i64, rows = array<i64: 0, 4>, columns = array<i64: 3>, scale = 5.000000e-01 : f64} : ({{.*}}) -> tensor<4x5xf32>
// CHECK-NEXT: sparc.cluster {{.*}} {clusters = 2 : i64} : tensor<4x5xf32> -> tensor<4xi32>
// CHECK-NEXT: sparc.centroids
// CHECK-NEXT: sparc.scores
// CHECK-NEXT: sparc.softmax
// CHECK-NEXT: sparc.av
// CHECK-NEXT: sparc.expand
// CHECK-NEXT: func.return
