"""BitWave (HPCA 2024): sign-magnitude bit columns, zero-column skipping, bit flips."""
