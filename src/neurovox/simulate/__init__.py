"""neurovox.simulate"""
