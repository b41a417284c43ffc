"""MedMNIST data: the dataset registry, download and verification, npz loading and the batch pipeline.

Numpy only: no deep-learning framework is imported anywhere under this package.
"""
