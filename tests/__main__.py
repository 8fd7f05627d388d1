"""Run the whole suite with `python -m tests` (what `make test` does under coverage).

unittest's own summary is not one that CI reads, so this ends with the plain
`unittest: N passed, N failed, N skipped` line as well.
"""

import sys
import unittest


def main() -> int:
    """Discover and run every test module under tests/; 0 when all passed."""
    suite = unittest.defaultTestLoader.discover("tests", top_level_dir=".")
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    skipped = len(result.skipped)
    passed = result.testsRun - failed - skipped - len(result.expectedFailures)
    print(f"unittest: {passed} passed, {failed} failed, {skipped} skipped", flush=True)
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
