"""Hardware description of an NVIDIA GPU's (sparse) tensor cores, A100- and H100-class.

The figures are per streaming multiprocessor (SM) and per clock, derived from the public
whitepapers (backends/stc/README.md writes out each derivation):

- NVIDIA A100 Tensor Core GPU Architecture (whitepaper v1.0, 2020): 108 SMs, 4 tensor
  cores per SM, 1410 MHz boost; 312 dense / 624 sparse FP16 and BF16 TFLOPS, 624 / 1248
  INT8 TOPS, 19.5 FP32 TFLOPS on the CUDA cores; 1555 GB/s HBM2 (40 GB; 2039 GB/s for the
  80 GB part), 40 MB L2 with 5120 bytes/clk of read bandwidth, 192 KB of L1/shared
  memory per SM of which up to 164 KB is shared memory.
- NVIDIA H100 Tensor Core GPU Architecture (whitepaper, SXM5): 132 SMs, 4 tensor cores
  per SM, 989.4 dense / 1978.9 sparse FP16 and BF16 TFLOPS, 1978.9 / 3957.8 INT8 TOPS,
  3.35 TB/s HBM3, 50 MB L2, up to 228 KB of shared memory per SM. These figures imply a
  1830 MHz tensor-core clock (989.4e12 / (132 * 2048 FMA * 2)).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from sparsec.backends.common.energy import MAC_PJ, SRAM_PJ_PER_BYTE
from sparsec.backends.common.spec import AcceleratorSpec

MMA_M = 16
"""Rows of one mma instruction (m16n8k16 dense, m16n8k32 sparse, for 16-bit operands)."""
MMA_N = 8
"""Columns of one mma instruction."""
CHUNK_K_MULTIPLE = 32
"""tile_k must hold whole sparse mma k-steps: m16n8k32 (f16/bf16), m16n8k64 (i8, 2x wider)."""

L2_PJ_PER_BYTE = 12.5
"""1 MB SRAM cache: 100 pJ per 64-bit read (Horowitz, ISSCC 2014) = 12.5 pJ/byte."""
HBM_PJ_PER_BYTE = 31.2
"""HBM2: about 3.9 pJ/bit (O'Connor et al., "Fine-Grained DRAM", MICRO 2017) = 31.2 pJ/byte."""

PATHS = ("library", "kernel")
"""`library`: what PyTorch + cuBLAS / cuSPARSELt run (launches, padding, fixed tiles);
`kernel`: one ideal kernel per matmul (no launch cost, the tile fitted to the problem)."""
SPARSE_LIBRARIES = ("cusparselt", "cutlass")
"""The 2:4 GEMM library of the library path: cuSPARSELt (PyTorch's
`_FORCE_CUTLASS = False`) or PyTorch's own CUTLASS kernel (PyTorch 2.1's default)."""
LAUNCH_US = 1.3
"""Cost of one kernel launch on a stream, in microseconds: Hazy Research measured about 1.3
us of launch cost per kernel on an H100 even with CUDA graphs, time in which the GPU does
no useful work ("Look Ma, No Bubbles!", 2025-05-27). It is the GPU-side floor; an eager
launch also costs the host 5-20 us (Meta's Holistic Trace Analysis docs, "CUDA kernel
launch statistics"), which the host hides whenever it runs ahead of the GPU."""
PAD_MULTIPLE = {"f16": 32, "bf16": 32, "i8": 64, "f32": 16}
"""Rows the dense operand is zero-padded to a multiple of before the 2:4 library call.
PyTorch issue #111339 (jcaip): "1x4096 is not technically a supported shape - so we pad
to the nearest multiple of 64/32/16 depending on dtype. For float16, it's 32"; PyTorch
2.1's `_DTYPE_TO_SEMI_STRUCTURED_SPARSE_CONFIG` has min_rows 32 for f16/bf16 (and 32,
not 64, for int8; the comment's 64 is kept here)."""

TENSOR_DTYPES = ("f16", "bf16", "i8")
"""Operand element types the (sparse) tensor cores multiply."""
CUDA_CORE_DTYPES = ("f32",)
"""Operand element types that run dense on the CUDA cores (FP32 FMA), no 2:4 path."""


@dataclass(frozen=True)
class StcSpec(AcceleratorSpec):
    """A GPU of `sms` SMs, each running one thread-block tile at a time on its tensor cores.

    Math rates are multiply-accumulates per clock per SM; the `*_sparse_macs` rates count
    dense-equivalent MACs (a 2:4 mma does a dense tile's work in half the time). A
    thread-block tile is `tile_m x tile_n` outputs, streaming K in chunks of `tile_k`
    16-bit elements (64 bytes of each row per stage, so 2x the elements for i8 and half
    for f32) through `stages` shared-memory buffers. `swizzle` is the width, in tiles,
    of the column strips CUTLASS's `GemmIdentityThreadblockSwizzle<N>` launches tiles in.

    `path` says what runs a matmul. `kernel`: one ideal kernel (its tile fitted to the
    problem and split to fill the SMs, no launch cost), what the hardware allows.
    `library` (default): what PyTorch runs through cuBLAS and cuSPARSELt. Every kernel
    costs a launch of `launch_us` on the stream; a 2:4 matmul first pads its dense
    operand to a multiple of PAD_MULTIPLE rows (a pad kernel), then runs the library's
    kernel on the padded problem with a tile that is not split to fill the SMs
    (`sparse_library=cutlass`: nor shrunk to the problem), and returns a strided view
    of its transposed, padded result (`copy_out=true`: a copy kernel makes it a
    contiguous tensor, as a consumer that needs one does).
    """

    summary: ClassVar[str] = "GPU (sparse) tensor cores, A100/H100: 2:4 mma.sp vs dense mma, tiles in waves"

    name: ClassVar[str] = "stc"
    dram_level: ClassVar[str] = "hbm"
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        # A100 SXM4 40 GB: the dataclass defaults.
        "a100": {},
        # A100 SXM4 80 GB: HBM2e at 2039 GB/s, all else equal.
        "a100-80gb": {"hbm_gbps": 2039.0},
        # H100 SXM5 80 GB: twice A100's per-SM tensor rate, 132 SMs at 1830 MHz, and
        # CUTLASS 3's default Hopper fp16 tile (128x256x64). The whitepaper gives no L2
        # bandwidth; A100's 5120 bytes/clk is kept (an assumption, see the README).
        "h100": {"sms": 132, "clock_ghz": 1.83, "f16_dense_macs": 2048,
                 "f16_sparse_macs": 4096, "bf16_dense_macs": 2048, "bf16_sparse_macs": 4096,
                 "i8_dense_macs": 4096, "i8_sparse_macs": 8192, "f32_dense_macs": 128,
                 "tile_n": 256, "tile_k": 64, "smem_kb": 228, "l2_mb": 50,
                 "hbm_gbps": 3350.0},
    }

    sparse: bool = True
    path: str = "library"
    launch_us: float = LAUNCH_US
    sparse_library: str = "cutlass"
    copy_out: bool = False
    sms: int = 108
    tensor_cores_per_sm: int = 4
    clock_ghz: float = 1.41
    f16_dense_macs: int = 1024
    f16_sparse_macs: int = 2048
    bf16_dense_macs: int = 1024
    bf16_sparse_macs: int = 2048
    i8_dense_macs: int = 2048
    i8_sparse_macs: int = 4096
    f32_dense_macs: int = 64
    tile_m: int = 128
    tile_n: int = 128
    tile_k: int = 32
    stages: int = 2
    swizzle: int = 8
    fill_sms: bool = True
    smem_kb: int = 164
    l2_mb: int = 40
    l2_bytes_per_clk: int = 5120
    hbm_gbps: float = 1555.0
    f16_mac_pj: float = MAC_PJ["f16"]
    bf16_mac_pj: float = MAC_PJ["bf16"]
    i8_mac_pj: float = MAC_PJ["i8"]
    f32_mac_pj: float = MAC_PJ["f32"]
    smem_pj_per_byte: float = SRAM_PJ_PER_BYTE
    l2_pj_per_byte: float = L2_PJ_PER_BYTE
    hbm_pj_per_byte: float = HBM_PJ_PER_BYTE

    def prepare(self) -> str:
        """Sparse mma needs a 2:4 operand; dense mma runs any kernel."""
        return "prune-nm{n=2 m=4}" if self.sparse else ""

    def validate(self) -> None:
        super().validate()
        for option in ("sms", "tensor_cores_per_sm", "f16_dense_macs", "f16_sparse_macs",
                       "bf16_dense_macs", "bf16_sparse_macs", "i8_dense_macs",
                       "i8_sparse_macs", "f32_dense_macs", "swizzle", "l2_mb",
                       "l2_bytes_per_clk"):
            self.require(getattr(self, option) >= 1, option, "must be >= 1")
        for option in ("clock_ghz", "hbm_gbps"):
            self.require(getattr(self, option) > 0, option, "must be > 0")
        self.require(self.path in PATHS, "path",
                     f"must be {' or '.join(PATHS)}, got '{self.path}'")
        self.require(self.sparse_library in SPARSE_LIBRARIES, "sparse_library",
                     f"must be {' or '.join(SPARSE_LIBRARIES)}, got '{self.sparse_library}'")
        self.require(self.tile_m >= MMA_M and self.tile_m % MMA_M == 0, "tile_m",
                     f"must be a positive multiple of {MMA_M} (the mma's m), got {self.tile_m}")
        self.require(self.tile_n >= MMA_N and self.tile_n % MMA_N == 0, "tile_n",
                     f"must be a positive multiple of {MMA_N} (the mma's n), got {self.tile_n}")
        self.require(self.tile_k >= CHUNK_K_MULTIPLE and self.tile_k % CHUNK_K_MULTIPLE == 0,
                     "tile_k", f"must be a positive multiple of {CHUNK_K_MULTIPLE} (whole "
                     f"sparse mma k-steps), got {self.tile_k}")
        self.require(self.stages >= 2, "stages",
                     "must be >= 2 (loads of chunk k+1 overlap the math of chunk k)")
        need = self.stages * self.stage_bytes()
        self.require(need <= self.smem_kb * 1024, "smem_kb",
                     f"holds {self.smem_kb * 1024} bytes, but {self.stages} stages of a "
                     f"{self.tile_m}x{self.tile_n}x{self.tile_k} tile need {need}; lower "
                     "tile_m, tile_n, tile_k or stages")

    def stage_bytes(self) -> int:
        """Shared memory of one stage: an A chunk and a B chunk of 2-byte elements (the
        chunk holds tile_k * 2 bytes of each row whatever the element type)."""
        return (self.tile_m + self.tile_n) * self.tile_k * 2

    def chunk_k(self, element_bytes: int) -> int:
        """K elements per chunk: tile_k 16-bit elements' worth of bytes (32 f16 = 64 i8)."""
        return max(1, self.tile_k * 2 // element_bytes)

    def macs_per_clock(self, dtype: str, sparse: bool) -> int:
        """Dense-equivalent MACs per clock per SM for operands of `dtype`."""
        if sparse:
            return getattr(self, f"{dtype}_sparse_macs")
        return getattr(self, f"{dtype}_dense_macs")

    def mac_pj(self, dtype: str) -> float:
        """Energy of one executed multiply-accumulate on operands of `dtype`."""
        return getattr(self, f"{dtype}_mac_pj")

    @property
    def launch_cycles(self) -> int:
        """One kernel launch in core clocks (launch_us at clock_ghz)."""
        return round(self.launch_us * self.clock_ghz * 1e3)

    @property
    def hbm_bytes_per_clk(self) -> float:
        """HBM bandwidth in bytes per core clock (GB/s divided by GHz)."""
        return self.hbm_gbps / self.clock_ghz

    @property
    def l2_bytes_per_clk_per_sm(self) -> float:
        """Each SM's static share of the L2 -> shared-memory bandwidth."""
        return self.l2_bytes_per_clk / self.sms

    def peak_tflops(self, dtype: str, sparse: bool) -> float:
        """Dense-equivalent peak: 2 FLOPs per MAC, every SM, every clock."""
        return 2 * self.macs_per_clock(dtype, sparse) * self.sms * self.clock_ghz / 1e3
