"""Traces, metrics and logs of the platform, and a local OTLP trace receiver for development."""
