"""sparsec.dialects.

The `sparsec` dialect module is imported first: dialects/block.py (its block ops) uses
its helpers and is imported at its end, so either import order works.
"""

from sparsec.dialects import sparsec as _sparsec  # noqa: F401
