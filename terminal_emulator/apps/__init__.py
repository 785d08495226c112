"""The emulated terminal's two apps: the Business App and the Credit Card App."""
