"""neurovox.synth"""
