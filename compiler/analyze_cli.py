"""`sparsec analyze`: its arguments and entry, light to import (the analyses themselves,
compiler/analyze.py, load numpy, the model and the backend when the command runs)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


class AnalyzeError(ValueError):
    """A bad option of `analyze precision`; one line."""


def add_analyze_parser(sub: Any) -> None:
    analyze = sub.add_parser("analyze", help="precision analyses of a target's arithmetic")
    kinds = analyze.add_subparsers(dest="analysis", required=True)
    precision = kinds.add_parser("precision", help="AWSC, nonlinear units and layer-by-layer "
                                 "accuracy on SmolLM2 (bitllm)")
    precision.add_argument("--target", default="bitllm", help="bitllm{...} options")
    precision.add_argument("-o", "--output", required=True, help="report folder")
    precision.add_argument("--tokens", type=int, default=32)
    precision.add_argument("--text", default="prose")
    precision.add_argument("--layers", default="0,14,29",
                           help="layer points of the layer-by-layer curve")
    precision.add_argument("--blocks", type=int, default=None,
                           help="run only the first N blocks (a truncated model, quick checks)")
    precision.add_argument("--no-smallest", action="store_true",
                           help="skip the search for the smallest configuration")


def cmd_analyze(args: argparse.Namespace) -> int:
    from sparsec.backends.bitllm.spec import BitllmSpec
    from sparsec.backends.common.spec import parse_target_string

    target = parse_target_string(args.target)
    if target.name != "bitllm":
        raise AnalyzeError(f"analyze precision models the bitllm's arithmetic; got target "
                           f"'{target.name}'")
    spec = BitllmSpec.from_spec(target)
    try:
        points = sorted({int(p) for p in args.layers.split(",") if p.strip()})
    except ValueError:
        raise AnalyzeError(f"--layers takes comma-separated layer numbers, got "
                           f"'{args.layers}'") from None
    if args.tokens < 2:
        raise AnalyzeError("--tokens must be >= 2 (perplexity needs a next token)")
    from sparsec.compiler.analyze import analyze_precision

    report = analyze_precision(spec, Path(args.output), args.tokens, args.text, points,
                               smallest=not args.no_smallest, blocks=args.blocks)
    print(report)
    return 0
