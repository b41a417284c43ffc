"""Tests of the framework back-ends; framework code runs in worker processes (see ``harness.py``)."""
