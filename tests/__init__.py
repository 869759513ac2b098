"""The test suite, a package: everything in it is imported as ``tests.<module>``
(tests/test_layout.py keeps it so)."""
