"""pgw for web pages in the terminal's WebView: the SDK's files, the demo merchant page, CORS for
payment tokens, QR codes as SVG and the payment stream (docs/payment-tokens.md)."""
