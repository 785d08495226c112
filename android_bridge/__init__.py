"""Drive the Credit Card App of SmartPOS terminals from a host over ADB (``adb-shell``):
the contract's Intents fired with ``am``, results read back, lost results recovered.

Start at :class:`~android_bridge.terminal.PaymentTerminal` (operations) and
:class:`~android_bridge.device.AndroidDevice` (the link); ``docs/android-bridge.md`` explains
the whole of it, real devices included.
"""
