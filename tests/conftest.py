"""Settings for the whole test session.

Chapter 3 trains in a pool of worker processes shared by every session and, after a cheap
run, queues the slider's other learning rates for idle workers (``ui/network.py``). In the test
suite nobody explores the slider afterwards, so those queued runs would only compete with the
tests for the two cores: ``BN_LAB_PREFETCH=0`` switches them off here, for the page tests and for
the servers the browser tests start (they inherit the environment). The pool itself is tested
in ``tests/test_parallel.py``, prefetching included.
"""

import os

os.environ.setdefault("BN_LAB_PREFETCH", "0")
