"""Storage of a tensor in its format: pack, unpack and exact storage size in bits.

`pack(array, encoding, value_bits=32)` turns the logical (dense) values of a tensor into
the buffers its encoding stores, `unpack(packed)` gives the dense values back, and
`packed.bits` is the exact storage of those buffers: the sum over buffers of
elements x bit width. Every format is handled, vectorised with numpy (loops run over
levels, never over elements):

* MLIR `#sparse_tensor.encoding`s, generically from the level types, as MLIR's sparse
  storage scheme lays them out (SparseTensorStorageLayout.h): per level `l`
  - dense / batch: nothing stored;
  - compressed: `positions[l]` (parents + 1 entries) and `coordinates[l]`;
  - loose_compressed: `positions[l]` with a (lo, hi) pair per parent, `coordinates[l]`;
  - singleton: `coordinates[l]` only;
  - structured[n, m]: `coordinates[l]`, exactly n per block of m (blocks with fewer
    nonzeros padded with zeros), each ceil(log2(m)) bits wide: the hardware's n:m
    metadata (MLIR would use crdWidth here; sparsec counts what a sparse tensor core
    stores);
  plus `values`. A trailing COO region stored as array of structures (the default;
  `soa` opts out) keeps all its coordinates in one buffer `coordinates[start]` of shape
  (entries, levels). Leading batch levels make every other buffer rectangular with
  leading batch dimensions, each batch padded to the longest (MLIR's
  `memref<[batch] x ? x T>`). posWidth / crdWidth 0 mean MLIR's `index` type, counted
  as `INDEX_BITS` = 64 bits.
* `#sparsec.bitmap`: `bitmap` (1 bit per element, in `order` order) and `values`.
* `#sparsec.rcsc`: `values`, `rel_index` (index_bits each) and `col_ptr`
  (pes x (cols + 1), ptr_bits each); PE p's entries are the `col_ptr[p, -1]` entries
  after those of PEs 0..p-1 (see `rcsc_pe`); `meta["padding"]` counts padding entries.
* `#sparsec.bitcolumn` (BitWave), alone on i8 codes or as the layout of an 8-bit
  symmetric `#sparsec.quantized`: `col_mask` (8 bits per group, which of the 8 columns
  are kept) and `columns` (1 bit each: the kept columns, G bits per column, in
  (channel, group, column) order, sign column first), plus the quantization's `scale`.
* `#sparsec.codebook`: the layout's index buffers, `indices` (bits each) instead of
  `values`, and `codebook` (2^bits entries of value_bits; a shorter codebook is padded
  with zeros).
* `#sparsec.quantized`: the layout's index buffers, `codes` (bits each) instead of
  `values`, `scale` (`SCALE_BITS` each, one per tensor or channel) and, unless
  symmetric, `zero_point` (bits each).

Codebooks and per-channel scales come from the DataStore (`<kernel>.<symbol>#codebook`,
`#scale`, `#zero_point`) and are passed as `aux={"codebook": ...}` etc.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from xdsl.dialects.builtin import NoneAttr
from xdsl.ir import Attribute
from xdsl.ir.affine import (
    AffineBinaryOpExpr,
    AffineBinaryOpKind,
    AffineConstantExpr,
    AffineDimExpr,
    AffineExpr,
    AffineMap,
)

from sparsec.dialects.formats import (
    BitColumnAttr,
    BitmapAttr,
    CodebookAttr,
    DiagonalAttr,
    QuantizedAttr,
    RcscAttr,
    describe,
    layout_of,
)
from sparsec.dialects.sparse_tensor import LevelType, SparseTensorEncodingAttr
from sparsec.tensors import bitcolumn as bc

__all__ = [
    "INDEX_BITS",
    "SCALE_BITS",
    "Packed",
    "dequantize",
    "pack",
    "rcsc_pe",
    "storage_bits",
    "bitcolumn_codes",
    "unpack",
]

INDEX_BITS = 64
"""Bits of MLIR's `index` type, which posWidth / crdWidth = 0 select (64-bit hosts)."""

SCALE_BITS = 32
"""Bits counted for one quantization scale (an f32 in hardware). The `scale` buffer
keeps float64 so that unpacking reproduces exactly the values `dequantize` made."""

Coords = tuple[np.ndarray, ...]
"""One int64 array per dimension (or level): the coordinates of a list of elements."""


@dataclass(frozen=True, eq=False)
class Packed:
    """A tensor in its storage format.

    `buffers` are the stored arrays by name (`positions[1]`, `coordinates[1]`,
    `values`, `bitmap`, `rel_index`, `col_ptr`, `indices`, `codebook`, `codes`,
    `scale`, `zero_point`), `widths` the bit width of one element of each, `meta`
    counts (`nnz`: nonzeros; `stored`: value slots, padding included; `padding`:
    rcsc padding entries). `bits` is the exact storage, `bytes` its ceiling in bytes.
    """

    encoding: Attribute | None
    shape: tuple[int, ...]
    dtype: np.dtype
    value_bits: int
    buffers: dict[str, np.ndarray]
    widths: dict[str, int]
    meta: dict[str, int] = field(default_factory=dict)

    @property
    def bits(self) -> int:
        return sum(self.buffer_bits().values())

    @property
    def bytes(self) -> int:
        return -(-self.bits // 8)

    def buffer_bits(self) -> dict[str, int]:
        """Storage in bits of each buffer: elements x width."""
        return {name: int(self.buffers[name].size) * self.widths[name] for name in self.buffers}

    @property
    def nnz(self) -> int:
        return self.meta.get("nnz", 0)

    @property
    def stored(self) -> int:
        return self.meta.get("stored", 0)

    @property
    def padding(self) -> int:
        return self.meta.get("padding", 0)

    def positions(self, lvl: int) -> np.ndarray:
        return self.buffers[f"positions[{lvl}]"]

    def coordinates(self, lvl: int) -> np.ndarray:
        return self.buffers[f"coordinates[{lvl}]"]

    def unpack(self) -> np.ndarray:
        return unpack(self)

    def summary(self) -> str:
        """One line: format, storage and the buffers' sizes."""
        parts = ", ".join(f"{name} {bits}" for name, bits in self.buffer_bits().items())
        return f"{describe(self.encoding)}: {self.bits} bits ({parts})"


# ===----------------------------------------------------------------------=== #
# Small helpers
# ===----------------------------------------------------------------------=== #


def _uint_dtype(bits: int) -> type[np.integer]:
    """The narrowest numpy integer holding `bits`-bit unsigned values (int64 for 64)."""
    for width, dtype in ((8, np.uint8), (16, np.uint16), (32, np.uint32)):
        if bits <= width:
            return dtype
    return np.int64


def _as_uint(values: np.ndarray, bits: int, what: str) -> np.ndarray:
    """`values` in the narrowest dtype of `bits`, failing when one does not fit."""
    if values.size and bits < 64 and int(values.max()) >= (1 << bits):
        raise ValueError(
            f"{what} holds {int(values.max())}, which does not fit in {bits} bits; "
            "use a wider bit width in the encoding"
        )
    return values.astype(_uint_dtype(bits))


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of arange(s, s + c) for each (s, c), vectorised."""
    total = int(counts.sum())
    offsets = np.cumsum(counts) - counts
    return np.repeat(starts - offsets, counts) + np.arange(total, dtype=np.int64)


def _width(declared: int) -> int:
    return declared if declared else INDEX_BITS


def _aux_array(aux: Mapping[str, np.ndarray] | None, key: str, how: str) -> np.ndarray:
    """`aux[key]` (also accepted as `#key`), or a ValueError saying what to provide."""
    aux = aux or {}
    value = aux.get(key, aux.get(f"#{key}"))
    if value is None:
        raise ValueError(f"missing aux['{key}']: {how}")
    return np.asarray(value)


# ===----------------------------------------------------------------------=== #
# Layouts: which elements are stored, in which value slots, with which index buffers
# ===----------------------------------------------------------------------=== #


@dataclass
class _Layout:
    """A packed layout: index buffers, the value of every slot in storage order and
    the dimension coordinates of every slot (padding slots may lie outside the shape).
    `store` turns a per-slot array into its stored shape (batched layouts pad it)."""

    index: dict[str, np.ndarray]
    widths: dict[str, int]
    meta: dict[str, int]
    values: np.ndarray
    slots: Coords
    store: Callable[[np.ndarray], np.ndarray] = lambda flat: flat


@dataclass
class _Slots:
    """Decoded layout: the dimension coordinates of each live slot, and `load`, which
    turns a stored per-slot buffer into the flat per-slot values in that same order."""

    coords: Coords
    load: Callable[[np.ndarray], np.ndarray]


def _pack_layout(x: np.ndarray, layout: Attribute | None) -> _Layout:
    if layout is None:
        return _pack_dense(x)
    if isinstance(layout, SparseTensorEncodingAttr):
        return _pack_mlir(x, layout)
    if isinstance(layout, BitmapAttr):
        return _pack_bitmap(x, layout)
    if isinstance(layout, RcscAttr):
        return _pack_rcsc(x, layout)
    raise ValueError(f"no storage scheme for layout {layout}")


def _layout_slots(
    layout: Attribute | None, shape: tuple[int, ...], buffers: Mapping[str, np.ndarray]
) -> _Slots:
    if layout is None:
        return _Slots(_dense_slots(shape), np.ravel)
    if isinstance(layout, SparseTensorEncodingAttr):
        return _mlir_slots(layout, shape, buffers)
    if isinstance(layout, BitmapAttr):
        return _Slots(_bitmap_slots(layout, shape, buffers["bitmap"]), np.ravel)
    if isinstance(layout, RcscAttr):
        return _Slots(_rcsc_slots(layout, shape, buffers["rel_index"], buffers["col_ptr"]), np.ravel)
    raise ValueError(f"no storage scheme for layout {layout}")


# -- dense ------------------------------------------------------------------ #


def _dense_slots(shape: tuple[int, ...]) -> Coords:
    size = math.prod(shape)
    return tuple(c.astype(np.int64) for c in np.unravel_index(np.arange(size), shape))


def _pack_dense(x: np.ndarray) -> _Layout:
    meta = {"nnz": int(np.count_nonzero(x)), "stored": int(x.size)}
    return _Layout({}, {}, meta, x.ravel(), _dense_slots(x.shape))


# -- bitmap ----------------------------------------------------------------- #


def _flat_order(layout: BitmapAttr) -> str:
    return "C" if layout.order_name == "row" else "F"


def _bitmap_slots(layout: BitmapAttr, shape: tuple[int, ...], bits: np.ndarray) -> Coords:
    flat = np.flatnonzero(bits)
    coords = np.unravel_index(flat, shape, order=_flat_order(layout))
    return tuple(c.astype(np.int64) for c in coords)


def _pack_bitmap(x: np.ndarray, layout: BitmapAttr) -> _Layout:
    if x.ndim == 0:
        raise ValueError("sparsec.bitmap: cannot pack a scalar; give an array of rank >= 1")
    flat = x.ravel(order=_flat_order(layout))
    bits = flat != 0
    values = flat[bits]
    meta = {"nnz": int(values.size), "stored": int(values.size)}
    slots = _bitmap_slots(layout, x.shape, bits)
    return _Layout({"bitmap": bits}, {"bitmap": 1}, meta, values, slots)


# -- rcsc (EIE) ------------------------------------------------------------- #


def _pack_rcsc(x: np.ndarray, layout: RcscAttr) -> _Layout:
    if x.ndim != 2:
        raise ValueError(f"sparsec.rcsc: expected a rank-2 array (rows x cols), got shape {x.shape}")
    pes, index_bits, cols = layout.num_pes, layout.index_width, x.shape[1]
    rows_, cols_ = np.nonzero(x)
    pe, local = rows_ % pes, rows_ // pes
    order = np.lexsort((local, cols_, pe))
    pe, col, local = pe[order], cols_[order], local[order]
    values = x[rows_[order], cols_[order]]
    segment = pe * cols + col
    first = np.ones(segment.size, dtype=bool)
    first[1:] = segment[1:] != segment[:-1]
    previous = np.where(first, -1, np.roll(local, 1))
    gap = local - previous - 1
    pads = gap >> index_bits
    entries = pads + 1
    real = np.cumsum(entries) - entries + pads
    total = int(entries.sum())
    stored = np.zeros(total, dtype=x.dtype)
    stored[real] = values
    rel_index = np.full(total, layout.max_run, dtype=np.int64)
    rel_index[real] = gap & layout.max_run
    per_column = np.bincount(segment, weights=entries, minlength=pes * cols).astype(np.int64)
    col_ptr = np.zeros((pes, cols + 1), dtype=np.int64)
    col_ptr[:, 1:] = np.cumsum(per_column.reshape(pes, cols), axis=1)
    index = {
        "rel_index": _as_uint(rel_index, index_bits, "sparsec.rcsc rel_index"),
        "col_ptr": _as_uint(
            col_ptr, layout.ptr_width, f"sparsec.rcsc col_ptr (ptr_bits = {layout.ptr_width})"
        ),
    }
    widths = {"rel_index": index_bits, "col_ptr": layout.ptr_width}
    meta = {"nnz": int(values.size), "stored": total, "padding": int(pads.sum())}
    slots = _rcsc_slots(layout, x.shape, index["rel_index"], index["col_ptr"])
    return _Layout(index, widths, meta, stored, slots)


def _rcsc_slots(
    layout: RcscAttr, shape: tuple[int, ...], rel_index: np.ndarray, col_ptr: np.ndarray
) -> Coords:
    """Row and column of every entry: within a PE's column, an entry's local row is the
    running sum of (relative index + 1) minus one; row = local row * pes + pe."""
    pes, cols = layout.num_pes, shape[1]
    counts = np.diff(col_ptr.astype(np.int64), axis=1).ravel()
    segment = np.repeat(np.arange(pes * cols, dtype=np.int64), counts)
    steps = np.cumsum(rel_index.astype(np.int64) + 1)
    starts = np.cumsum(counts) - counts
    before = np.concatenate(([0], steps))[starts]
    local = steps - before[segment] - 1
    return local * pes + segment // cols, segment % cols


def rcsc_pe(packed: Packed, pe: int) -> dict[str, np.ndarray]:
    """One PE's slice of a packed rcsc tensor: its `values` (or `indices` / `codes`),
    `rel_index` and `col_ptr` (cols + 1 pointers into its own entries)."""
    col_ptr = packed.buffers["col_ptr"]
    if not 0 <= pe < col_ptr.shape[0]:
        raise ValueError(f"PE {pe} out of range: the tensor is spread over {col_ptr.shape[0]} PEs")
    ends = np.cumsum(col_ptr[:, -1].astype(np.int64))
    start, end = int(ends[pe] - col_ptr[pe, -1]), int(ends[pe])
    slot_names = [n for n in ("values", "indices", "codes", "rel_index") if n in packed.buffers]
    result = {name: packed.buffers[name][start:end] for name in slot_names}
    result["col_ptr"] = col_ptr[pe]
    return result


# ===----------------------------------------------------------------------=== #
# MLIR sparse_tensor encodings
# ===----------------------------------------------------------------------=== #

_EVAL: dict[AffineBinaryOpKind, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    AffineBinaryOpKind.Add: np.add,
    AffineBinaryOpKind.Mul: np.multiply,
    AffineBinaryOpKind.FloorDiv: np.floor_divide,
    AffineBinaryOpKind.CeilDiv: lambda a, b: -np.floor_divide(-a, b),
    AffineBinaryOpKind.Mod: np.mod,
}


def _eval_expr(expr: AffineExpr, coords: Coords, count: int) -> np.ndarray:
    """An affine expression evaluated on many coordinate tuples at once."""
    if isinstance(expr, AffineDimExpr):
        return coords[expr.position].astype(np.int64)
    if isinstance(expr, AffineConstantExpr):
        return np.full(count, expr.value, dtype=np.int64)
    if not isinstance(expr, AffineBinaryOpExpr):
        raise ValueError(f"cannot evaluate affine expression {expr}: maps with symbols are not packable")
    lhs = _eval_expr(expr.lhs, coords, count)
    rhs = _eval_expr(expr.rhs, coords, count)
    return _EVAL[expr.kind](lhs, rhs)


def _eval_map(amap: AffineMap, coords: Coords, count: int) -> Coords:
    return tuple(_eval_expr(expr, coords, count) for expr in amap.results)


def _segment_end(lts: Sequence[LevelType], lvl: int) -> int:
    """End of the singleton run after level `lvl` (exclusive)."""
    end = lvl + 1
    while end < len(lts) and lts[end].is_singleton:
        end += 1
    return end


def _num_batch_levels(lts: Sequence[LevelType]) -> int:
    count = 0
    while count < len(lts) and lts[count].is_batch:
        count += 1
    return count


def _check_packable(enc: SparseTensorEncodingAttr, shape: tuple[int, ...]) -> None:
    if enc.is_slice():
        raise ValueError(
            "cannot pack a sliced encoding (a view of another tensor); pack the tensor it slices"
        )
    if enc.lvl_to_dim_map is None:
        raise ValueError("cannot pack an encoding whose map has symbols; give a concrete map")
    if len(shape) != enc.dim_rank:
        raise ValueError(
            f"array of rank {len(shape)} does not match the encoding's {enc.dim_rank} dimensions"
        )


def _structured_width(lvl_type: LevelType) -> int:
    return math.ceil(math.log2(lvl_type.m)) if lvl_type.m > 1 else 0


def _level_widths(enc: SparseTensorEncodingAttr) -> tuple[int, int]:
    return _width(enc.pos_bitwidth), _width(enc.crd_bitwidth)


@dataclass
class _LevelState:
    """Packing state after a level: its entry count, the entry of every nonzero and
    the batch of every entry."""

    entries: int
    nz_entry: np.ndarray
    batch: np.ndarray


def _pack_structured(
    enc: SparseTensorEncodingAttr,
    lvl: int,
    state: _LevelState,
    lvl_coords: Coords,
    lvl_shape: tuple[int, ...],
) -> tuple[_LevelState, np.ndarray]:
    """Exactly n slots per block of m: the nonzeros' positions, padded with the first
    zero positions of the block, in increasing order. Fails on blocks with > n nonzeros."""
    lvl_type = enc.lvl_type(lvl)
    n, m, blocks = lvl_type.n, lvl_type.m, state.entries
    counts = np.bincount(state.nz_entry, minlength=blocks)
    if counts.size and counts.max() > n:
        _fail_structured(enc, lvl_shape, int(np.argmax(counts > n)), int(counts.max()), n, m)
    mask = np.zeros((blocks, m), dtype=bool)
    mask[state.nz_entry, lvl_coords[lvl]] = True
    kept = np.sort(np.argsort(~mask, axis=1, kind="stable")[:, :n], axis=1)
    kept_mask = np.zeros((blocks, m), dtype=bool)
    np.put_along_axis(kept_mask, kept, True, axis=1)
    rank = np.cumsum(kept_mask, axis=1) - 1
    nz_entry = state.nz_entry * n + rank[state.nz_entry, lvl_coords[lvl]]
    new = _LevelState(blocks * n, nz_entry, np.repeat(state.batch, n))
    return new, kept.ravel().astype(np.int64)


def _fail_structured(
    enc: SparseTensorEncodingAttr, lvl_shape: tuple[int, ...], block: int, count: int, n: int, m: int
) -> None:
    prefix = np.unravel_index(block, lvl_shape[:-1]) if len(lvl_shape) > 1 else ()
    lvl_coords = tuple(np.array([int(c)]) for c in prefix) + (np.array([0]),)
    assert enc.lvl_to_dim_map is not None
    start = tuple(int(c[0]) for c in _eval_map(enc.lvl_to_dim_map, lvl_coords, 1))
    raise ValueError(
        f"data does not satisfy {n}:{m} structured sparsity: block {block} (level coordinates "
        f"{tuple(int(c) for c in prefix)}, starting at element {start}) holds {count} nonzeros, "
        f"at most {n} allowed; prune it first (e.g. prune-nm{{n={n} m={m}}})"
    )


def _pack_compressed(
    enc: SparseTensorEncodingAttr, lvl: int, state: _LevelState, lvl_coords: Coords
) -> tuple[_LevelState, np.ndarray, np.ndarray]:
    """Entries: the distinct (parent, coordinates of this level and the singleton run
    after it) of the nonzeros, in lexicographic order. Returns the new state, the
    positions (parents + 1, or a (lo, hi) pair per parent when loose) and coordinates."""
    lts = enc.level_types
    end = _segment_end(lts, lvl)
    keys = [state.nz_entry, *lvl_coords[lvl:end]]
    count = state.nz_entry.size
    new = np.zeros(count, dtype=bool)
    new[:1] = True
    for key in keys:
        new[1:] |= key[1:] != key[:-1]
    nz_entry = np.cumsum(new) - 1
    parent = state.nz_entry[new]
    coords = lvl_coords[lvl][new]
    if lts[lvl].is_unique and end > lvl + 1:
        _check_unique(lvl, parent, coords)
    per_parent = np.bincount(parent, minlength=state.entries)
    bounds = np.concatenate(([0], np.cumsum(per_parent))).astype(np.int64)
    positions = bounds
    if lts[lvl].is_loose_compressed:
        positions = np.stack([bounds[:-1], bounds[1:]], axis=1).ravel()
    new_state = _LevelState(int(new.sum()), nz_entry, state.batch[parent])
    return new_state, positions, coords.astype(np.int64)


def _check_unique(lvl: int, parent: np.ndarray, coords: np.ndarray) -> None:
    repeated = (parent[1:] == parent[:-1]) & (coords[1:] == coords[:-1])
    if repeated.any():
        raise ValueError(
            f"level {lvl} is unique but coordinate {int(coords[1:][repeated][0])} has several "
            "children in the singleton levels below it; mark the level nonunique (COO)"
        )


def _pack_singleton(lvl: int, state: _LevelState, lvl_coords: Coords) -> np.ndarray:
    coords = np.zeros(state.entries, dtype=np.int64)
    coords[state.nz_entry] = lvl_coords[lvl]
    return coords


def _pack_mlir(x: np.ndarray, enc: SparseTensorEncodingAttr) -> _Layout:
    """MLIR's storage of `x`: level coordinates of the nonzeros sorted
    lexicographically, then level by level the entries each level stores."""
    _check_packable(enc, x.shape)
    lvl_shape = tuple(int(s) for s in enc.lvl_shape(x.shape))
    nonzero = np.nonzero(x)
    count = nonzero[0].size if nonzero else 0
    lvl_coords = _eval_map(enc.dim_to_lvl_map, nonzero, count)
    order = np.lexsort(lvl_coords[::-1]) if lvl_coords else np.arange(count)
    lvl_coords = tuple(c[order] for c in lvl_coords)
    values = x[tuple(c[order] for c in nonzero)]
    state = _LevelState(1, np.zeros(count, dtype=np.int64), np.zeros(1, dtype=np.int64))
    num_batch = _num_batch_levels(enc.level_types)
    positions: dict[int, np.ndarray] = {}
    coordinates: dict[int, np.ndarray] = {}
    batches: dict[int, np.ndarray] = {}
    for lvl, lvl_type in enumerate(enc.level_types):
        parent_batch = state.batch
        if lvl_type.has_dense_semantic:
            size = lvl_shape[lvl]
            nz_entry = state.nz_entry * size + lvl_coords[lvl]
            batch = np.arange(state.entries * size) if lvl < num_batch else np.repeat(state.batch, size)
            state = _LevelState(state.entries * size, nz_entry, batch)
        elif lvl_type.is_structured:
            state, coordinates[lvl] = _pack_structured(enc, lvl, state, lvl_coords, lvl_shape)
        elif lvl_type.is_singleton:
            coordinates[lvl] = _pack_singleton(lvl, state, lvl_coords)
        else:
            state, positions[lvl], coordinates[lvl] = _pack_compressed(enc, lvl, state, lvl_coords)
        batches[lvl] = parent_batch
        batches[lvl + 1] = state.batch
    stored = np.zeros(state.entries, dtype=x.dtype)
    stored[state.nz_entry] = values
    slots = _mlir_global_slots(enc, lvl_shape, positions, coordinates, state.entries)
    meta = {"nnz": int(count), "stored": int(state.entries)}
    store: Callable[[np.ndarray], np.ndarray] = lambda flat: flat  # noqa: E731
    if num_batch:
        batch_shape = lvl_shape[:num_batch]
        positions, coordinates = _batch_levels(enc, batch_shape, positions, coordinates, batches)
        store = _batcher(batch_shape, state.batch)
    index, widths = _mlir_buffers(enc, positions, coordinates)
    return _Layout(index, widths, meta, stored, slots, store)


def _mlir_buffers(
    enc: SparseTensorEncodingAttr,
    positions: dict[int, np.ndarray],
    coordinates: dict[int, np.ndarray],
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Name the per-level buffers, give them their bit widths (checking that values
    fit) and merge an array-of-structures COO region into one coordinates buffer."""
    pos_bits, crd_bits = _level_widths(enc)
    index: dict[str, np.ndarray] = {}
    widths: dict[str, int] = {}
    for lvl, pos in positions.items():
        name = f"positions[{lvl}]"
        index[name] = _as_uint(pos, pos_bits, f"{name} (posWidth = {enc.pos_bitwidth})")
        widths[name] = pos_bits
    for lvl, crd in coordinates.items():
        lvl_type = enc.lvl_type(lvl)
        bits = _structured_width(lvl_type) if lvl_type.is_structured else crd_bits
        name = f"coordinates[{lvl}]"
        index[name] = _as_uint(crd, max(bits, 1), f"{name} (crdWidth = {enc.crd_bitwidth})")
        widths[name] = bits
    for start, end, soa in enc.coo_segments():
        if soa:
            continue
        names = [f"coordinates[{lvl}]" for lvl in range(start, end)]
        index[names[0]] = np.stack([index.pop(name) for name in names], axis=-1)
        for name in names[1:]:
            widths.pop(name)
    return index, widths


def _mlir_global_slots(
    enc: SparseTensorEncodingAttr,
    lvl_shape: tuple[int, ...],
    positions: Mapping[int, np.ndarray],
    coordinates: Mapping[int, np.ndarray],
    num_slots: int,
) -> Coords:
    """Dimension coordinates of every value slot (all slots live, as `pack` makes them)."""
    ids, lvl_coords = _walk_levels(enc, lvl_shape, positions, coordinates)
    assert enc.lvl_to_dim_map is not None
    dims = _eval_map(enc.lvl_to_dim_map, lvl_coords, ids.size)
    full = []
    for coords in dims:
        slot_coords = np.zeros(num_slots, dtype=np.int64)
        slot_coords[ids] = coords
        full.append(slot_coords)
    return tuple(full)


def _walk_levels(
    enc: SparseTensorEncodingAttr,
    lvl_shape: tuple[int, ...],
    positions: Mapping[int, np.ndarray],
    coordinates: Mapping[int, np.ndarray],
) -> tuple[np.ndarray, Coords]:
    """Top-down over the levels: the storage id of every live leaf entry (its value
    slot) and its level coordinates. Batch levels are walked like dense ones."""
    ids = np.zeros(1, dtype=np.int64)
    coords: list[np.ndarray] = []
    for lvl, lvl_type in enumerate(enc.level_types):
        if lvl_type.has_dense_semantic or lvl_type.is_structured:
            size = lvl_type.n if lvl_type.is_structured else lvl_shape[lvl]
            parent = np.repeat(np.arange(ids.size), size)
            within = np.tile(np.arange(size, dtype=np.int64), ids.size)
            ids = np.repeat(ids * size, size) + within
            new = coordinates[lvl].astype(np.int64)[ids] if lvl_type.is_structured else within
        elif lvl_type.is_singleton:
            parent = np.arange(ids.size)
            new = coordinates[lvl].astype(np.int64)[ids]
        else:
            pos = positions[lvl].astype(np.int64)
            if lvl_type.is_loose_compressed:
                starts, ends = pos[2 * ids], pos[2 * ids + 1]
            else:
                starts, ends = pos[ids], pos[ids + 1]
            counts = ends - starts
            parent = np.repeat(np.arange(ids.size), counts)
            ids = _ranges(starts, counts)
            new = coordinates[lvl].astype(np.int64)[ids]
        coords = [c[parent] for c in coords]
        coords.append(new)
    return ids, tuple(coords)


# -- batch levels: MLIR's rectangular memref<[batch] x ? x T> buffers ------- #


def _batcher(batch_shape: tuple[int, ...], batch: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """A function laying out a per-entry array (entries sorted by batch) as
    (*batch_shape, longest batch, ...), shorter batches padded with zeros."""
    num = math.prod(batch_shape)
    counts = np.bincount(batch, minlength=num)
    starts = np.cumsum(counts) - counts
    width = int(counts.max()) if counts.size else 0
    rank = np.arange(batch.size) - starts[batch]

    def store(flat: np.ndarray) -> np.ndarray:
        out = np.zeros((num, width, *flat.shape[1:]), dtype=flat.dtype)
        out[batch, rank] = flat
        return out.reshape(*batch_shape, width, *flat.shape[1:])

    return store


def _batch_positions(
    pos: np.ndarray, loose: bool, parent_batch: np.ndarray, child_batch: np.ndarray, num: int
) -> np.ndarray:
    """Per-batch positions, relative to the batch's first entry: (num, longest + 1)
    (or (num, 2 x longest) pairs when loose)."""
    parents = np.bincount(parent_batch, minlength=num)
    children = np.bincount(child_batch, minlength=num)
    base = np.cumsum(children) - children
    rank = np.arange(parent_batch.size) - (np.cumsum(parents) - parents)[parent_batch]
    longest = int(parents.max()) if parents.size else 0
    if loose:
        out = np.zeros((num, 2 * longest), dtype=np.int64)
        out[parent_batch, 2 * rank] = pos[0::2] - base[parent_batch]
        out[parent_batch, 2 * rank + 1] = pos[1::2] - base[parent_batch]
        return out
    out = np.zeros((num, longest + 1), dtype=np.int64)
    out[parent_batch, rank] = pos[:-1] - base[parent_batch]
    out[np.arange(num), parents] = children
    return out


def _batch_levels(
    enc: SparseTensorEncodingAttr,
    batch_shape: tuple[int, ...],
    positions: dict[int, np.ndarray],
    coordinates: dict[int, np.ndarray],
    batches: dict[int, np.ndarray],
) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """Global per-level buffers -> rectangular batched buffers."""
    num = math.prod(batch_shape)
    new_positions = {
        lvl: _batch_positions(
            pos, enc.lvl_type(lvl).is_loose_compressed, batches[lvl], batches[lvl + 1], num
        ).reshape(*batch_shape, -1)
        for lvl, pos in positions.items()
    }
    new_coordinates = {lvl: _batcher(batch_shape, batches[lvl + 1])(crd) for lvl, crd in coordinates.items()}
    return new_positions, new_coordinates


def _unbatch_levels(
    enc: SparseTensorEncodingAttr,
    lvl_shape: tuple[int, ...],
    positions: dict[int, np.ndarray],
    coordinates: dict[int, np.ndarray],
) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray], np.ndarray]:
    """Rectangular batched buffers -> global ones; also the leaf entries per batch."""
    num_batch = _num_batch_levels(enc.level_types)
    num = math.prod(lvl_shape[:num_batch])
    parents = np.ones(num, dtype=np.int64)
    glob_pos: dict[int, np.ndarray] = {}
    glob_crd: dict[int, np.ndarray] = {}
    for lvl in range(num_batch, enc.lvl_rank):
        lvl_type = enc.lvl_type(lvl)
        if lvl_type.has_dense_semantic:
            entries = parents * lvl_shape[lvl]
        elif lvl_type.is_structured:
            entries = parents * lvl_type.n
        elif lvl_type.is_singleton:
            entries = parents
        else:
            glob_pos[lvl], entries = _unbatch_positions(
                positions[lvl].reshape(num, -1), parents, lvl_type.is_loose_compressed
            )
        if lvl in coordinates:
            glob_crd[lvl] = _unbatch(coordinates[lvl], entries)
        parents = entries
    return glob_pos, glob_crd, parents


def _unbatch(rect: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The first counts[b] rows of each batch b, concatenated."""
    rows = rect.reshape(counts.size, -1)
    return rows[np.arange(rows.shape[1]) < counts[:, None]]


def _unbatch_positions(
    rows: np.ndarray, parents: np.ndarray, loose: bool
) -> tuple[np.ndarray, np.ndarray]:
    rows = rows.astype(np.int64)
    per_parent = 2 if loose else 1
    live = np.arange(rows.shape[1]) < (parents * per_parent)[:, None]
    if loose:
        entries = np.where(live, rows, 0).max(axis=1) if rows.shape[1] else np.zeros(parents.size, np.int64)
    else:
        entries = rows[np.arange(parents.size), parents]
    base = np.cumsum(entries) - entries
    body = rows[live] + np.repeat(base, parents * per_parent)
    if loose:
        return body, entries
    return np.concatenate((body, [int(entries.sum())])), entries


def _mlir_slots(
    enc: SparseTensorEncodingAttr, shape: tuple[int, ...], buffers: Mapping[str, np.ndarray]
) -> _Slots:
    _check_packable(enc, shape)
    lvl_shape = tuple(int(s) for s in enc.lvl_shape(shape))
    positions = {
        lvl: buffers[f"positions[{lvl}]"] for lvl in range(enc.lvl_rank) if f"positions[{lvl}]" in buffers
    }
    coordinates = _split_aos(enc, buffers)
    load: Callable[[np.ndarray], np.ndarray] = np.ravel
    if _num_batch_levels(enc.level_types):
        positions, coordinates, leaves = _unbatch_levels(enc, lvl_shape, positions, coordinates)
        load = lambda rect: _unbatch(rect, leaves)  # noqa: E731
    ids, lvl_coords = _walk_levels(enc, lvl_shape, positions, coordinates)
    assert enc.lvl_to_dim_map is not None
    dims = _eval_map(enc.lvl_to_dim_map, lvl_coords, ids.size)
    return _Slots(dims, lambda stored: load(stored)[ids])


def _split_aos(enc: SparseTensorEncodingAttr, buffers: Mapping[str, np.ndarray]) -> dict[int, np.ndarray]:
    """Per-level coordinates, splitting an array-of-structures COO buffer."""
    coordinates = {
        lvl: buffers[f"coordinates[{lvl}]"]
        for lvl in range(enc.lvl_rank)
        if f"coordinates[{lvl}]" in buffers
    }
    for start, end, soa in enc.coo_segments():
        if soa:
            continue
        merged = coordinates[start]
        for lvl in range(start, end):
            coordinates[lvl] = merged[..., lvl - start]
    return coordinates


# ===----------------------------------------------------------------------=== #
# Value encodings: plain, codebook, quantized
# ===----------------------------------------------------------------------=== #


def dequantize(codes: np.ndarray, scale: np.ndarray | float, zero_point: np.ndarray | int) -> np.ndarray:
    """The values codes represent: scale * (code - zero_point), in float64. Passes that
    quantize should produce their logical values with this function (then cast to the
    element type) so that packing recovers the codes exactly."""
    return np.asarray(scale, dtype=np.float64) * (np.asarray(codes, dtype=np.int64) - zero_point)


def _first_bad(bad: np.ndarray, slots: Coords) -> tuple[int, ...]:
    index = int(np.flatnonzero(bad)[0])
    return tuple(int(c[index]) for c in slots)


def _encode_codebook(
    values: np.ndarray,
    slots: Coords,
    enc: CodebookAttr,
    value_bits: int,
    aux: Mapping[str, np.ndarray] | None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, int]]:
    given = _aux_array(
        aux,
        "codebook",
        f"give the {enc.size}-entry codebook of {enc} (DataStore key <kernel>.<symbol>#codebook) "
        "as aux={'codebook': array}",
    ).ravel()
    if given.size > enc.size:
        raise ValueError(
            f"the codebook has {given.size} entries but {enc.bit_width}-bit indices address only {enc.size}"
        )
    table = np.zeros(enc.size, dtype=values.dtype)
    table[: given.size] = given.astype(values.dtype)
    order = np.argsort(table, kind="stable")
    sorted_table = table[order]
    where = np.clip(np.searchsorted(sorted_table, values), 0, enc.size - 1)
    codes = order[where]
    bad = table[codes] != values
    if bad.any():
        element = _first_bad(bad, slots)
        raise ValueError(
            f"value {float(values[bad][0]):.7g} at element {element} is not in the codebook; every stored "
            "value (including zeros the layout stores as padding) must be a codebook entry"
        )
    slot_buffers = {"indices": codes.astype(_uint_dtype(enc.bit_width))}
    return slot_buffers, {"codebook": table}, {"indices": enc.bit_width, "codebook": value_bits}


def _quant_params(
    enc: QuantizedAttr, shape: tuple[int, ...], aux: Mapping[str, np.ndarray] | None
) -> tuple[np.ndarray, np.ndarray]:
    """(scales, zero points): one each per tensor, or per channel from `aux`."""
    if not enc.is_per_channel and enc.scale_value is None:
        scale = _aux_array(aux, "scale", f"give the run-time scale of {enc} as aux={{'scale': array}}")
        zero = (aux or {}).get("zero_point", np.zeros(1))
        return np.asarray(scale, dtype=np.float64).ravel()[:1], np.asarray(zero).astype(np.int64).ravel()[:1]
    if not enc.is_per_channel:
        zero_point = enc.zero_point_value or 0
        return np.array([enc.scale_value], dtype=np.float64), np.array([zero_point], dtype=np.int64)
    axis = enc.channel_axis or 0
    if axis >= len(shape):
        raise ValueError(f"{enc}: axis {axis} is out of range for shape {shape}")
    channels = shape[axis]
    scale = _aux_array(
        aux,
        "scale",
        f"give the {channels} per-channel scales of {enc} (DataStore key <kernel>.<symbol>#scale) "
        "as aux={'scale': array}",
    ).astype(np.float64).ravel()
    given_zp = (aux or {}).get("zero_point", (aux or {}).get("#zero_point"))
    zero_point = np.zeros(channels, dtype=np.int64)
    if given_zp is not None:
        zero_point = np.asarray(given_zp).astype(np.int64).ravel()
    if scale.size != channels or zero_point.size != channels:
        raise ValueError(
            f"{enc} needs {channels} scales and zero points (dimension {axis} of shape {shape}), "
            f"got {scale.size} and {zero_point.size}"
        )
    if not (np.all(np.isfinite(scale)) and np.all(scale > 0)):
        raise ValueError(f"{enc}: per-channel scales must be positive and finite")
    low, high = enc.code_range
    if enc.is_symmetric and np.any(zero_point != 0):
        raise ValueError(f"{enc} is symmetric: per-channel zero points must all be 0")
    if np.any((zero_point < low) | (zero_point > high)):
        raise ValueError(f"{enc}: per-channel zero points must lie in [{low}, {high}]")
    return scale, zero_point


def _channels(enc: QuantizedAttr, slots: Coords, count: int, channels: int) -> np.ndarray:
    if not enc.is_per_channel:
        return np.zeros(count, dtype=np.int64)
    return np.clip(slots[enc.channel_axis or 0], 0, channels - 1)


def _encode_quantized(
    values: np.ndarray,
    slots: Coords,
    enc: QuantizedAttr,
    shape: tuple[int, ...],
    aux: Mapping[str, np.ndarray] | None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, int]]:
    scale, zero_point = _quant_params(enc, shape, aux)
    channel = _channels(enc, slots, values.size, scale.size)
    real = values.astype(np.float64)
    codes = np.rint(real / scale[channel]).astype(np.int64) + zero_point[channel]
    low, high = enc.code_range
    tolerance = 1e-3 * scale[channel]
    if np.issubdtype(values.dtype, np.floating):
        tolerance = tolerance + 4 * np.finfo(values.dtype).eps * np.abs(real)
    error = np.abs(dequantize(codes, scale[channel], zero_point[channel]) - real)
    bad = (codes < low) | (codes > high) | (error > tolerance)
    if bad.any():
        element = _first_bad(bad, slots)
        raise ValueError(
            f"value {float(values[bad][0]):.7g} at element {element} is not representable by {enc}: values "
            f"must be scale * (q - zero_point) with integer q in [{low}, {high}]; quantize the tensor first"
        )
    bits = enc.bit_width
    slot_buffers = {"codes": codes.astype(np.int64 if enc.is_symmetric else _uint_dtype(bits))}
    side = {"scale": scale}
    widths = {"codes": bits, "scale": SCALE_BITS}
    if not enc.is_symmetric:
        side["zero_point"] = zero_point
        widths["zero_point"] = bits
    return slot_buffers, side, widths


def _decode_values(packed: Packed, slots: _Slots) -> np.ndarray:
    enc = packed.encoding
    if isinstance(enc, CodebookAttr):
        return packed.buffers["codebook"][slots.load(packed.buffers["indices"]).astype(np.int64)]
    if isinstance(enc, QuantizedAttr):
        scale = packed.buffers["scale"].astype(np.float64)
        zero_point = packed.buffers.get("zero_point", np.zeros(scale.size, dtype=np.int64)).astype(np.int64)
        codes = slots.load(packed.buffers["codes"])
        channel = _channels(enc, slots.coords, codes.size, scale.size)
        return dequantize(codes, scale[channel], zero_point[channel])
    return slots.load(packed.buffers["values"])


# ===----------------------------------------------------------------------=== #
# Public API
# ===----------------------------------------------------------------------=== #


def pack(
    array: np.ndarray,
    encoding: Attribute | None,
    *,
    value_bits: int,
    aux: Mapping[str, np.ndarray] | None = None,
) -> Packed:
    """Pack the dense logical values `array` into `encoding`'s buffers.

    `value_bits` is the width of one stored value (the element type's, e.g. 32 for
    f32; for a codebook, the width of its entries). `aux` holds the arrays the
    DataStore keeps next to the tensor: `codebook`, `scale`, `zero_point`.
    Raises ValueError when the data does not fit the format (an n:m block with too
    many nonzeros, a value missing from the codebook, a position too wide for
    posWidth, ...), naming the element or block and what to change.
    """
    x = np.asarray(array)
    if value_bits < 1:
        raise ValueError(f"value_bits must be >= 1 (the element type's width), got {value_bits}")
    if isinstance(encoding, NoneAttr):
        encoding = None
    if isinstance(encoding, DiagonalAttr):
        return pack_diagonal(x, encoding, value_bits, aux)
    if isinstance(layout_of(encoding), BitColumnAttr):
        return _pack_bitcolumn(x, encoding, value_bits, aux)
    layout = _pack_layout(x, layout_of(encoding))
    if isinstance(encoding, CodebookAttr):
        slot_buffers, side, widths = _encode_codebook(layout.values, layout.slots, encoding, value_bits, aux)
    elif isinstance(encoding, QuantizedAttr):
        slot_buffers, side, widths = _encode_quantized(layout.values, layout.slots, encoding, x.shape, aux)
    else:
        slot_buffers, side, widths = {"values": layout.values}, {}, {"values": value_bits}
    buffers = {**layout.index, **{k: layout.store(v) for k, v in slot_buffers.items()}, **side}
    return Packed(
        encoding=encoding,
        shape=tuple(int(s) for s in x.shape),
        dtype=x.dtype,
        value_bits=value_bits,
        buffers=buffers,
        widths={**layout.widths, **widths},
        meta=dict(layout.meta),
    )


def unpack(packed: Packed) -> np.ndarray:
    """The dense logical values of a packed tensor (zeros where nothing is stored)."""
    if isinstance(packed.encoding, DiagonalAttr):
        return unpack_diagonal(packed)
    if isinstance(layout_of(packed.encoding), BitColumnAttr):
        return _unpack_bitcolumn(packed)
    slots = _layout_slots(layout_of(packed.encoding), packed.shape, packed.buffers)
    values = _decode_values(packed, slots)
    dense = np.zeros(packed.shape, dtype=packed.dtype)
    inside = np.ones(values.size, dtype=bool)
    for coords, size in zip(slots.coords, packed.shape, strict=True):
        inside &= (coords >= 0) & (coords < size)
    dense[tuple(c[inside] for c in slots.coords)] = values[inside].astype(packed.dtype)
    return dense


def _pack_bitcolumn(x: np.ndarray, encoding: Attribute | None, value_bits: int,
                    aux: Mapping[str, np.ndarray] | None) -> Packed:
    """Bit columns of the tensor's 8-bit codes: quantization codes when nested in a
    quantized encoding, else the (integer) values themselves."""
    layout = layout_of(encoding)
    assert isinstance(layout, BitColumnAttr)
    if x.ndim != 2:
        raise ValueError(f"{describe(layout)} stores a rank-2 tensor, got shape {x.shape}")
    side: dict[str, np.ndarray] = {}
    widths: dict[str, int] = {}
    if isinstance(encoding, QuantizedAttr):
        slot_buffers, side, widths = _encode_quantized(x.ravel(), _dense_slots(x.shape),
                                                      encoding, x.shape, aux)
        codes = slot_buffers["codes"].astype(np.int64).reshape(x.shape)
        widths.pop("codes")
    else:
        codes = np.rint(x).astype(np.int64)
        if np.any(codes != x):
            raise ValueError(f"{describe(layout)} stores integer codes; quantize{{bits=8}} first")
    try:
        columns = bc.pack_columns(codes, layout.group_size, layout.group_axis,
                                  sign_magnitude=layout.is_sign_magnitude)
    except bc.BitColumnError as err:
        raise ValueError(str(err)) from None
    buffers = {"col_mask": columns.masks, "columns": columns.columns, **side}
    return Packed(encoding=encoding, shape=tuple(int(v) for v in x.shape), dtype=x.dtype,
                  value_bits=value_bits, buffers=buffers,
                  widths={"col_mask": bc.MASK_BITS, "columns": 1, **widths},
                  meta={"nnz": int(np.count_nonzero(codes)), "stored": int(codes.size),
                        "kept_columns": columns.kept_columns})


def bitcolumn_codes(packed: Packed) -> np.ndarray:
    """The int64 codes of a bit-column tensor, rebuilt from its mask and kept columns."""
    layout = layout_of(packed.encoding)
    assert isinstance(layout, BitColumnAttr)
    columns = bc.PackedColumns(packed.shape, layout.group_size, layout.group_axis,  # type: ignore[arg-type]
                               layout.is_sign_magnitude, packed.buffers["col_mask"],
                               packed.buffers["columns"])
    return bc.unpack_columns(columns)


def _unpack_bitcolumn(packed: Packed) -> np.ndarray:
    codes = bitcolumn_codes(packed)
    enc = packed.encoding
    if not isinstance(enc, QuantizedAttr):
        return codes.astype(packed.dtype)
    scale = packed.buffers["scale"].astype(np.float64)
    if enc.is_per_channel:
        shape = [1, 1]
        shape[enc.channel_axis or 0] = -1
        scale = scale.reshape(shape)
    return dequantize(codes, scale, 0).astype(packed.dtype)


def storage_bits(
    array: np.ndarray,
    encoding: Attribute | None,
    value_bits: int,
    aux: Mapping[str, np.ndarray] | None = None,
) -> int:
    """Exact storage in bits of `array` in `encoding` (see `pack`)."""
    return pack(array, encoding, value_bits=value_bits, aux=aux).bits


# ===----------------------------------------------------------------------=== #
# Diagonal (DIA) storage: ASADI's format for attention masks and scores
# ===----------------------------------------------------------------------=== #

DIAGONAL_OVERFLOW = ("extend", "drop")
"""What `place_diagonals` does with an off-band element that finds no bubble in its
column: `extend` stores it on an overflow diagonal (lossless; ASADI: "store them in a
new diagonal"), `drop` removes it (lossy)."""


def _bits_for(count: int) -> int:
    """Bits of an unsigned index that takes `count` distinct values (at least 1)."""
    return max(1, math.ceil(math.log2(count))) if count > 1 else 1


def band_offsets(t: int, s: int, w: int) -> np.ndarray:
    """The `w` consecutive offsets (j - i) of the central band of a T x S matrix.

    The band starts at (S - T) - w // 2 (centred on the diagonal that aligns queries
    with the last keys, as attention masks do), shifted to lie inside the T + S - 1
    offsets the matrix has; w is capped at T + S - 1.
    """
    total = t + s - 1
    w = max(1, min(w, total))
    lo = (s - t) - w // 2
    lo = min(max(lo, -(t - 1)), (s - 1) - (w - 1))
    return np.arange(lo, lo + w, dtype=np.int64)


def overflow_offsets(band: np.ndarray, count: int, t: int, s: int) -> np.ndarray:
    """Offsets of `count` overflow diagonals: the free offsets nearest the band, above
    and below in turn (hi + 1, lo - 1, hi + 2, ...). They only label the diagonals
    (ASADI's row selector shifts Q by them); their slots hold moved elements."""
    free = np.setdiff1d(np.arange(-(t - 1), s, dtype=np.int64), band)
    centre = (band[0] + band[-1]) / 2
    order = np.lexsort((free < centre, np.abs(free - centre)))
    return free[order][:count]


@dataclass(frozen=True, eq=False)
class DiagonalLayout:
    """Which element each DIA slot holds: the structure `#sparsec.diagonal` describes.

    `offsets` [D]: the band's `band` consecutive offsets, then the overflow diagonals'.
    `moved` [M, 3]: (diagonal index k, column j, original row R_o) of every element
    stored in a slot that is not its own, sorted by (k, j); its R_d is j - offsets[k].
    A band slot (k, j) holds element (R_o, j) when an element moved there, else its
    natural element (j - offsets[k], j) when that lies inside the matrix; an overflow
    diagonal's slot holds only an element moved there. Every other slot is padding.
    """

    shape: tuple[int, int]
    band: int
    offsets: np.ndarray
    moved: np.ndarray

    @property
    def count(self) -> int:
        return int(self.offsets.size)

    @property
    def num_moved(self) -> int:
        return int(self.moved.shape[0])

    def slot_rows(self) -> np.ndarray:
        """[D, S] row of the element each slot holds, -1 for padding."""
        t, s = self.shape
        rows = np.arange(s, dtype=np.int64)[None, :] - self.offsets[:, None]
        rows = np.where((rows >= 0) & (rows < t), rows, -1)
        rows[self.band:] = -1
        k, j, origin = self.moved.T
        rows[k, j] = origin
        return rows

    def lengths(self) -> np.ndarray:
        """[D] slots of each diagonal in use: a band diagonal's slots inside the matrix
        (the length of its ReRAM vector), an overflow diagonal's moved elements."""
        t, s = self.shape
        o = self.offsets
        inside = np.maximum(0, np.minimum(s, t + o) - np.maximum(0, o))
        return np.where(np.arange(self.count) < self.band, inside, self.moved_per_diagonal())

    def moved_per_diagonal(self) -> np.ndarray:
        """[D] moved elements stored in each diagonal (the copies of ASADI's (R_d, R_o))."""
        return np.bincount(self.moved[:, 0], minlength=self.count).astype(np.int64)

    def gather(self, array: np.ndarray) -> np.ndarray:
        """[.., D, S] slot values of a dense [.., T, S] array (0 in padding slots)."""
        rows = self.slot_rows()
        live = rows >= 0
        cols = np.broadcast_to(np.arange(self.shape[1]), rows.shape)
        values = np.zeros((*array.shape[:-2], *rows.shape), dtype=array.dtype)
        values[..., live] = array[..., rows[live], cols[live]]
        return values

    def scatter(self, values: np.ndarray) -> np.ndarray:
        """The dense [.., T, S] array whose slot values are `values` [.., D, S]."""
        rows = self.slot_rows()
        live = rows >= 0
        cols = np.broadcast_to(np.arange(self.shape[1]), rows.shape)
        dense = np.zeros((*values.shape[:-2], *self.shape), dtype=values.dtype)
        dense[..., rows[live], cols[live]] = values[..., live]
        return dense

    def covered(self) -> np.ndarray:
        """[T, S] True where some slot holds the element."""
        return self.scatter(np.ones((self.count, self.shape[1]), dtype=bool))

    def aux(self) -> dict[str, np.ndarray]:
        """The arrays the DataStore keeps beside the tensor (`#offsets`, `#moved`)."""
        return {"offsets": self.offsets, "moved": self.moved}

    @classmethod
    def from_aux(cls, shape: tuple[int, int], band: int,
                 aux: Mapping[str, np.ndarray]) -> DiagonalLayout:
        """The layout from the DataStore's `#offsets` and `#moved` arrays."""
        offsets = _aux_array(aux, "offsets", "give the diagonal offsets (<kernel>.<symbol>"
                             "#offsets) as aux={'offsets': ..., 'moved': ...}")
        moved = aux.get("moved", aux.get("#moved", np.zeros((0, 3))))
        return cls(shape, band, offsets.astype(np.int64).ravel(),
                   np.asarray(moved).astype(np.int64).reshape(-1, 3))


@dataclass(frozen=True, eq=False)
class DiagonalPlacement:
    """What `place_diagonals` did: the layout, and the elements it could not store."""

    layout: DiagonalLayout
    dropped: np.ndarray
    """[X, 2] (row, column) of the off-band elements `overflow=drop` removed."""
    off_band: int
    """Nonzeros outside the band (moved into bubbles, to overflow diagonals or dropped)."""
    into_bubbles: int
    """Off-band nonzeros moved into bubbles of the band."""


def _bubbles(mask: np.ndarray, band: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Band slots whose natural element is zero: (per-column count, first index of each
    column, rows), rows listed column by column from the top of the band (highest
    offset) down."""
    t, s = mask.shape
    cols = np.arange(s, dtype=np.int64)[:, None]
    rows = cols - band[::-1][None, :]
    inside = (rows >= 0) & (rows < t)
    bubble = inside.copy()
    bubble[inside] = ~mask[rows[inside], np.broadcast_to(cols, rows.shape)[inside]]
    count = bubble.sum(axis=1).astype(np.int64)
    return count, np.cumsum(count) - count, rows[bubble]


def _group_rank(groups: np.ndarray) -> np.ndarray:
    """Position of each element within its run of equal (sorted) group keys."""
    first = np.searchsorted(groups, groups, side="left")
    return np.arange(groups.size, dtype=np.int64) - first


def place_diagonals(mask: np.ndarray, w: int, overflow: str = "extend") -> DiagonalPlacement:
    """ASADI's bubble-containing DIA compression of a boolean [T, S] mask (Fig. 7).

    The central `w` diagonals are kept (`band_offsets`). Each nonzero outside the band
    keeps its column and moves to a bubble of that column in the band: in each column,
    off-band elements are taken nearest-first (distance to the band; above the band
    before below on ties); an element above the band takes the topmost free bubble (the
    kept diagonal nearest to it), one below the band the bottommost, until the column's
    bubbles run out. The rest overflow: `extend` stores the n-th of each column (same
    order) in slot j of the n-th overflow diagonal (`overflow_offsets`); `drop` removes
    them. When the band plus overflow diagonals would exceed the T + S - 1 diagonals of
    the matrix, `extend` keeps all of them as the band instead (nothing moves).
    """
    if overflow not in DIAGONAL_OVERFLOW:
        raise ValueError(f"overflow must be {' or '.join(DIAGONAL_OVERFLOW)}, got '{overflow}'")
    mask = np.asarray(mask) != 0
    t, s = mask.shape
    band = band_offsets(t, s, w)
    lo, hi = int(band[0]), int(band[-1])
    rows, cols = np.nonzero(mask)
    off = (cols - rows < lo) | (cols - rows > hi)
    rows, cols = rows[off].astype(np.int64), cols[off].astype(np.int64)
    below = (cols - rows < lo).astype(np.int64)
    distance = np.where(below == 1, lo - (cols - rows), (cols - rows) - hi)
    order = np.lexsort((rows, below, distance, cols))
    rows, cols, below = rows[order], cols[order], below[order]
    count, first, bubble_rows = _bubbles(mask, band)
    rank = _group_rank(cols)
    accepted = rank < count[cols]
    moved = [_take_bubbles(rows, cols, accepted & (below == side), side, count, first,
                           bubble_rows, lo) for side in (0, 1)]
    rest = ~accepted
    extra = np.zeros(0, dtype=np.int64)
    dropped = np.stack([rows[rest], cols[rest]], axis=1)
    if overflow == "extend" and rest.any():
        level = (rank - count[cols])[rest]
        extra = overflow_offsets(band, int(level.max()) + 1, t, s)
        if band.size + int(level.max()) + 1 > t + s - 1:
            return place_diagonals(mask, t + s - 1, overflow)
        moved.append(np.stack([band.size + level, cols[rest], rows[rest]], axis=1))
        dropped = np.zeros((0, 2), dtype=np.int64)
    moved_all = np.concatenate(moved).astype(np.int64)
    moved_all = moved_all[np.lexsort((moved_all[:, 1], moved_all[:, 0]))]
    layout = DiagonalLayout((t, s), int(band.size), np.concatenate([band, extra]), moved_all)
    return DiagonalPlacement(layout, dropped, int(off.sum()), int(accepted.sum()))


def _take_bubbles(rows: np.ndarray, cols: np.ndarray, chosen: np.ndarray, below: int,
                  count: np.ndarray, first: np.ndarray, bubble_rows: np.ndarray,
                  lo: int) -> np.ndarray:
    """(band index, column, original row) of the chosen elements of one side: the n-th
    nearest element of a column takes the n-th bubble from its side of the band."""
    c, r = cols[chosen], rows[chosen]
    rank = _group_rank(c)
    index = first[c] + (count[c] - 1 - rank if below else rank)
    destination = bubble_rows[index]
    return np.stack([c - destination - lo, c, r], axis=1).astype(np.int64)


def _diagonal_layout(x: np.ndarray, enc: DiagonalAttr,
                     aux: Mapping[str, np.ndarray] | None) -> DiagonalLayout:
    """The layout from `aux`, or placed (lossless) from the data's nonzeros."""
    shape = (int(x.shape[-2]), int(x.shape[-1]))
    if aux and ("offsets" in aux or "#offsets" in aux):
        layout = DiagonalLayout.from_aux(shape, enc.band, aux)
    else:
        nonzero = (x != 0).reshape(-1, *shape).any(axis=0)
        layout = place_diagonals(nonzero, enc.band, "extend").layout
    if layout.count != enc.count or layout.band != enc.band:
        raise ValueError(f"{enc} holds {enc.count} diagonals ({enc.band} central) but the "
                         f"data needs {layout.count} ({layout.band} central); run "
                         "encode-diagonal to place it")
    return layout


def pack_diagonal(x: np.ndarray, enc: DiagonalAttr, value_bits: int,
                  aux: Mapping[str, np.ndarray] | None = None) -> Packed:
    """Pack [.., T, S] values into DIA buffers: `offsets` (biased by T - 1), `values`
    [.., D, S], `moved_ptr` [D + 1], `moved_col` (R_d's slot) and `moved_row` (R_o) [M]."""
    if x.ndim not in (2, 3):
        raise ValueError(f"sparsec.diagonal: expected a [T, S] or [heads, T, S] array, got "
                         f"shape {x.shape}")
    layout = _diagonal_layout(x, enc, aux)
    t, s = layout.shape
    lost = (x != 0).reshape(-1, t, s).any(axis=0) & ~layout.covered()
    if lost.any():
        row, col = (int(v[0]) for v in np.nonzero(lost))
        raise ValueError(f"element ({row}, {col}) is nonzero but no diagonal of {enc} holds "
                         "it; encode the mask with encode-diagonal first")
    _, j, origin = layout.moved.T
    buffers = {
        "offsets": _as_uint(layout.offsets + (t - 1), _bits_for(t + s - 1), "offsets"),
        "values": layout.gather(x),
        "moved_ptr": np.concatenate(([0], np.cumsum(layout.moved_per_diagonal()))),
        "moved_col": j.astype(np.int64),
        "moved_row": origin.astype(np.int64),
    }
    widths = {"offsets": _bits_for(t + s - 1), "values": value_bits,
              "moved_ptr": _bits_for(layout.num_moved + 1), "moved_col": _bits_for(s),
              "moved_row": _bits_for(t)}
    meta = {"nnz": int(np.count_nonzero(x)), "stored": int(buffers["values"].size),
            "moved": layout.num_moved, "diagonals": layout.count, "band": layout.band}
    return Packed(enc, tuple(int(v) for v in x.shape), x.dtype, value_bits, buffers,
                  widths, meta)


def diagonal_layout_of(packed: Packed) -> DiagonalLayout:
    """The layout a packed DIA tensor stores (offsets and moved elements)."""
    enc = packed.encoding
    assert isinstance(enc, DiagonalAttr)
    t, s = packed.shape[-2:]
    offsets = packed.buffers["offsets"].astype(np.int64) - (t - 1)
    counts = np.diff(packed.buffers["moved_ptr"].astype(np.int64))
    k = np.repeat(np.arange(offsets.size, dtype=np.int64), counts)
    moved = np.stack([k, packed.buffers["moved_col"].astype(np.int64),
                      packed.buffers["moved_row"].astype(np.int64)], axis=1)
    return DiagonalLayout((t, s), enc.band, offsets, moved.reshape(-1, 3))


def unpack_diagonal(packed: Packed) -> np.ndarray:
    """The dense values of a packed DIA tensor."""
    values = diagonal_layout_of(packed).scatter(packed.buffers["values"])
    return values.astype(packed.dtype)
