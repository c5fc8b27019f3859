"""Benchmarks of the gateway: what it adds on top of its upstream, and how it scales.

Run with ``make bench``; ``bench/RESULTS.md`` holds the recorded results. Every figure is a
ratio or a paired difference against a baseline measured in the same run, because the machines
that run this are small and noisy. Nothing here is a test: no time is asserted anywhere.
"""
