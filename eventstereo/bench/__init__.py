"""Benchmarks: one module per `eventstereo bench NAME`, each with main(argv) -> exit code.

Every benchmark measures its baseline in the same run and prints ratios; with --json the last line is
one JSON object.
"""
