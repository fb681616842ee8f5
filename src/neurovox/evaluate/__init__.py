"""neurovox.evaluate"""
