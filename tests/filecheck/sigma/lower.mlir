// RUN: f=$(mktemp --suffix=.sk) && sed -n 's|^// SPEC: \{0,1\}||p' %s > $f && sparsec compile $f --target 'sigma{multipliers=8 dn_bw=8 rn_bw=8 stationary=auto}' -o - | filecheck %s --check-prefix=AUTO; s=$?; rm -f $f; exit $s
// RUN: f=$(mktemp --suffix=.sk) && sed -n 's|^// SPEC: \{0,1\}||p' %s > $f && sparsec compile $f --target 'sigma{multipliers=4 dn_bw=4 rn_bw=4 stationary=a}' -o - | filecheck %s --check-prefix=FOLD; s=$?; rm -f $f; exit $s
// RUN: xdsl-opt %s | xdsl-opt | filecheck %s --check-prefix=ROUND

// The kernel below (a 6x8 dense A times an 8x5 B of density 1/4) compiled for SIGMA.
// With stationary=auto, B stationary wins (its columns hold 1-3 nonzeros, padded to min_cluster = 3
// multipliers each, two columns per 8-multiplier iteration) over A's six dense rows of 8.
// On 4 multipliers (second run) each 8-long row of A folds: 4 ones, then 3 plus the partial-sum
// multiplier, then 1, each continuation marked `fold`.
//
// SPEC: kernel k {
// SPEC:   in    A: f32[6, 8] = random(seed=1)
// SPEC:   param B: f32[8, 5] = random(seed=2, density=0.25)
// SPEC:   C = matmul(A, B)
// SPEC:   out C
// SPEC: }

// AUTO:      %C = sigma.zeros : tensor<6x5xf32>
// AUTO-NEXT: %[[S:.*]] = sigma.pack %B {stationary = "b", transpose} : tensor<8x5xf32> -> tensor<5x8xf32, #sparsec.bitmap<order = row>>
// AUTO-NEXT: %[[I0:.*]] = sigma.iteration %[[S]], %A, %C {index = 0 : i64, stationary = "b", vectors = array<i64: 0, 2>, k = array<i64: 0, 8>}
// AUTO-NEXT: %[[I1:.*]] = sigma.iteration %[[S]], %A, %[[I0]] {index = 1 : i64, stationary = "b", vectors = array<i64: 2, 4>, k = array<i64: 0, 8>}
// AUTO-NEXT: %[[I2:.*]] = sigma.iteration %[[S]], %A, %[[I1]] {index = 2 : i64, stationary = "b", vectors = array<i64: 4, 5>, k = array<i64: 0, 8>}
// AUTO-NEXT: sigma.store %[[I2]] : tensor<6x5xf32> -> tensor<6x5xf32>
// AUTO-NOT:  sparsec.matmul

// FOLD:      sigma.pack %A {stationary = "a"} : tensor<6x8xf32> -> tensor<6x8xf32, #sparsec.bitmap<order = row>>
// FOLD-NEXT: sigma.iteration {{.*}} {index = 0 : i64, stationary = "a", vectors = array<i64: 0, 1>, k = array<i64: 0, 4>}
// FOLD-NEXT: sigma.iteration {{.*}} {index = 1 : i64, stationary = "a", vectors = array<i64: 0, 1>, k = array<i64: 4, 7>, fold}
// FOLD-NEXT: sigma.iteration {{.*}} {index = 2 : i64, stationary = "a", vectors = array<i64: 0, 1>, k = array<i64: 7, 8>, fold}
// FOLD-NEXT: sigma.iteration {{.*}} {index = 3 : i64, stationary = "a", vectors = array<i64: 1, 2>, k = array<i64: 0, 4>}
// FOLD:      sigma.iteration {{.*}} {index = 17 : i64, stationary = "a", vectors = array<i64: 5, 6>, k = array<i64: 7, 8>, fold}
// FOLD-NEXT: sigma.store

func.func @k() -> tensor<6x5xf32> {
  %A = sparsec.input @A : tensor<6x8xf32>
  %B = sparsec.param @B : tensor<8x5xf32>
  %C = sigma.zeros : tensor<6x5xf32>
  %S = sigma.pack %B {stationary = "b", transpose} : tensor<8x5xf32> -> tensor<5x8xf32, #sparsec.bitmap<order = row>>
  %C1 = sigma.iteration %S, %A, %C {index = 0 : i64, stationary = "b", vectors = array<i64: 0, 5>, k = array<i64: 0, 8>} : (tensor<5x8xf32, #sparsec.bitmap<order = row>>, tensor<6x8xf32>, tensor<6x5xf32>) -> tensor<6x5xf32>
  %Y = sigma.store %C1 : tensor<6x5xf32> -> tensor<6x5xf32>
  func.return %Y : tensor<6x5xf32>
}

// ROUND:      %S = sigma.pack %B {stationary = "b", transpose} : tensor<8x5xf32> -> tensor<5x8xf32, #sparsec.bitmap<order = row>>
// ROUND-NEXT: %C1 = sigma.iteration %S, %A, %C {index = 0 : i64, stationary = "b", vectors = array<i64: 0, 5>, k = array<i64: 0, 8>} : (tensor<5x8xf32, #sparsec.bitmap<order = row>>, tensor<6x8xf32>, tensor<6x5xf32>) -> tensor<6x5xf32>
// ROUND-NEXT: %Y = sigma.store %C1 : tensor<6x5xf32> -> tensor<6x5xf32>
