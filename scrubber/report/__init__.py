"""Compliance reports per batch: build the data, render each format, sign, verify.

The JSON form built by :mod:`scrubber.report.build` is canonical; every other
format is rendered from it, and the signed formats embed it.
"""
