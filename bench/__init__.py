"""Benchmarks: the migrator against plain Alembic on the same servers, in the same run.

`python -m bench` (or `make bench`) prints one table; docs/benchmarks.md explains it.
"""
