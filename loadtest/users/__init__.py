"""The simulated users of the locustfile: devices, back-office staff, the provider's webhooks.

These modules import locust (which monkey-patches the standard library with gevent on import):
import them only in a locust process.
"""
