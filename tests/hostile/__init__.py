"""Hostile inputs and a load test for the app and the CLI (see tests/test_hostile.py)."""
