"""EIE's activation queues: an exact max-plus simulation of broadcast, FIFOs and PEs.

For one input vector, let its nonzero activations be broadcast in order j = 0, 1, ...
and let w[p, j] be the cycles PE p spends on activation j (its stored entries of that
column, padding included). With FIFOs of depth D (plus the activation a PE is working
on), broadcast time b_j, start s[p, j] and end e[p, j] obey

    b_j     = max(b_{j-1} + 1, max_p s[p, j - D])      one broadcast per cycle, and only
                                                        when every FIFO has room (PE p
                                                        popped activation j - D)
    s[p, j] = max(b_j, e[p, j - 1])                     a PE pops when it is free
    e[p, j] = s[p, j] + w[p, j]

with b_{-1} = -1, s[p, j < 0] = -1, e[p, -1] = 0. The vector takes
cycles = max(b_last + 1, max_p e[p, last]) and PE p is busy sum_j w[p, j] of them; the
rest are bubbles (the PE starved with an empty FIFO). The loop runs over broadcasts;
every step is vectorised over the PEs and over the input vectors (each vector has its
own recurrence, masked where its activation is zero: the nonzero detector skips it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class QueueState:
    """The recurrence's state for T independent input vectors on P PEs with depth D."""

    end: np.ndarray
    """(T, P) e[p, j-1]: when each PE finishes the last activation it popped."""
    starts: np.ndarray
    """(T, P, D) s of the last D broadcasts, a ring indexed by j mod D."""
    last_broadcast: np.ndarray
    """(T,) b_{j-1}."""
    broadcasts: np.ndarray
    """(T,) j: nonzero activations broadcast so far."""
    busy: np.ndarray
    """(T, P) cycles each PE has worked."""

    @classmethod
    def empty(cls, vectors: int, pes: int, depth: int) -> QueueState:
        return cls(end=np.zeros((vectors, pes), dtype=np.int64),
                   starts=np.full((vectors, pes, depth), -1, dtype=np.int64),
                   last_broadcast=np.full(vectors, -1, dtype=np.int64),
                   broadcasts=np.zeros(vectors, dtype=np.int64),
                   busy=np.zeros((vectors, pes), dtype=np.int64))

    @property
    def depth(self) -> int:
        return self.starts.shape[2]

    def broadcast(self, active: np.ndarray, work: np.ndarray) -> None:
        """Broadcast one activation column: to the vectors `active` (indices) whose
        activation there is nonzero, with `work[p]` cycles on PE p."""
        if active.size == 0:
            return
        pes = np.arange(self.end.shape[1])
        slot = self.broadcasts[active] % self.depth
        popped = self.starts[active[:, None], pes[None, :], slot[:, None]]
        at = np.maximum(self.last_broadcast[active] + 1, popped.max(axis=1))
        start = np.maximum(at[:, None], self.end[active])
        self.end[active] = start + work[None, :]
        self.starts[active[:, None], pes[None, :], slot[:, None]] = start
        self.last_broadcast[active] = at
        self.broadcasts[active] += 1
        self.busy[active] += work[None, :]

    def cycles(self) -> np.ndarray:
        """(T,) cycles of each vector: 0 for a vector with no nonzero activation."""
        finish = np.maximum(self.last_broadcast + 1, self.end.max(axis=1, initial=0))
        return np.where(self.broadcasts > 0, finish, 0)


def simulate(work: np.ndarray, active: np.ndarray, depth: int) -> QueueState:
    """Run the recurrence over every column: `work` (P, K) cycles per PE and column,
    `active` (T, K) which activations are nonzero. The reference for hand-checked cases."""
    vectors, columns = active.shape
    state = QueueState.empty(vectors, work.shape[0], depth)
    for column in range(columns):
        state.broadcast(np.flatnonzero(active[:, column]), work[:, column])
    return state
