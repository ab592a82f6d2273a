"""vis_lat (cycles per byte) of each worker type per preset, fitted by
`python benchmarks/hottiles_calibrate.py` (HotTiles Sec. VI-B: homogeneous
profiling runs on small matrices, a search minimising the prediction error).
Written by that script; mean relative error of the fit in the comments.
"""

VIS_LAT: dict[str, dict[str, float]] = {
    "spade-sextans-1": {"hot": 0.0390625, "cold": 0.0696015},  # error hot 0.0%, cold 31.4%
    "spade-sextans-2": {"hot": 0.0195312, "cold": 0.0696015},  # error hot 0.0%, cold 31.0%
    "spade-sextans-4": {"hot": 0.00976562, "cold": 0.0696015},  # error hot 0.0%, cold 24.9%
    "spade-sextans-8": {"hot": 0.00496894, "cold": 0.0696015},  # error hot 0.0%, cold 17.7%
    "piuma": {"hot": 0.0488281, "cold": 0.103463},  # error hot 0.0%, cold 0.6%
}
