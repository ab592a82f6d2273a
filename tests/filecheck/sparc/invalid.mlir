// RUN: xdsl-opt %s --split-input-file --verify-diagnostics -p 'lower-sparc' | filecheck %s
// RUN: xdsl-opt %s --split-input-file --verify-diagnostics -p 'lower-sparc{buffer_kb=1}' | filecheck %s --check-prefix=BUFFER
// RUN: xdsl-opt %s --split-input-file --verify-diagnostics -p 'lower-sparc{cache_line_words=2}' | filecheck %s --check-prefix=LINE

// One case per verifier rule of #sparsec.row_clustered and of the sparc ISA, then each
// refusal of lower-sparc. The BUFFER and LINE runs check the capacity refusals on the
// one attention that lowers under the default spec.

%q = sparsec.input @Q : tensor<8x4xf32, #sparsec.row_clustered<block = 0, columns = [[0]], clusters = [[1]]>>
// CHECK: sparsec.row_clustered: block must be >= 1, got 0

// -----

%q = sparsec.input @Q : tensor<8x4xf32, #sparsec.row_clustered<block = 4, columns = [[0], [1]], clusters = [[1, 1]]>>
// CHECK: sparsec.row_clustered: columns and clusters need one list per head, got 2 and 1

// -----

%q = sparsec.input @Q : tensor<2x8x4xf32, #sparsec.row_clustered<block = 4, columns = [[0], [1, 2]], clusters = [[1, 1], [1, 1]]>>
// CHECK: sparsec.row_clustered: every head needs the same number (>= 1) of key columns

// -----

%q = sparsec.input @Q : tensor<8x4xf32, #sparsec.row_clustered<block = 4, columns = [[1, 1]], clusters = [[1, 1]]>>
// CHECK: sparsec.row_clustered: columns of head 0 must be distinct and >= 0, got [1, 1]

// -----

%q = sparsec.input @Q : tensor<8x4xf32, #sparsec.row_clustered<block = 4, columns = [[1]], clusters = [[1, 0]]>>
// CHECK: sparsec.row_clustered: clusters of head 0 must be >= 1 per block, got [1, 0]

// -----

%q = sparsec.input @Q : tensor<8xf32, #sparsec.row_clustered<block = 4, columns = [[0]], clusters = [[1, 1]]>>
// CHECK: sparsec.row_clustered: expected a query [T, d] or [heads, T, d], got 8

// -----

%q = sparsec.input @Q : tensor<2x8x4xf32, #sparsec.row_clustered<block = 4, columns = [[0]], clusters = [[1, 1]]>>
// CHECK: sparsec.row_clustered: columns and clusters for 1 head(s), but the query has 2

// -----

%q = sparsec.input @Q : tensor<8x4xf32, #sparsec.row_clustered<block = 4, columns = [[4]], clusters = [[1, 1]]>>
// CHECK: sparsec.row_clustered: a key column exceeds the query's last dimension d = 4

// -----

%q = sparsec.input @Q : tensor<6x4xf32, #sparsec.row_clustered<block = 4, columns = [[0]], clusters = [[1]]>>
// CHECK: sparsec.row_clustered: head 0 has 1 cluster counts, but 6 rows in blocks of 4 make 2 blocks

// -----

%q = sparsec.input @Q : tensor<6x4xf32, #sparsec.row_clustered<block = 4, columns = [[0]], clusters = [[4, 3]]>>
// CHECK: sparsec.row_clustered: block 1 of head 0 has 2 rows but 3 clusters

// -----

%q = "test.op"() : () -> tensor<2x8x4xf32>
sparc.load %q {head = 2 : i64, slot = 0 : i64} : tensor<2x8x4xf32>
// CHECK: sparc.load: head 2 is out of range for 2 head(s)

// -----

%q = "test.op"() : () -> tensor<8x4xf32>
sparc.load %q {head = 0 : i64, slot = -1 : i64} : tensor<8x4xf32>
// CHECK: sparc.load: slot must be >= 0, got -1

// -----

%q = "test.op"() : () -> tensor<8x4xf32>
%k = "test.op"() : () -> tensor<6x5xf32>
%l = sparc.lowrank %q, %k {head = 0 : i64, rows = array<i64: 0, 4>, columns = array<i64: 0>, scale = 1.0 : f64} : (tensor<8x4xf32>, tensor<6x5xf32>) -> tensor<4x6xf32>
// CHECK: sparc.lowrank: query and key must agree in heads and their last dimension

// -----

%q = "test.op"() : () -> tensor<8x4xf32>
%k = "test.op"() : () -> tensor<6x4xf32>
%l = sparc.lowrank %q, %k {head = 0 : i64, rows = array<i64: 4, 9>, columns = array<i64: 0>, scale = 1.0 : f64} : (tensor<8x4xf32>, tensor<6x4xf32>) -> tensor<5x6xf32>
// CHECK: sparc.lowrank: rows must be array<i64: r0, r1> with 0 <= r0 < r1 <= 8 (the query's rows), got [4, 9]

// -----

%q = "test.op"() : () -> tensor<8x4xf32>
%k = "test.op"() : () -> tensor<6x4xf32>
%l = sparc.lowrank %q, %k {head = 0 : i64, rows = array<i64: 0, 4>, columns = array<i64: 0, 4>, scale = 1.0 : f64} : (tensor<8x4xf32>, tensor<6x4xf32>) -> tensor<4x6xf32>
// CHECK: sparc.lowrank: columns must be distinct key columns in [0, 4), got [0, 4]

// -----

%q = "test.op"() : () -> tensor<8x4xf32>
%k = "test.op"() : () -> tensor<6x4xf32>
%l = sparc.lowrank %q, %k {head = 0 : i64, rows = array<i64: 0, 4>, columns = array<i64: 0>, scale = 1.0 : f64} : (tensor<8x4xf32>, tensor<6x4xf32>) -> tensor<4x8xf32>
// CHECK: sparc.lowrank: result (rows x keys) must be 4x6, got tensor<4x8xf32>

// -----

%q = "test.op"() : () -> tensor<8x4xf32>
%k = "test.op"() : () -> tensor<6x4xf16>
%l = sparc.lowrank %q, %k {head = 0 : i64, rows = array<i64: 0, 4>, columns = array<i64: 0>, scale = 1.0 : f64} : (tensor<8x4xf32>, tensor<6x4xf16>) -> tensor<4x6xf32>
// CHECK: sparc.lowrank: operands and result must share one element type, got f16, f32

// -----

%l = "test.op"() : () -> tensor<4x6xf32>
%a = sparc.cluster %l {clusters = 5 : i64} : tensor<4x6xf32> -> tensor<4xi32>
// CHECK: sparc.cluster: clusters must lie in [1, 4] (the block's rows), got 5

// -----

%l = "test.op"() : () -> tensor<4x6xf32>
%a = sparc.cluster %l {clusters = 2 : i64} : tensor<4x6xf32> -> tensor<4xi64>
// CHECK: sparc.cluster: result must be tensor<4xi32>, got tensor<4xi64>

// -----

%a = sparc.singletons : tensor<2x2xi32>
// CHECK: sparc.singletons: result must be tensor<nxi32>, got tensor<2x2xi32>

// -----

%q = "test.op"() : () -> tensor<8x4xf32>
%a = "test.op"() : () -> tensor<3xi32>
%c = sparc.centroids %q, %a {head = 0 : i64, rows = array<i64: 0, 4>, clusters = 2 : i64} : (tensor<8x4xf32>, tensor<3xi32>) -> tensor<2x4xf32>
// CHECK: sparc.centroids: assignment (one per row) must be 4, got tensor<3xi32>

// -----

%q = "test.op"() : () -> tensor<8x4xf32>
%a = "test.op"() : () -> tensor<4xi32>
%c = sparc.centroids %q, %a {head = 0 : i64, rows = array<i64: 0, 4>, clusters = 5 : i64} : (tensor<8x4xf32>, tensor<4xi32>) -> tensor<5x4xf32>
// CHECK: sparc.centroids: clusters must lie in [1, 4], got 5

// -----

%q = "test.op"() : () -> tensor<8x4xf32>
%a = "test.op"() : () -> tensor<4xi32>
%c = sparc.centroids %q, %a {head = 0 : i64, rows = array<i64: 0, 4>, clusters = 2 : i64} : (tensor<8x4xf32>, tensor<4xi32>) -> tensor<2x3xf32>
// CHECK: sparc.centroids: result (clusters x d) must be 2x4, got tensor<2x3xf32>

// -----

%c = "test.op"() : () -> tensor<2x3xf32>
%k = "test.op"() : () -> tensor<6x4xf32>
%s = sparc.scores %c, %k {head = 0 : i64, scale = 1.0 : f64} : (tensor<2x3xf32>, tensor<6x4xf32>) -> tensor<2x6xf32>
// CHECK: sparc.scores: centroids have d = 3 but keys d = 4

// -----

%c = "test.op"() : () -> tensor<2x4xf32>
%k = "test.op"() : () -> tensor<6x4xf32>
%s = sparc.scores %c, %k {head = 0 : i64, scale = 1.0 : f64} : (tensor<2x4xf32>, tensor<6x4xf32>) -> tensor<2x5xf32>
// CHECK: sparc.scores: result (clusters x keys) must be 2x6, got tensor<2x5xf32>

// -----

%s = "test.op"() : () -> tensor<2x6xf32>
%p = sparc.softmax %s : tensor<2x6xf32> -> tensor<2x6xf16>
// CHECK: sparc.softmax: result type must equal the scores' type

// -----

%p = "test.op"() : () -> tensor<2x6xf32>
%v = "test.op"() : () -> tensor<5x3xf32>
%o = sparc.av %p, %v {head = 0 : i64} : (tensor<2x6xf32>, tensor<5x3xf32>) -> tensor<2x3xf32>
// CHECK: sparc.av: probs have 6 keys but value has 5 rows

// -----

%p = "test.op"() : () -> tensor<2x6xf32>
%v = "test.op"() : () -> tensor<6x3xf32>
%o = sparc.av %p, %v {head = 0 : i64} : (tensor<2x6xf32>, tensor<6x3xf32>) -> tensor<2x4xf32>
// CHECK: sparc.av: result (clusters x e) must be 2x3, got tensor<2x4xf32>

// -----

%o = "test.op"() : () -> tensor<2x3xf32>
%a = "test.op"() : () -> tensor<4xi32>
%acc = sparc.zeros : tensor<8x3xf32>
%r = sparc.expand %o, %a, %acc {head = 0 : i64, rows = array<i64: 0, 4>} : (tensor<2x3xf32>, tensor<4xi32>, tensor<8x3xf32>) -> tensor<8x4xf32>
// CHECK: sparc.expand: result type must equal the accumulator's

// -----

%o = "test.op"() : () -> tensor<2x2xf32>
%a = "test.op"() : () -> tensor<4xi32>
%acc = sparc.zeros : tensor<8x3xf32>
%r = sparc.expand %o, %a, %acc {head = 0 : i64, rows = array<i64: 0, 4>} : (tensor<2x2xf32>, tensor<4xi32>, tensor<8x3xf32>) -> tensor<8x3xf32>
// CHECK: sparc.expand: outputs have 2 columns but the accumulator has e = 3

// -----

%o = "test.op"() : () -> tensor<2x3xf32>
%a = "test.op"() : () -> tensor<4xi32>
%acc = sparc.zeros : tensor<8x3xf32>
%r = sparc.expand %o, %a, %acc {head = 0 : i64, rows = array<i64: 2, 4>} : (tensor<2x3xf32>, tensor<4xi32>, tensor<8x3xf32>) -> tensor<8x3xf32>
// CHECK: sparc.expand: assignment (one per row) must be 2, got tensor<4xi32>

// -----

// lower-sparc refuses attention whose query is not row-clustered.
func.func @dense() -> tensor<8x4xf32> {
  %Q = sparsec.input @Q : tensor<8x4xf32>
  %K = sparsec.input @K : tensor<8x4xf32>
  %V = sparsec.input @V : tensor<8x4xf32>
  %O = sparsec.attention %Q, %K, %V {scale = 0.5 : f64} : (tensor<8x4xf32>, tensor<8x4xf32>, tensor<8x4xf32>) -> tensor<8x4xf32>
  func.return %O : tensor<8x4xf32>
}
// CHECK: sparc: operand Q of sparsec.attention is not row-clustered; run cluster-rows{threshold=0.2 rank=0.15 block=64} first

// -----

func.func @causal() -> tensor<8x4xf32> {
  %Q = sparsec.input @Q : tensor<8x4xf32, #sparsec.row_clustered<block = 8, columns = [[0]], clusters = [[2]]>>
  %K = sparsec.input @K : tensor<8x4xf32>
  %V = sparsec.input @V : tensor<8x4xf32>
  %O = sparsec.attention %Q, %K, %V {scale = 0.5 : f64, mask = "causal"} : (tensor<8x4xf32, #sparsec.row_clustered<block = 8, columns = [[0]], clusters = [[2]]>>, tensor<8x4xf32>, tensor<8x4xf32>) -> tensor<8x4xf32>
  func.return %O : tensor<8x4xf32>
}
// CHECK: sparc: sparsec.attention has mask=causal; SpARC clusters rows of unmasked (encoder) attention only

// -----

func.func @gemm() -> tensor<8x4xf32> {
  %X = sparsec.input @X : tensor<8x4xf32>
  %W = sparsec.param @W : tensor<4x4xf32>
  %Y = sparsec.matmul %X, %W : (tensor<8x4xf32>, tensor<4x4xf32>) -> tensor<8x4xf32>
  func.return %Y : tensor<8x4xf32>
}
// CHECK: sparc: sparsec.matmul is not an attention; SpARC runs sparsec.attention (undecomposed) only

// -----

// Lowers under the default spec; a 1 KB buffer (BUFFER) or 2-word cache lines (LINE) refuse.
func.func @fits() -> tensor<64x32xf32> {
  %Q = sparsec.input @Q : tensor<64x32xf32, #sparsec.row_clustered<block = 64, columns = [[0, 1]], clusters = [[8]]>>
  %K = sparsec.input @K : tensor<64x32xf32>
  %V = sparsec.input @V : tensor<64x32xf32>
  %O = sparsec.attention %Q, %K, %V {scale = 0.5 : f64} : (tensor<64x32xf32, #sparsec.row_clustered<block = 64, columns = [[0, 1]], clusters = [[8]]>>, tensor<64x32xf32>, tensor<64x32xf32>) -> tensor<64x32xf32>
  func.return %O : tensor<64x32xf32>
}
// CHECK: sparc.expand
// BUFFER: sparc: sparsec.attention needs 32768 bytes of global buffer (two heads of Q, K, V double-buffered, 24576, plus one block's low-rank scores, 8192) but buffer_kb=1 holds 1024; raise buffer_kb or use a smaller block in cluster-rows
// LINE: sparc: a cluster's state (max(d, e) = 32 words) does not fit one centroid-cache line of cache_line_words=2
