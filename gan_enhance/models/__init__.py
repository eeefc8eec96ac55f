"""Generators, discriminators and their registries."""
