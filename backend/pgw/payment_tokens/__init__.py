"""Short-lived bearer payment tokens for merchant web content in the terminal's WebView."""
