"""Process settings for running the engine over a long stream of events.

* One BLAS thread: batches are small, and more threads only spin on the cores that
  other consumers (or the API) need.
* A calmer garbage collector. The engine allocates a few small objects per event and
  keeps each batch alive across many young-generation collections, so with CPython's
  default thresholds the older generations are collected again and again, each time
  walking every object of numpy, scikit-learn, river and numba. That was 40% of replay
  time. Objects alive at start-up are frozen out of collection and young objects are
  collected every 50,000 allocations instead of 700. Nothing the engine keeps forms
  reference cycles, so memory does not grow for it.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

from threadpoolctl import threadpool_limits

YOUNG_THRESHOLD = 50_000


@contextmanager
def engine_process() -> Iterator[None]:
    """Apply the settings above for the duration of the block, then restore them."""
    thresholds = gc.get_threshold()
    with threadpool_limits(limits=1, user_api="blas"):
        gc.freeze()
        gc.set_threshold(YOUNG_THRESHOLD, 20, 20)
        try:
            yield
        finally:
            gc.set_threshold(*thresholds)
            gc.unfreeze()
