"""Host-side drivers of the kernels: query blocks, GEMM pieces, k nearest neighbours, GPU launches."""
