"""Run the suite with `python -m tests [SET ...]` (what `make test` does under coverage).

With no argument every set runs: `unit` (no sockets, no sleeps), `integration`
(the fake Binance and the exporter as a process, over loopback) and `stack`
(promtool and a real Prometheus). `make test-fast` runs `unit` alone.

unittest's own summary is not one that CI reads, so this ends with the plain
`unittest: N passed, N failed, N skipped` line as well.
"""

import sys
import unittest

SETS = ("unit", "integration", "stack")


def main(argv: list[str]) -> int:
    """Discover and run the named sets (all by default); 0 when all passed."""
    names = argv or list(SETS)
    unknown = sorted(set(names) - set(SETS))
    if unknown:
        print(f"unknown test set(s) {', '.join(unknown)}; choose from {', '.join(SETS)}",
              file=sys.stderr)
        return 2
    suite = unittest.TestSuite(
        unittest.defaultTestLoader.discover(f"tests/{name}", top_level_dir=".") for name in names
    )
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    skipped = len(result.skipped)
    passed = result.testsRun - failed - skipped - len(result.expectedFailures)
    print(f"unittest: {passed} passed, {failed} failed, {skipped} skipped", flush=True)
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
