"""ASADI (HPCA 2024): sparse attention in ReRAM crossbars on the diagonal (DIA) format."""
