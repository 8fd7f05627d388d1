"""Prometheus exporter for Binance SPOT market data."""

__version__ = "0.1.0"
