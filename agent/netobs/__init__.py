"""netobs: OpenTelemetry-native synthetic network monitoring."""

__version__ = "0.1.0"
