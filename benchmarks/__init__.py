"""Benchmarks of aiohttp-conditional against upstream aiohttp (asv, and compare.py)."""
