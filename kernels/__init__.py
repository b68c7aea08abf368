"""Triton kernels, each with a launcher and a torch twin in ops/fusion/ that it must match. They import
nothing of the project: the grid and the class count come in as arguments."""
