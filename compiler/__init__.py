"""sparsec.compiler."""
