"""smarttab's real-time channel: ``GET /v1/stream`` pushes a store's events to its devices.

See docs/smarttab.md, "Real-time channel", for the protocol.
"""
