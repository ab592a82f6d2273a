"""The bit-level weight-compressed LLM accelerator (ISSCC 2025, 23.8): cluster-aligned INT-FP GEMM."""
