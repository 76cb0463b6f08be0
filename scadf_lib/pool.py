"""Units of sweep work in spawned processes, and the name of the device they train on.
"""

from __future__ import annotations

from typing import Any

import torch

from scadf_lib.training import select_device


def device_name(device: str = "auto") -> str:
    """'cpu', or 'cuda (NVIDIA H100 80GB HBM3)': the device a run trains on, with the GPU's name."""
    dev = select_device(device)
    return f"{dev.type} ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else dev.type


def _size(item: Any) -> int:
    return len(item) if isinstance(item, list) else 1


def in_pool(fn: Any, items: list[Any], args: tuple, jobs: int, bar: Any, after_each: Any = None) -> None:
    """Call ``fn(item, *args)`` for every item, in ``jobs`` spawned processes when jobs > 1; the bar
    advances by the runs an item holds (a stack: several); ``after_each()`` is called in this process
    after every item."""
    after_each = after_each or (lambda: None)
    if jobs <= 1:
        for item in items:
            bar.set_postfix_str(fn(item, *args))
            bar.update(_size(item))
            after_each()
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed
    threads = max(1, torch.get_num_threads() // jobs)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as pool:
        futures = {pool.submit(fn, item, *args, threads): item for item in items}
        for future in as_completed(futures):
            bar.set_postfix_str(future.result())
            bar.update(_size(futures[future]))
            after_each()
