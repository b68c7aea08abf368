"""Triton kernels, each with a launcher and a torch twin in ops/ that it must match."""
