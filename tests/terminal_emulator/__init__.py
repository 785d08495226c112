"""Tests of the SmartPOS terminal emulator."""
