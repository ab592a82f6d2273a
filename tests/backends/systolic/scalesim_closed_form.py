"""SCALE-Sim 3.0.0 GEMM cycle accounting in closed form: an independent test oracle.

This module does not import SCALE-Sim. It reproduces, in closed form (plus one short
integer recurrence for the ofmap write-back buffer), the two figures that SCALE-Sim 3.0.0
reports per layer in CALC mode (``InterfaceBandwidth: CALC``)::

    single_layer_sim.get_compute_report_items()[0]  -> total_cycles   ("incl. prefetch")
    single_layer_sim.get_compute_report_items()[1]  -> compute_cycles

GEMM convention (SCALE-Sim's): ifmap A is M x K, N filters B is K x N, C = A . B (M x N).
Array: ``rows`` (R, ArrayHeight) x ``cols`` (C, ArrayWidth).

1. Folds and per-fold duration  (scalesim/compute/systolic_compute_{os,ws,is}.py)
-------------------------------------------------------------------------------
SCALE-Sim builds, per fold, a demand matrix with one row per cycle; the folds are simply
concatenated (no overlap between folds, no pipelining of the next fold's fill with the
previous fold's drain).  Let ``cdiv(a, b) = -(-a // b)``.

  dataflow  spatial on rows  spatial on cols  temporal T   folds F                 cycles per fold L
  os        M  (Sr)          N  (Sc)          K            cdiv(M,R) * cdiv(N,C)   K + R + C - 2
  ws        K  (Sr)          N  (Sc)          M            cdiv(K,R) * cdiv(N,C)   M + 2R + C - 2
  is        K  (Sr)          M  (Sc)          N            cdiv(K,R) * cdiv(M,C)   N + 2R + C - 2

Every fold costs the full L whether it is partial or not (partial folds are padded with
null requests).  Fold order: the column fold (Sc) is the outer loop, the row fold (Sr)
the inner loop.  Terms of L:
  os: T operand rows streamed + (R-1) skew of the ifmap over the rows + (C-1) skew of the
      filter over the columns ("inter_fold_gap" = C-1 / R-1 then skew_matrix adds the other).
  ws/is: R cycles to load the stationary operand (prefix of R null rows) + T streamed rows
      + (R-1) rows of partial-sum travel + (C-1) skew.  (ofmap: 2R-1 prefix + T rows,
      skewed over C -> 2R+T+C-2; ifmap/filter demand padded to the same length.)

    compute_cycles = F * L - 1

The "- 1": SCALE-Sim reports ``max(ofmap_serviced_cycles)``, the cycle index of the last
demand row (rows are numbered from 0), i.e. the number of rows minus one.  In CALC mode
there are never stalls (read buffers always hit, the ofmap drains at C words/cycle), so
stall_cycles = 0 and compute_cycles is exactly that.

2. total_cycles = ofmap_dram_stop - min(ifmap_dram_start, filter_dram_start)
-----------------------------------------------------------------------------
(single_layer_sim.calc_report_data: ``overall_cycles``).  Two extra terms:

2a. Prefetch (head) term  (scalesim/memory/read_buffer_estimate_bw.py, CALC mode only)
    Each read SRAM (ifmap, filter) of size S kB is split into 100 "sets" of
    ips = floor(1024*S/100) words; 50 sets form the active half.  The DRAM bandwidth is
    hard-coded to 10 words/cycle in CALC mode (`Bandwidth` is not read at all).  With D the
    number of distinct addresses of the operand (ifmap M*K, filter K*N):
      * D <  50*ips (operand fits in half the SRAM): the whole operand, rounded up to
        whole sets, is fetched before cycle 0:
            c = cdiv(cdiv(D, ips) * ips, 10),   dram_start = -c
      * D >= 50*ips: the first half-SRAM fill is timed to end just before the operand's
        first demand cycle f:
            c = cdiv(50 * ips, 10),             dram_start = f - c
        f (first cycle with a non-null demand for that operand):
            os: ifmap 0, filter 0
            ws: ifmap R, filter R - min(R, K)
            is: ifmap R - min(R, K), filter R
    prefetch_term = -min(dram_start_ifmap, dram_start_filter)
    (The ofmap SRAM has no prefetch.)  So SRAM sizes DO matter in CALC mode.

2b. Ofmap write-back (tail) term  (scalesim/memory/write_buffer.py)
    The ofmap SRAM (O words = 1024*ofmap_kb, half = O/2 active, O/2 "drain buffer")
    packs written words into lines of C words (CALC: drain bandwidth = ArrayWidth) and
    writes one line per cycle to DRAM, latency 0.  Words written W:
            os: M*N          ws, is: M*N*cdiv(K, R)   (partial sums re-written per K fold)
    * If W <= O/2 nothing is drained during compute; after the last demand row all
      cdiv(W, C) lines are written starting at cycle compute_cycles:
            ofmap_dram_stop = compute_cycles + cdiv(W, C) - 1
    * Otherwise drains of n = cdiv(O/2, C) lines start whenever the (mis-)counted free
      space drops below O/2; each drain first force-flushes the partly filled line as a
      padded line, and only the padding of the *last* drained line is subtracted when the
      free space is credited back (a SCALE-Sim quirk), so the line bookkeeping drifts.
      This is reproduced exactly by ``_ofmap_drain`` (a loop over drain events, not
      cycles).  At the end the remaining lines L_rem are written from cycle
      compute_cycles on:  ofmap_dram_stop = max(compute_cycles + L_rem - 1,
      t_last_drain + n - 1)  (the second term only matters when the last mid-run drain
      was triggered in the last n cycles).
      Closed form when C divides H = O/2 (e.g. power-of-two arrays): drains are triggered
      at words H+1, 2H+1, ..., so d = (W-1)//H drains, r = W - (d*H + 1) words after the
      last one, and L_rem = 1 + cdiv(r, C) (one line is always left behind by the drift).

    total_cycles = ofmap_dram_stop + prefetch_term

Everything is in integers; no utilisation figure enters the cycle counts.

3. USER mode (InterfaceBandwidth: USER) -- summary, see scalesim_user_cycles_no_read_miss
-----------------------------------------------------------------------------------------
* Fill bandwidth of the ifmap / filter SRAMs = [layout] IfmapSRAMBankBandwidth /
  FilterSRAMBankBandwidth; `Bandwidth` only sets the ofmap drain (line width).  Three
  independent channels, no shared DRAM bandwidth.  Read/WriteRequestBuffer are only
  used with UseRamulatorTrace: True (DRAM latency is otherwise 1 cycle read, 0 write).
* Read SRAM (memory/read_buffer.py): the operand's prefetch order (SCALE-Sim's prefetch
  matrix) is cut into sets of eps = cdiv(S, 100) valid words; the active window holds
  cdiv(S/2, eps) sets, filled before cycle 0 (cdiv(S/2, bw) cycles ending at -1).  A
  demanded word outside the window advances the window (cyclically) by the prefetch
  sets, once per loop until it hits; every advance k is charged on the operand's own DRAM
  timeline P_k = P_{k-1} + cdiv(S/2, bw) + 1, P_0 = -1, regardless of when it is issued.
  Row stall: offset = 1; per advance p = P_k - (t + offset); offset += p; and again
  offset += p if p > 0 (positive waits count twice, negative ones pull the row earlier).
* Per demand row: stall += max(ifmap_stall, filter_stall, ofmap_stall); later rows shift.
* compute_cycles = F*L - 1 + stall_cycles; total = ofmap_dram_stop + max read-fill lines.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "fold_schedule",
    "scalesim_breakdown",
    "scalesim_cycles",
    "scalesim_user_cycles_no_read_miss",
]

_SETS_ACTIVE = 50          # int(0.5 * 100) sets in the active half of a read SRAM
_CALC_READ_BW = 10         # words/cycle, hard-coded in single_layer_sim for CALC mode


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _dims(M: int, N: int, K: int, dataflow: str) -> tuple[int, int, int]:
    """(Sr, Sc, T): operand extent mapped on array rows, on array cols, and in time."""
    if dataflow == "os":
        return M, N, K
    if dataflow == "ws":
        return K, N, M
    if dataflow == "is":
        return K, M, N
    raise ValueError(f"unknown dataflow {dataflow!r}")


def fold_schedule(M: int, N: int, K: int, rows: int, cols: int, dataflow: str):
    """Folds in SCALE-Sim's order: list of (fold_col, fold_row, rows_used, cols_used, L).

    The demand rows of fold i occupy cycles [sum(L[:i]), sum(L[:i+1])); there is no
    overlap between folds.  compute_cycles = sum(L) - 1.
    """
    Sr, Sc, T = _dims(M, N, K, dataflow)
    R, C = rows, cols
    if dataflow == "os":
        L = T + R + C - 2
    else:
        L = T + 2 * R + C - 2
    out = []
    for fc in range(_cdiv(Sc, C)):
        c_used = min(C, Sc - fc * C)
        for fr in range(_cdiv(Sr, R)):
            r_used = min(R, Sr - fr * R)
            out.append((fc, fr, r_used, c_used, L))
    return out


def _ofmap_words(M: int, N: int, K: int, rows: int, dataflow: str) -> int:
    if dataflow == "os":
        return M * N
    return M * N * _cdiv(K, rows)


def _ofmap_arrivals(M, N, K, rows, cols, dataflow) -> np.ndarray:
    """Number of ofmap words written in each demand row (cycle) -- exact SCALE-Sim shape."""
    T = _dims(M, N, K, dataflow)[2]
    R = rows
    per_type = {}
    parts = []
    for _fc, _fr, r_used, c_used, L in fold_schedule(M, N, K, rows, cols, dataflow):
        key = (r_used, c_used) if dataflow == "os" else c_used
        if key not in per_type:
            if dataflow == "os":
                # (T-1) null rows, then R rows flipped (padding rows first), skewed over C.
                box = np.zeros(T - 1 + R, dtype=np.int64)
                box[T - 1 + R - r_used:] = 1
            else:
                # (2R-1) null rows, then T rows, skewed over C.
                box = np.zeros(2 * R - 1 + T, dtype=np.int64)
                box[2 * R - 1:] = 1
            v = np.convolve(box, np.ones(c_used, dtype=np.int64))
            fold = np.zeros(L, dtype=np.int64)
            fold[: len(v)] = v
            per_type[key] = fold
        parts.append(per_type[key])
    return np.concatenate(parts)


def _ofmap_drain(W: int, line_w: int, ofmap_kb: int):
    """Exact replay of write_buffer's line/free-space bookkeeping, one step per drain.

    Returns (remaining_lines_at_end, [(word_index_that_triggered, n_lines), ...]).
    Valid when drains are never deferred by an unfinished previous drain, which holds when
    at most ``line_w`` words are written per cycle (CALC: line_w = cols).
    """
    total = 1024 * ofmap_kb                      # word size 1 byte
    active = math.ceil(total * 0.5)
    drain_sz = total - active
    n = _cdiv(drain_sz, line_w)
    free = total
    runs: list[list[int]] = []                   # undrained lines as [count, fill] runs
    partial = 0                                  # words in the line being filled
    e = 0
    drains = []

    def add(k):
        nonlocal partial
        if partial:
            t = min(k, line_w - partial)
            partial += t
            k -= t
            if partial == line_w:
                _push(line_w, 1)
                partial = 0
        if k:
            full, rem = divmod(k, line_w)
            if full:
                _push(line_w, full)
            partial = rem

    def _push(fill, count):
        if runs and runs[-1][1] == fill:
            runs[-1][0] += count
        else:
            runs.append([count, fill])

    while True:
        need = free - active + 1                 # words until free < active
        if e + need > W:
            break
        add(need)
        e += need
        free -= need
        if partial:                              # append_to_trace_mat(force=True)
            _push(partial, 1)
            partial = 0
        # Drain n lines (at least n lines always exist here: the counted free space is never
        # below the true one, so > O/2 true words are buffered).
        left = n
        last_fill = 0
        while left and runs:
            cnt, fill = runs[0]
            take = min(cnt, left)
            left -= take
            last_fill = fill
            if take == cnt:
                runs.pop(0)
            else:
                runs[0][0] -= take
        n_eff = n - left
        # write_buffer.empty_drain_buf credits n_eff*line_w minus the padding of the LAST
        # drained line only (padding of earlier force-flushed lines is counted as data).
        free += n_eff * line_w - (line_w - last_fill)
        drains.append((e, n_eff))
    add(W - e)
    if partial:
        _push(partial, 1)
    return sum(c for c, _ in runs), drains


def _prefetch_start(D: int, first_req: int, sram_kb: int) -> int:
    ips = (1024 * sram_kb) // 100
    if D >= _SETS_ACTIVE * ips:
        return first_req - _cdiv(_SETS_ACTIVE * ips, _CALC_READ_BW)
    return -_cdiv(_cdiv(D, ips) * ips, _CALC_READ_BW)


def scalesim_breakdown(M: int, N: int, K: int, rows: int, cols: int, dataflow: str,
                       ifmap_kb: int = 64, filter_kb: int = 64, ofmap_kb: int = 64) -> dict:
    """All terms of SCALE-Sim 3.0.0's CALC-mode accounting (see the module docstring)."""
    R, C = rows, cols
    folds = fold_schedule(M, N, K, R, C, dataflow)
    L = folds[0][4]
    F = len(folds)
    compute = F * L - 1

    # Prefetch head term.
    if dataflow == "os":
        f_ifmap, f_filter = 0, 0
    elif dataflow == "ws":
        f_ifmap, f_filter = R, R - min(R, K)
    else:
        f_ifmap, f_filter = R - min(R, K), R
    s_ifmap = _prefetch_start(M * K, f_ifmap, ifmap_kb)
    s_filter = _prefetch_start(K * N, f_filter, filter_kb)
    prefetch = -min(s_ifmap, s_filter)

    # Ofmap write-back tail.
    W = _ofmap_words(M, N, K, R, dataflow)
    rem, drains = _ofmap_drain(W, C, ofmap_kb)
    stop = compute + rem - 1 if rem > 0 else -(10 ** 18)
    if drains:
        e_last, n_last = drains[-1]
        arrivals = _ofmap_arrivals(M, N, K, R, C, dataflow)
        t_last = int(np.searchsorted(np.cumsum(arrivals), e_last))
        stop = max(stop, t_last + n_last - 1)
    total = stop + prefetch
    return {
        "folds": F, "cycles_per_fold": L, "compute_cycles": compute,
        "ifmap_dram_start": s_ifmap, "filter_dram_start": s_filter,
        "prefetch_cycles": prefetch, "ofmap_words": W, "ofmap_lines_after_compute": rem,
        "mid_run_drains": len(drains), "ofmap_dram_stop": stop,
        "tail_cycles": stop - compute, "total_cycles": total, "stall_cycles": 0,
    }


def scalesim_cycles(M: int, N: int, K: int, rows: int, cols: int, dataflow: str,
                    ifmap_kb: int = 64, filter_kb: int = 64,
                    ofmap_kb: int = 64) -> tuple[int, int]:
    """(total_cycles, compute_cycles) of SCALE-Sim 3.0.0, CALC mode, dense GEMM.

    C[MxN] = A[MxK] . B[KxN] on a rows x cols array, dataflow in {"os","ws","is"};
    ifmap/filter/ofmap_kb are the SRAM sizes (IfmapSramSzkB etc.).

      compute_cycles = F * L - 1
          os: F = cdiv(M,R)*cdiv(N,C), L = K + R + C - 2
          ws: F = cdiv(K,R)*cdiv(N,C), L = M + 2R + C - 2
          is: F = cdiv(K,R)*cdiv(M,C), L = N + 2R + C - 2
      total_cycles = compute_cycles + tail + prefetch
          tail     = ofmap write-back after the last compute row: cdiv(W, C) - 1 when the
                     ofmap words W (os: MN; ws/is: MN*cdiv(K,R)) fit in half the ofmap
                     SRAM (W <= 512*ofmap_kb); otherwise the drain recurrence.
          prefetch = -min(start_ifmap, start_filter), start = -cdiv(cdiv(D,ips)*ips, 10)
                     if D < 50*ips else first_demand_cycle - cdiv(50*ips, 10),
                     ips = floor(1024*kB/100), D = M*K (ifmap) / K*N (filter).
    """
    b = scalesim_breakdown(M, N, K, rows, cols, dataflow, ifmap_kb, filter_kb, ofmap_kb)
    return b["total_cycles"], b["compute_cycles"]


# ---------------------------------------------------------------------------------------------
# USER mode (InterfaceBandwidth: USER) -- only the regime in which no read SRAM ever misses.
# ---------------------------------------------------------------------------------------------

def _write_buffer_replay(arrivals: np.ndarray, line_w: int, ofmap_kb: int):
    """Word-by-word replay of write_buffer.service_writes + empty_all_buffers.

    arrivals[i] = ofmap words written by demand row i.  Assumes the reads never stall.
    Returns (ofmap_dram_stop, write_stall_cycles, last_row_cycle).
    Mechanism: words are packed into lines of ``line_w`` (= drain bandwidth, one line per
    cycle, latency 0).  When the free space (credited back in full at the *start* of a
    drain) drops below half the SRAM and no drain is running, the partial line is flushed
    and n = cdiv(O/2, line_w) lines are drained from that cycle on.  A write stalls only
    when the SRAM is completely full while a drain is running: it waits until that drain
    ends; the wait is added to every later row (stall_cycles).
    """
    total = 1024 * ofmap_kb
    active = math.ceil(total * 0.5)
    n = _cdiv(total - active, line_w)
    free = total
    drain_end = 0
    stall = 0
    lines: list[int] = []
    ptr = 0
    partial = 0
    stop = None
    for i, cnt in enumerate(arrivals.tolist()):
        cycle = i + stall
        cur = cycle
        for _ in range(cnt):
            partial += 1
            free -= 1
            if partial == line_w:
                lines.append(line_w)
                partial = 0
            if cur < drain_end:
                if free <= 0:
                    cur = drain_end
            elif free < active:
                if partial:
                    lines.append(partial)
                    partial = 0
                end = min(ptr + n, len(lines))
                free += (end - ptr) * line_w - (line_w - lines[end - 1])
                drain_end = cur + (end - ptr) - 1
                stop = drain_end
                ptr = end
        stall += cur - cycle
    last = len(arrivals) - 1 + stall
    if partial:
        lines.append(partial)
    c = last
    while ptr < len(lines):
        end = min(ptr + n, len(lines))
        c_end = c + (end - ptr) - 1
        stop = c_end if stop is None else max(stop, c_end)   # ofmap_dram_stop = max(...)
        c = c_end + 1
        ptr = end
    return stop, stall, last


def scalesim_user_cycles_no_read_miss(M: int, N: int, K: int, rows: int, cols: int,
                                      dataflow: str, bandwidth: int,
                                      read_bw: int | None = None, ifmap_kb: int = 64,
                                      filter_kb: int = 64, ofmap_kb: int = 64):
    """(total, compute, stall) of SCALE-Sim 3.0.0 in USER mode, or None if a read SRAM misses.

    ``bandwidth`` is the config's `Bandwidth` (ofmap drain, words/cycle); ``read_bw`` is
    IfmapSRAMBankBandwidth = FilterSRAMBankBandwidth (DRAM->SRAM fill, words/cycle;
    defaults to ``bandwidth``).  SCALE-Sim 3.0.0 reads the ifmap/filter fill bandwidth
    from those [layout] keys, not from `Bandwidth`.

    Exact only when every distinct word of each read operand fits in the active half of its
    SRAM as SCALE-Sim counts it: cdiv(D, eps) <= cdiv(S/2, eps), with S = 1024*kB words,
    eps = cdiv(S, 100) words per "set", D = M*K (ifmap) or K*N (filter).  Otherwise the
    sliding-window read model (see the report) produces read stalls and None is returned.

      compute = F*L - 1 + stall           (F, L as in CALC mode; stall = write stalls)
      total   = ofmap_dram_stop + n_a
      n_a     = max over {ifmap, filter} of min(cdiv(S/2, read_bw), cdiv(P, read_bw)),
                P = words of SCALE-Sim's prefetch matrix including fold padding:
                  os: ifmap cdiv(M,R)*R*K, filter cdiv(N,C)*C*K
                  ws: ifmap cdiv(K,R)*R*M, filter cdiv(N,C)*C*K
                  is: ifmap cdiv(M,C)*C*K, filter cdiv(K,R)*R*N
                (the active half is filled before cycle 0, ending at cycle -1, independent
                of the first demand cycle -- unlike CALC mode)
      ofmap_dram_stop from ``_write_buffer_replay`` with line width = ``bandwidth``.
    """
    if read_bw is None:
        read_bw = bandwidth
    R, C = rows, cols
    n_a = 0
    for D, P, kb in (
        (M * K, {"os": _cdiv(M, R) * R * K, "ws": _cdiv(K, R) * R * M,
                 "is": _cdiv(M, C) * C * K}[dataflow], ifmap_kb),
        (K * N, {"os": _cdiv(N, C) * C * K, "ws": _cdiv(N, C) * C * K,
                 "is": _cdiv(K, R) * R * N}[dataflow], filter_kb),
    ):
        S = 1024 * kb
        active = math.ceil(S * 0.5)
        eps = _cdiv(S, 100)
        if _cdiv(D, eps) > _cdiv(active, eps):
            return None
        n_a = max(n_a, min(_cdiv(active, read_bw), _cdiv(P, read_bw)))
    folds = fold_schedule(M, N, K, R, C, dataflow)
    arrivals = _ofmap_arrivals(M, N, K, R, C, dataflow)
    stop, stall, last = _write_buffer_replay(arrivals, bandwidth, ofmap_kb)
    assert last == len(folds) * folds[0][4] - 1 + stall
    return stop + n_a, last, stall
