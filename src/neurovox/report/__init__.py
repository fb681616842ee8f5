"""neurovox.report"""
