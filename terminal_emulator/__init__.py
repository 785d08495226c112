"""The SmartPOS terminal emulator: Android-like runtime, the two apps, the ADB endpoint."""
