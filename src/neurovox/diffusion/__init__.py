"""neurovox.diffusion"""
