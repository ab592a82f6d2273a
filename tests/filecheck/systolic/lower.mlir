// RUN: xdsl-opt %s -p 'lower-systolic{rows=32 cols=32 dataflow=os}' | filecheck %s --check-prefix=OS
// RUN: xdsl-opt %s -p 'lower-systolic{rows=16 cols=32 dataflow=ws}' | filecheck %s --check-prefix=WS
// RUN: xdsl-opt %s -p 'lower-systolic{rows=32 cols=16 dataflow=is}' | filecheck %s --check-prefix=IS

// A 40x50x70 GEMM: os folds M x N (2 x 2 on 32x32), ws folds K x N (5 x 2 on 16x32),
// is folds K x M (3 x 3 on 32x16); column folds outer, as SCALE-Sim orders them.

func.func @g() -> tensor<40x50xf32> {
  %A = sparsec.input @A : tensor<40x70xf32>
  %B = sparsec.param @B : tensor<70x50xf32>
  %C = sparsec.matmul %A, %B : (tensor<40x70xf32>, tensor<70x50xf32>) -> tensor<40x50xf32>
  func.return %C : tensor<40x50xf32>
}

// OS:      %{{.*}} = systolic.zeros : tensor<40x50xf32>
// OS-NEXT: systolic.prefetch %A {operand = "ifmap", words = 2800 : i64, first_use = 0 : i64} : tensor<40x70xf32>
// OS-NEXT: systolic.prefetch %B {operand = "filter", words = 3500 : i64, first_use = 0 : i64} : tensor<70x50xf32>
// OS-NEXT: systolic.fold %A, %B, %{{.*}} {index = 0 : i64, m = array<i64: 0, 32>, n = array<i64: 0, 32>, k = array<i64: 0, 70>}
// OS-NEXT: systolic.fold %A, %B, %{{.*}} {index = 1 : i64, m = array<i64: 32, 40>, n = array<i64: 0, 32>, k = array<i64: 0, 70>}
// OS-NEXT: systolic.fold %A, %B, %{{.*}} {index = 2 : i64, m = array<i64: 0, 32>, n = array<i64: 32, 50>, k = array<i64: 0, 70>}
// OS-NEXT: systolic.fold %A, %B, %{{.*}} {index = 3 : i64, m = array<i64: 32, 40>, n = array<i64: 32, 50>, k = array<i64: 0, 70>}
// OS-NEXT: %{{.*}} = systolic.writeback %{{.*}} {words = 2000 : i64} : tensor<40x50xf32> -> tensor<40x50xf32>
// OS-NOT:  sparsec.matmul

// WS:      systolic.prefetch %A {operand = "ifmap", words = 2800 : i64, first_use = 16 : i64}
// WS-NEXT: systolic.prefetch %B {operand = "filter", words = 3500 : i64, first_use = 0 : i64}
// WS-NEXT: systolic.fold {{.*}}index = 0 : i64, m = array<i64: 0, 40>, n = array<i64: 0, 32>, k = array<i64: 0, 16>}
// WS:      systolic.fold {{.*}}index = 4 : i64, m = array<i64: 0, 40>, n = array<i64: 0, 32>, k = array<i64: 64, 70>}
// WS-NEXT: systolic.fold {{.*}}index = 5 : i64, m = array<i64: 0, 40>, n = array<i64: 32, 50>, k = array<i64: 0, 16>}
// WS:      systolic.fold {{.*}}index = 9 : i64
// WS-NEXT: systolic.writeback %{{.*}} {words = 10000 : i64}

// IS:      systolic.prefetch %A {operand = "ifmap", words = 2800 : i64, first_use = 0 : i64}
// IS-NEXT: systolic.prefetch %B {operand = "filter", words = 3500 : i64, first_use = 32 : i64}
// IS-NEXT: systolic.fold {{.*}}index = 0 : i64, m = array<i64: 0, 16>, n = array<i64: 0, 50>, k = array<i64: 0, 32>}
// IS:      systolic.fold {{.*}}index = 8 : i64, m = array<i64: 32, 40>, n = array<i64: 0, 50>, k = array<i64: 64, 70>}
// IS-NEXT: systolic.writeback %{{.*}} {words = 6000 : i64}
