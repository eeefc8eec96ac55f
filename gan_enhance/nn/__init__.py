"""Shared neural-network layers and spectral helpers."""
