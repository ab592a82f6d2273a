"""Dense systolic array (TPU-like), cycle-exact with SCALE-Sim 3.0.0 in CALC mode."""
