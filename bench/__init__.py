"""The benchmarks: start-up, request weight, scrapes and memory, against a naive baseline.

`python -m bench` (`make bench`) runs them; see docs/benchmarks.md.
Not part of `make test`: no module here is named test*.py.
"""
