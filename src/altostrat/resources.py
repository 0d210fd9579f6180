"""Resource units shared by every layer.

Everything on the hot path is an int: CPU in milli-cores, memory in MiB and GPU in
milli-GPUs (1000 = one whole device), so that fractional GPUs (Alibaba's gpu_milli)
and whole GPUs use one arithmetic.
"""

MILLI = 1000  # milli-units per whole CPU core or GPU


def whole_gpus(gpu_milli: int) -> int:
    """Whole devices in a per-task GPU request (0 for a fractional share)."""
    return gpu_milli // MILLI


def is_fractional(gpu_milli: int) -> bool:
    return 0 < gpu_milli < MILLI


def check_gpu_milli(gpu_milli: int) -> str | None:
    """Why a per-task GPU request is invalid, or None when it is valid.

    A task asks for a share of one GPU (1..999) or for whole GPUs (a multiple of 1000).
    """
    if gpu_milli < 0:
        return "must be >= 0"
    if gpu_milli > MILLI and gpu_milli % MILLI:
        return "above 1000 it must be a multiple of 1000 (whole GPUs); a share of one GPU is 1..999"
    return None
