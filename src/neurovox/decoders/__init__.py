"""neurovox.decoders"""
