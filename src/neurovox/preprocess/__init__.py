"""neurovox.preprocess"""
