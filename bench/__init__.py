"""Benchmarks: ``bench/run.py`` (HTTP, the table), ``bench/hotpath.py`` (per-layer cost),
``bench/profile.py`` (py-spy profile of the token endpoint), ``bench/crypto.py`` (encryption).
"""
