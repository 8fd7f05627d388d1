"""The package's shape: small modules and classes, and no shadowing of CPython's `test`."""

from __future__ import annotations

import ast
import subprocess
import sys
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "binance_exporter"
MAX_MODULE_LINES = 400
MAX_CLASS_LINES = 200


class LayoutTest(unittest.TestCase):
    """What a newcomer relies on when reading the tree."""

    def test_modules_and_classes_stay_small(self):
        for path in sorted(PACKAGE.rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            with self.subTest(module=str(path.relative_to(ROOT))):
                self.assertLessEqual(len(text.splitlines()), MAX_MODULE_LINES)
                for node in ast.walk(ast.parse(text)):
                    if isinstance(node, ast.ClassDef):
                        self.assertLessEqual(node.end_lineno - node.lineno + 1, MAX_CLASS_LINES,
                                             node.name)

    def test_discovery_leaves_the_standard_librarys_test_package_alone(self):
        self.assertFalse((ROOT / "test").exists())
        code = ("import sys, unittest; unittest.defaultTestLoader.discover('tests/unit', "
                "top_level_dir='.'); print('test' in sys.modules)")
        result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                                text=True, timeout=120, check=True)
        self.assertEqual(result.stdout.strip(), "False")


if __name__ == "__main__":
    unittest.main()
