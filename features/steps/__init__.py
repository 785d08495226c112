"""The step library, one module per domain. Every module listed here is registered as a plugin
by the root ``conftest.py``, so each step is available to every feature file (and listed in
``docs/bdd.md``)."""

STEP_MODULES: list[str] = [
    "features.steps.people",
    "features.steps.terminals",
    "features.steps.card_payments",
    "features.steps.refunds",
    "features.steps.tabs",
    "features.steps.qr_wallet",
    "features.steps.settlement",
    "features.steps.device_auth",
    "features.steps.isolation",
]
