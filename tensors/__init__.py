"""sparsec's data layer: the DataStore, element types and rounding, format storage
(pack/unpack with exact bits), shared numerics and format semantics, and the real
workloads (MiniLM). It imports no sparsec package but dialects/, so passes and
backends use it without depending on the compiler driver.
"""
