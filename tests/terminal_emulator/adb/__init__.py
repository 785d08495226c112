"""Tests of the emulated terminal's ADB endpoint."""
