"""neurovox.encoder"""
