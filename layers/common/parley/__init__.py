"""Parley: the shared package behind every Lambda function (domain, ports, adapters, services)."""

__version__ = "0.1.0"
