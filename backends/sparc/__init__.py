"""SpARC (DAC 2024): row-clustered approximate attention with a centroid cache."""
