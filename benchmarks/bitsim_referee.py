"""BitSim's BitWave cycle model as an outside referee for the bitwave backend.

BitSim (github yc2367/BitSim, the BBS authors' simulator, MICRO 2024) counts BitWave's
compute cycles per layer in `sim/sim/bitwave.py` (`Bitwave._calc_cycle_fc` with its
dynamic dataflow). This script runs in two venvs:

  1. export (sparsec's venv): MiniLM's 36 linear layers, INT8 per output channel, with
     bit-flip{zero_cols=Z group=16} for each Z, as INT8 codes in one .npz:
       python benchmarks/bitsim_referee.py export --out /tmp/bitsim_layers.npz
  2. run (a venv with torch, BitSim's own code unchanged on sys.path):
       python3.11 -m venv /work/venvs/bitsim && /work/venvs/bitsim/bin/pip install torch numpy
       /work/venvs/bitsim/bin/python benchmarks/bitsim_referee.py run --dataflows fixed \
           --bitsim /path/to/BitSim --layers /tmp/bitsim_layers.npz \
           --out tests/data/reference/bitsim_bitwave_minilm.csv
       /work/venvs/bitsim/bin/python benchmarks/bitsim_referee.py run --dataflows dynamic \
           --zero-cols 0,3 --bitsim /path/to/BitSim --layers /tmp/bitsim_layers.npz \
           --out tests/data/reference/bitsim_bitwave_minilm_dynamic.csv
     (the dynamic dataflow tries seven PE shapes, one of them 16 lanes x 1 row, so it
     runs about 18 times longer: an hour on a loaded 2-core machine for two Z values)
     BitSim's `Bitwave` is built without its constructor (which reads the authors' model
     files and CACTI): the layer list, shapes and INT8 weights are set on the object
     and its `_calc_compute_cycle()` runs as written, with `input_precision_s = 8` (its
     internal bit flip then prunes nothing: the weights arrive already flipped).
     `cacti_simulation` (imported by its memory model, unused by the cycle count) is
     stubbed.

tests/backends/bitwave/test_bitsim_fidelity.py recomputes sparsec's cycles for the same
layers and holds them within 5% of the recorded figures.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import types
from pathlib import Path

import numpy as np

TOKENS = 128
ZERO_COLS = (0, 2, 3, 4)
PROJECTIONS = ("attention.self.query", "attention.self.key", "attention.self.value",
               "attention.output.dense", "intermediate.dense", "output.dense")


def layer_codes(weights: dict[str, np.ndarray], zero_cols: int) -> dict[str, np.ndarray]:
    """K x N INT8 codes of every MiniLM linear layer: per-channel quantization, then the
    bit flip, both by sparsec's own functions."""
    from sparsec.tensors.bitcolumn import bit_flip
    from sparsec.tensors.quantization import quantize_values

    out = {}
    for layer in range(6):
        for proj in PROJECTIONS:
            name = f"encoder.layer.{layer}.{proj}.weight"
            w = weights[name].T.astype(np.float64)              # K x N
            codes = quantize_values(w, 8, True, 1).codes
            out[f"{name}|z{zero_cols}"] = bit_flip(codes, zero_cols, 16, 0).astype(np.int8)
    return out


def export(path: Path) -> None:
    from sparsec.tensors.workloads import BertModel

    weights = BertModel.from_path_or_package().weights
    arrays: dict[str, np.ndarray] = {}
    for z in ZERO_COLS:
        arrays.update(layer_codes(weights, z))
    np.savez_compressed(path, **arrays)
    print(f"wrote {len(arrays)} layers to {path}")


def _bitsim(root: Path):  # noqa: ANN202 - BitSim's own class
    sys.path.insert(0, str(root / "sim"))
    sys.modules.setdefault("cacti_simulation", types.SimpleNamespace(CactiSimulation=None))
    from hw.alu.alu_unit import BitSerialPE  # type: ignore[import-not-found]
    from sim.bitwave import Bitwave  # type: ignore[import-not-found]

    return Bitwave, BitSerialPE


def run(root: Path, layers: Path, out: Path, dataflow_names: list[str],
        zero_cols: list[int] | None) -> None:
    import torch

    torch.set_num_threads(1)          # tiny tensors: threads only contend on a shared machine
    bitwave_class, pe_class = _bitsim(root)
    data = np.load(layers)
    rows: list[dict[str, object]] = []
    chosen = [(d, n) for d, n in (([(8, 32, 16)], "fixed"), (None, "dynamic")) if n in dataflow_names]
    for dataflows, label in chosen:
        acc = bitwave_class.__new__(bitwave_class)
        acc.pe = pe_class(8, 8, 8, bitwave_class.PE_ENERGY, bitwave_class.PE_AREA)
        acc.en_bitflip = True
        if dataflows is not None:
            acc.dataflow = dataflows
        else:
            acc.dataflow = [(8, 32, 16), (16, 32, 8), (32, 32, 4), (128, 8, 1),
                            (16, 64, 1), (32, 32, 1), (16, 1, 16)]
        names = [f for f in data.files
                 if zero_cols is None or int(f.split("|z")[1]) in zero_cols]
        acc.layer_name_list = names
        acc.weight_dim, acc.input_dim, acc.output_dim, acc.model_q = {}, {}, {}, {}
        for name in names:
            codes = data[name].astype(np.float32)               # K x N
            k, n = codes.shape
            acc.weight_dim[name] = [k, n]
            acc.input_dim[name] = [1, TOKENS, k]
            acc.output_dim[name] = [1, TOKENS, n]
            acc.model_q[name] = torch.tensor(codes.T.copy())    # [cout, cin] like nn.Linear
        acc.w_prec_config = {name: 8 for name in names}
        acc._calc_compute_cycle()
        for name in names:
            layer, z = name.split("|z")
            k, n = data[name].shape
            shape = acc._layer_dataflow[name]
            rows.append({"layer": layer, "zero_cols": int(z), "k": k, "n": n,
                         "tokens": TOKENS, "dataflow": label,
                         "shape": "x".join(str(v) for v in shape),
                         "bitsim_cycles": int(acc._layer_cycle_compute[name])})
            print(label, name, rows[-1]["shape"], rows[-1]["bitsim_cycles"], flush=True)
        write_rows(rows, out)


def write_rows(rows: list[dict[str, object]], out: Path) -> None:
    """The CSV, atomically (rewritten after each dataflow, so a long run keeps its part)."""
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
    with os.fdopen(fd, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        handle.write("# BitSim (github yc2367/BitSim) Bitwave._calc_compute_cycle on sparsec's "
                     "INT8 MiniLM layers; made by benchmarks/bitsim_referee.py run\n")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, out)
    print(f"wrote {len(rows)} rows to {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("export")
    ex.add_argument("--out", type=Path, required=True)
    rn = sub.add_parser("run")
    rn.add_argument("--bitsim", type=Path, required=True)
    rn.add_argument("--layers", type=Path, required=True)
    rn.add_argument("--out", type=Path, required=True)
    rn.add_argument("--dataflows", default="fixed,dynamic",
                    help="fixed (8x32x16), dynamic (BitSim's seven shapes), or both")
    rn.add_argument("--zero-cols", default=None,
                    help="only the layers flipped to these Z (comma-separated); default all")
    args = parser.parse_args()
    if args.command == "export":
        export(args.out)
        return
    zero_cols = [int(z) for z in args.zero_cols.split(",")] if args.zero_cols else None
    run(args.bitsim, args.layers, args.out, args.dataflows.split(","), zero_cols)


if __name__ == "__main__":
    main()
