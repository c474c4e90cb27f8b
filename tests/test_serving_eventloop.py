"""Handle calls must work from a thread that runs an event loop (every Jupyter kernel does)."""

from __future__ import annotations

import asyncio
import threading

from workbench.serving._serving import _call_handle


class _Response:
    def result(self, timeout_s):
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return threading.current_thread().name, timeout_s
        raise RuntimeError("Sync methods should not be called from within an `asyncio` event loop.")


def test_outside_a_loop_waits_in_place():
    assert _call_handle(_Response, 5) == (threading.current_thread().name, 5)


def test_inside_a_loop_waits_on_a_helper_thread():
    async def main():
        return _call_handle(_Response, 7)

    name, timeout = asyncio.run(main())
    assert name.startswith("workbench-serve") and timeout == 7
