"""Benchmarks of routing-runner against hand-written Agents SDK baselines (`python bench/run.py`).

Not part of the test suite: `tests/test_bench_smoke.py` only checks that the entry point runs
with tiny sizes and prints its table.
"""
