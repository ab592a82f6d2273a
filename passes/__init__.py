"""sparsec.passes."""
