"""Load testing the platform: locust scenarios of the SmartPOS fleet (``loadtest/locustfile.py``),
their test data (``mpac loadtest provision``), the SLO gate and the runner (``mpac loadtest run``).
See ``loadtest/README.md`` and ``docs/loadtest.md``."""
