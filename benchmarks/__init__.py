"""Benchmarks for sorix (W1-W5 of PERFORMANCE.md): `python -m benchmarks.run`.

Not part of the test run: nothing here asserts on timings. Importing this package does nothing;
`benchmarks.run` pins the BLAS thread pools before it imports numpy.
"""
