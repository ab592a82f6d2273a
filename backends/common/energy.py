"""Energy per action, shared defaults for backends that have no paper-specific table.

Figures are 45 nm, 0.9 V estimates from M. Horowitz, "Computing's energy problem (and
what we can do about it)", ISSCC 2014, Fig. 1.1.9 and the accompanying table:
  - 32-bit float multiply 3.7 pJ, add 0.9 pJ        -> f32 MAC 4.6 pJ
  - 16-bit float multiply 1.1 pJ, add 0.4 pJ        -> f16/bf16 MAC 1.5 pJ
  - 8-bit int multiply 0.2 pJ, add 0.03 pJ          -> i8 MAC 0.23 pJ
  - 32-bit int multiply 3.1 pJ, add 0.1 pJ          -> i32 MAC 3.2 pJ
  - 64-bit cache read: 8 kB 10 pJ, 32 kB 20 pJ, 1 MB 100 pJ  -> 64 kB SRAM ~ 3 pJ/byte
  - DRAM: 1.3-2.6 nJ per 64-bit access              -> ~ 160-320 pJ/byte (we use 160)
Backends scale the MAC energy with the element type of their operands.
"""

from __future__ import annotations

MAC_PJ: dict[str, float] = {
    "f64": 4.6 * 4, "f32": 4.6, "f16": 1.5, "bf16": 1.5,
    "i32": 3.2, "i16": 0.8, "i8": 0.23,
}
"""Energy of one multiply-accumulate by operand element type (f64 ~ 4x f32)."""

SRAM_PJ_PER_BYTE = 3.0
"""Read or write of one byte of a tens-of-kB on-chip SRAM."""

DRAM_PJ_PER_BYTE = 160.0
"""Read or write of one byte of off-chip DRAM."""


