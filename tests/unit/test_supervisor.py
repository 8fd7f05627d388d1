"""Thread supervision and job deadlines, with injected clocks and back-off."""

from __future__ import annotations

import threading
import unittest

from binance_exporter.jobs.supervisor import Supervisor, Watchdog
from binance_exporter.model import RANKINGS, SPREADS, SnapshotStore


class SupervisorTest(unittest.TestCase):
    """A loop that raises is logged, counted, marks its jobs stuck, and runs again."""

    def test_a_dying_loop_is_restarted_and_its_jobs_marked(self):
        store = SnapshotStore()
        stop = threading.Event()
        second_run = threading.Event()
        runs: list[int] = []
        seen_while_down: list[bool] = []

        def loop(_stop: threading.Event) -> None:
            runs.append(1)
            if len(runs) == 1:
                raise ValueError("boom")
            state = store.current().jobs[SPREADS]
            seen_while_down.append(state.stuck and not state.success)
            second_run.set()

        supervisor = Supervisor(store, stop, backoff=lambda crashes: 0.0)
        with self.assertLogs("binance_exporter.jobs.supervisor", "ERROR") as logs:
            thread = supervisor.start("scheduler", loop, (RANKINGS, SPREADS))
            self.assertTrue(second_run.wait(5))
            thread.join(5)
        self.assertFalse(thread.is_alive())  # the second run returned: the loop is done
        self.assertEqual(len(runs), 2)
        self.assertEqual(seen_while_down, [True])
        self.assertEqual(store.current().thread_restarts, {"scheduler": 1})
        self.assertIn("ValueError: boom", store.current().jobs[RANKINGS].error)
        self.assertIn("Traceback", logs.output[0])
        self.assertFalse(store.current().up)

    def test_a_stuck_job_is_not_ready_until_it_finishes_again(self):
        now = [1000.0]
        store = SnapshotStore(clock=lambda: now[0])
        store.record({RANKINGS: (None, 999.0), SPREADS: (None, 999.0)}, answers=object())
        self.assertTrue(store.current().ready)
        store.stall((SPREADS,), "hung")
        self.assertFalse(store.current().ready)
        self.assertFalse(store.current().up)
        store.record({SPREADS: (None, 1000.0)})
        self.assertTrue(store.current().ready and store.current().up)


class WatchdogTest(unittest.TestCase):
    """A job whose runs stop finishing fails after its deadline, even though nothing raised."""

    def setUp(self) -> None:
        self.now = [0.0]
        self.blocked = [0.0]
        self.store = SnapshotStore(clock=lambda: self.now[0])
        self.watchdog = Watchdog(self.store, {RANKINGS: 60.0, SPREADS: 10.0},
                                 lambda: self.blocked[0], clock=lambda: self.now[0])
        self.store.record({RANKINGS: (None, 0.0), SPREADS: (None, 0.0)}, answers=object())

    def test_three_intervals_without_a_finished_run(self):
        self.now[0] = 30.0
        self.assertEqual(self.watchdog.check(), [])
        self.now[0] = 31.0
        with self.assertLogs("binance_exporter.jobs.supervisor", "ERROR"):
            self.assertEqual(self.watchdog.check(), [SPREADS])
        self.assertTrue(self.store.current().jobs[SPREADS].stuck)
        self.assertEqual(self.watchdog.check(), [])  # stalled once, not once per check
        self.now[0] = 181.0
        with self.assertLogs("binance_exporter.jobs.supervisor", "ERROR"):
            self.assertEqual(self.watchdog.check(), [RANKINGS])

    def test_a_job_hung_while_holding_its_turn_is_still_marked(self):
        held, release = threading.Event(), threading.Event()

        def hang() -> None:
            with self.store.turn:  # as a job waiting on a request that never ends
                held.set()
                release.wait(10)

        threading.Thread(target=hang, daemon=True).start()
        self.addCleanup(release.set)
        self.assertTrue(held.wait(5))
        self.now[0] = 31.0
        checked: list[list[str]] = []
        checker = threading.Thread(target=lambda: checked.append(self.watchdog.check()),
                                   daemon=True)
        with self.assertLogs("binance_exporter.jobs.supervisor", "ERROR"):
            checker.start()
            checker.join(5)
        self.assertFalse(checker.is_alive(), "the watchdog waited on the hung job")
        self.assertEqual(checked, [[SPREADS]])
        self.assertTrue(self.store.current().jobs[SPREADS].stuck)

    def test_a_back_off_binance_asked_for_extends_the_deadline(self):
        self.now[0] = 20.0
        self.blocked[0] = 100.0  # a 429 asked for 100 s: the deadline counts from 120
        self.assertEqual(self.watchdog.check(), [])
        self.blocked[0] = 0.0
        self.now[0] = 150.0
        self.assertEqual(self.watchdog.check(), [])  # 30 s after the back-off
        self.now[0] = 151.0
        with self.assertLogs("binance_exporter.jobs.supervisor", "ERROR"):
            self.assertEqual(self.watchdog.check(), [SPREADS])

    def test_slack_for_the_other_jobs_runs(self):
        watchdog = Watchdog(self.store, {SPREADS: 10.0}, lambda: 0.0, slack=20.0,
                            clock=lambda: self.now[0])
        self.now[0] = 50.0
        self.assertEqual(watchdog.check(), [])
        self.now[0] = 51.0
        with self.assertLogs("binance_exporter.jobs.supervisor", "ERROR"):
            self.assertEqual(watchdog.check(), [SPREADS])

    def test_only_rankings_are_watched_before_the_first_answers(self):
        store = SnapshotStore(clock=lambda: self.now[0])
        watchdog = Watchdog(store, {RANKINGS: 60.0, SPREADS: 10.0}, lambda: 0.0,
                            clock=lambda: self.now[0])
        self.now[0] = 100.0
        self.assertEqual(watchdog.check(), [])
        self.now[0] = 200.0
        with self.assertLogs("binance_exporter.jobs.supervisor", "ERROR"):
            self.assertEqual(watchdog.check(), [RANKINGS])


if __name__ == "__main__":
    unittest.main()
