"""Drive the Business App <-> Credit Card App Intents on SmartPOS devices over ADB."""
