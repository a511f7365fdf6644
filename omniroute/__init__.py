"""Omniroute: omnichannel contact routing."""

__version__ = "0.1.0"
