"""sparsec.backends.common."""
