"""Marts: correlated and rolled-up tables that reports read, kept in step with curated data.

``schemas`` declares the tables (namespace ``marts``), ``store`` the small interfaces the
maintenance logic reads and writes through (with in-memory versions for tests),
``iceberg`` their Iceberg implementation, ``plan`` which slices new rows touch, and
``maintain`` the incremental update and the full rebuild.
"""
