"""Benchmarks: polystore against the raw library doing the same work, in one run.

Run ``python -m bench NAME`` with NAME one of core, zarr, stream, fiji.
"""
