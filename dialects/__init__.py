"""sparsec.dialects."""
