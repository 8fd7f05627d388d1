"""The daemon worker pool: results, errors, cancellation, and not holding exit."""

import subprocess
import sys
import threading
import unittest

from binance_exporter.binance.pool import DaemonPool


class DaemonPoolTest(unittest.TestCase):
    """DaemonPool behaves like an executor whose threads never block exit."""

    def test_results_and_exceptions_reach_the_future(self):
        pool = DaemonPool(2)
        self.addCleanup(pool.shutdown)
        self.assertEqual(pool.submit(pow, 2, 10).result(timeout=5), 1024)
        with self.assertRaises(ZeroDivisionError):
            pool.submit(lambda: 1 / 0).result(timeout=5)

    def test_shutdown_cancels_queued_work_and_refuses_more(self):
        pool = DaemonPool(1)
        gate = threading.Event()
        started = threading.Event()
        running = pool.submit(lambda: started.set() or gate.wait(5))
        self.assertTrue(started.wait(5))
        queued = pool.submit(pow, 2, 2)
        pool.shutdown()
        self.assertTrue(queued.cancelled())
        gate.set()
        self.assertTrue(running.result(timeout=5))
        with self.assertRaises(RuntimeError):
            pool.submit(pow, 2, 2)

    def test_a_hanging_task_does_not_hold_the_process(self):
        code = ("import time; from binance_exporter.binance.pool import DaemonPool; "
                "DaemonPool(1).submit(time.sleep, 60); print('done')")
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                timeout=20, check=False)
        self.assertEqual(result.stdout.strip(), "done")
        self.assertEqual(result.returncode, 0)


if __name__ == "__main__":
    unittest.main()
