"""The worker's doorbell: a ring wakes a sleeping worker at once; with nobody listening it costs nothing."""
import sys
import threading
import time

import pytest

from portal.letters.doorbell import Doorbell, ring

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="abstract Unix sockets are Linux's")


def test_a_ring_wakes_the_sleeper_at_once(tmp_path):
    queue = str(tmp_path / "queue.sqlite3")
    bell = Doorbell.bind(queue)
    try:
        threading.Timer(0.05, ring, args=(queue,)).start()
        started = time.monotonic()
        assert bell.wait(10) is True
        assert time.monotonic() - started < 5  # woke on the ring, not at the timeout
        assert bell.wait(0.01) is False  # the ring was taken; nothing left to wake on
    finally:
        bell.close()


def test_one_bell_per_queue_and_rings_only_reach_their_own(tmp_path):
    mine, other = str(tmp_path / "a.sqlite3"), str(tmp_path / "b.sqlite3")
    bell = Doorbell.bind(mine)
    try:
        assert Doorbell.bind(mine) is None  # a second worker of the same queue polls instead
        ring(other)  # nobody listens on that one: nothing happens, nothing waits
        assert bell.wait(0.05) is False
    finally:
        bell.close()
