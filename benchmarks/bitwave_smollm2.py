"""BitWave on SmolLM2-135M's projections: zero columns, compression, compute speedup, and
the perplexity cost of INT8 and of bit flips through `sparsec eval llm`.

1. For blocks 0, 15 and 29, each of the 7 projections (q, k, v, o, gate, up, down;
   weights dequantized from the GGUF file, then INT8 per output channel): mean zero
   columns per group of 16 in sign-magnitude and two's complement, the bit-column
   format's compression, and compute cycles (backends/bitwave/model.py, the model the
   backend runs; 128 tokens, dynamic dataflow) at Z = 0 and 3 against the Stripes-like
   bit-serial dense mode.
2. `sparsec eval llm` rows float, bitwave@z0w .. z4w (INT8 weights flipped to Z, float
   activations) and bitwave, bitwave@z3 (INT8 activations per tensor too): perplexity on
   the shipped texts, token agreement with float.

Writes benchmarks/results/bitwave_smollm2.md.
Run: python benchmarks/bitwave_smollm2.py [--tokens 128 --decode 8]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from sparsec.backends.bitwave import model
from sparsec.backends.bitwave.spec import BitwaveSpec
from sparsec.backends.common.report import write_atomically
from sparsec.tensors import bitcolumn as bc
from sparsec.tensors.llm import PROJECTIONS, load_model
from sparsec.tensors.quantization import quantize_values

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "bitwave_smollm2.md"
BLOCKS = (0, 15, 29)
TOKENS = 128
ROWS = ("float", "bitwave@z0w", "bitwave@z2w", "bitwave@z3w", "bitwave@z4w", "bitwave", "bitwave@z3")


def layer_table() -> list[str]:
    gguf = load_model()
    spec = BitwaveSpec()
    lines = ["| projection | K x N | zero cols SM | zero cols 2C | compr. | speedup vs Stripes Z0 / Z3 |",
             "|---|---|---|---|---|---|"]
    totals = {"stripes": 0, "z0": 0, "z3": 0}
    for block in BLOCKS:
        for short, stem in PROJECTIONS.items():
            w = gguf.matrix(f"blk.{block}.{stem}.weight").T.astype(np.float64)   # K x N
            codes = quantize_values(w, 8, True, 1).codes
            sm = bc.zero_columns(bc.column_masks(codes, 16, 0)).mean()
            tc = bc.zero_columns(bc.column_masks(codes, 16, 0, sign_magnitude=False)).mean()
            compression = 8 * codes.size / bc.pack_columns(codes, 16, 0).bits
            stripes = model.compute_cycles(codes, TOKENS, (8, 32, 16), "stripes")
            cycles = {}
            for z in (0, 3):
                flipped = bc.bit_flip(codes, z, 16, 0)
                _, by_shape = model.choose_shape(flipped, TOKENS, spec.shapes(), "bitwave")
                cycles[z] = min(by_shape.values())
            totals["stripes"] += stripes
            totals["z0"] += cycles[0]
            totals["z3"] += cycles[3]
            lines.append(f"| blk.{block}.{short} | {w.shape[0]}x{w.shape[1]} | {sm:.2f} | {tc:.4f} | "
                         f"{compression:.2f} | {stripes / cycles[0]:.2f} / {stripes / cycles[3]:.2f} |")
    lines.append(f"| all 21 | | | | | {totals['stripes'] / totals['z0']:.2f} / "
                 f"{totals['stripes'] / totals['z3']:.2f} |")
    return lines


def eval_table(tokens: int, decode: int) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "eval.json"
        command = [sys.executable, "-m", "sparsec.compiler.cli", "eval", "llm", "--tokens", str(tokens),
                   "--decode", str(decode), "--json", str(out)]
        for row in ROWS:
            command += ["--row", row]
        subprocess.run(command, check=True, capture_output=True, cwd=ROOT)
        data = json.loads(out.read_text())
    rows = data["rows"]
    texts = list(rows[0]["perplexity"])
    lines = [f"`sparsec eval llm {' '.join('--row ' + r for r in ROWS)} --tokens {tokens} "
             f"--decode {decode}`", "",
             "| row | " + " | ".join(f"ppl {t}" for t in texts) + " | mean change | token agreement |",
             "|---|" + "---|" * (len(texts) + 2)]
    base = rows[0]["perplexity"]
    for row in rows:
        ppl = row["perplexity"]
        change = np.mean([ppl[t] / base[t] - 1 for t in texts])
        lines.append(f"| {row['row']} | " + " | ".join(f"{ppl[t]:.3f}" for t in texts)
                     + f" | {100 * change:+.2f}% | {100 * row['token_agreement']:.1f}% |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--decode", type=int, default=8)
    args = parser.parse_args()
    lines = ["# BitWave on SmolLM2-135M", "", "Made by `python benchmarks/bitwave_smollm2.py`.", "",
             "## Zero columns and compute speedup (INT8 per channel, groups of 16, 128 tokens)", ""]
    lines += layer_table()
    lines += ["", "## Perplexity", ""]
    lines += eval_table(args.tokens, args.decode)
    write_atomically(OUT, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
