#!/usr/bin/env python
"""Run SCALE-Sim 3.0.0 on a list of GEMM cases and record its cycle figures.

Runs in the SCALE-Sim virtual environment (NOT the sparsec one; it never imports sparsec):

    /work/scalesim-venv/bin/python benchmarks/scalesim_harness.py \
        --cases cases.csv --mode calc --out results.csv
    /work/scalesim-venv/bin/python benchmarks/scalesim_harness.py \
        --cases cases.csv --mode user --bandwidth 4 --out results.csv

Cases file: CSV with a header and the columns

    rows,cols,M,N,K,dataflow[,ifmap_kb,filter_kb,ofmap_kb][,bandwidth]

(optional columns default to 64 kB SRAMs and --bandwidth). SCALE-Sim's GEMM convention: the
ifmap is M x K, there are N filters, C[MxN] = A[MxK] . B[KxN].

For every case a fresh temporary directory gets the config, topology and layout files and
SCALE-Sim's outputs (save_disk_space=True, so no traces); it is deleted afterwards.

Output CSV columns:

    rows,cols,M,N,K,dataflow,ifmap_kb,filter_kb,ofmap_kb,bandwidth,total_cycles,
    compute_cycles,stall_cycles,overall_util,mapping_eff,compute_util,scalesim_wall_s

total_cycles / compute_cycles / stall_cycles / utilisations are exactly
`single_layer_sim_object_list[0].get_compute_report_items()`; scalesim_wall_s is the wall
time of `run_scale` + report extraction for that case.

Bandwidth in USER mode: SCALE-Sim 3.0.0 takes the ifmap/filter DRAM->SRAM fill bandwidth
from the [layout] keys IfmapSRAMBankBandwidth / FilterSRAMBankBandwidth (not from
`Bandwidth`), and the ofmap SRAM->DRAM drain bandwidth from `Bandwidth`. This harness sets
all three to the case's bandwidth (bank count 1 so that the bank-divisibility assertion
holds for any bandwidth) unless --read-bw is given, which overrides the two [layout] keys.
In CALC mode none of these keys is read for the cycle counts (they are still written).
"""

import argparse
import contextlib
import csv
import io
import os
import shutil
import sys
import tempfile
import time

CONFIG_TEMPLATE = """[general]
run_name = harness_run

[architecture_presets]
ArrayHeight:    {rows}
ArrayWidth:     {cols}
IfmapSramSzkB:   {ifmap_kb}
FilterSramSzkB:  {filter_kb}
OfmapSramSzkB:   {ofmap_kb}
IfmapOffset:    0
FilterOffset:   10000000
OfmapOffset:    20000000
Bandwidth : {bandwidth}
Dataflow : {dataflow}
MemoryBanks:   1
ReadRequestBuffer: 32
WriteRequestBuffer: 32

[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: {read_bw}
IfmapSRAMBankNum: 1
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: {read_bw}
FilterSRAMBankNum: 1
FilterSRAMBankPort: 2

[sparsity]
SparsitySupport : false
SparseRep : ellpack_block
OptimizedMapping : false
BlockSize : 8
RandomNumberGeneratorSeed : 40

[run_presets]
InterfaceBandwidth: {mode}
UseRamulatorTrace: False
"""

# Only parsed (custom layouts are off); SCALE-Sim needs a layout file with one row per layer.
LAYOUT_TEXT = (
    "Layer name,IFMAP Height Intraline Factor,IFMAP Width Intraline Factor,"
    "Filter Height Intraline Factor,Filter Width Intraline Factor,Channel Intraline Factor,"
    "Num Filter Intraline Factor,IFMAP Height Intraline Order,IFMAP Width Intraline Order,"
    "Channel Intraline Order,IFMAP Height Interline Order,IFMAP Width Interline Order,"
    "Channel Interline Order,Num Filter Intraline Order,Channel Intraline Order,"
    "Filter Height Intraline Order,Filter Width Intraline Order,Num Filter Interline Order,"
    "Channel Interline Order,Filter Height Interline Order,Filter Width Interline Order,\n"
    "g, 1, 1, 1, 1, 1, 1, 0, 1, 2, 0, 1, 2, 0, 1, 2, 3, 0, 1, 2, 3,\n"
)

OUT_COLUMNS = ["rows", "cols", "M", "N", "K", "dataflow", "ifmap_kb", "filter_kb", "ofmap_kb",
               "bandwidth", "total_cycles", "compute_cycles", "stall_cycles", "overall_util",
               "mapping_eff", "compute_util", "scalesim_wall_s"]


def run_case(case, mode, read_bw=None, keep_dir=False):
    """Run one GEMM case through SCALE-Sim; returns a dict of the output columns."""
    from scalesim.scale_sim import scalesim  # imported here: only the SCALE-Sim venv has it

    tmp = tempfile.mkdtemp(prefix="scalesim_h_")
    try:
        cfg = os.path.join(tmp, "cfg.cfg")
        topo = os.path.join(tmp, "topo.csv")
        layout = os.path.join(tmp, "layout.csv")
        bw = int(case["bandwidth"])
        with open(cfg, "w") as f:
            f.write(CONFIG_TEMPLATE.format(
                rows=case["rows"], cols=case["cols"], ifmap_kb=case["ifmap_kb"],
                filter_kb=case["filter_kb"], ofmap_kb=case["ofmap_kb"], bandwidth=bw,
                read_bw=bw if read_bw is None else read_bw,
                dataflow=case["dataflow"], mode=mode.upper()))
        with open(topo, "w") as f:
            f.write("Layer Name, M, N, K,\n")
            f.write(f"g, {case['M']}, {case['N']}, {case['K']},\n")
        with open(layout, "w") as f:
            f.write(LAYOUT_TEXT)
        t0 = time.perf_counter()
        sink = io.StringIO()
        with contextlib.redirect_stdout(sink):
            sim = scalesim(save_disk_space=True, verbose=False, config=cfg, topology=topo,
                           layout=layout, input_type_gemm=True)
            sim.run_scale(top_path=os.path.join(tmp, "out"))
            items = sim.runner.single_layer_sim_object_list[0].get_compute_report_items()
        wall = time.perf_counter() - t0
    finally:
        if not keep_dir:
            shutil.rmtree(tmp, ignore_errors=True)
    out = dict(case)
    out.update(total_cycles=int(items[0]), compute_cycles=int(items[1]),
               stall_cycles=int(items[2]), overall_util=f"{items[3]:.4f}",
               mapping_eff=f"{items[4]:.4f}", compute_util=f"{items[5]:.4f}",
               scalesim_wall_s=f"{wall:.3f}")
    return out


def read_cases(path, default_bw):
    cases = []
    with open(path) as f:
        for r in csv.DictReader(f):
            r = {k.strip(): (v.strip() if isinstance(v, str) else v) for k, v in r.items()}
            case = {k: int(r[k]) for k in ("rows", "cols", "M", "N", "K")}
            case["dataflow"] = r["dataflow"]
            for k in ("ifmap_kb", "filter_kb", "ofmap_kb"):
                case[k] = int(r[k]) if r.get(k) not in (None, "") else 64
            case["bandwidth"] = int(r["bandwidth"]) if r.get("bandwidth") not in (None, "") \
                else default_bw
            cases.append(case)
    return cases


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", required=True, help="CSV of cases (see module docstring)")
    ap.add_argument("--mode", choices=["calc", "user"], default="calc")
    ap.add_argument("--bandwidth", type=int, default=10,
                    help="words/cycle (USER mode), used when the case has no bandwidth column")
    ap.add_argument("--read-bw", type=int, default=None,
                    help="override Ifmap/FilterSRAMBankBandwidth (default: = bandwidth)")
    ap.add_argument("--out", default=None, help="output CSV (default: stdout only)")
    args = ap.parse_args(argv)

    cases = read_cases(args.cases, args.bandwidth)
    writer = csv.DictWriter(sys.stdout, fieldnames=OUT_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    results = []
    for case in cases:
        res = run_case(case, args.mode, read_bw=args.read_bw)
        results.append(res)
        writer.writerow(res)
        sys.stdout.flush()
    if args.out:
        with open(args.out, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=OUT_COLUMNS, extrasaction="ignore")
            w.writeheader()
            w.writerows(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
