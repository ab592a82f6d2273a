"""HotTiles (HPCA 2024): hot/cold tiles of an irregular sparse A on hot and cold workers."""
