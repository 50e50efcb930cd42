"""Thin views: parse the request, call storage or the driver, answer JSON."""
