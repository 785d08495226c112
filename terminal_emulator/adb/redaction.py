"""Card data kept out of the endpoint's logs.

Command lines reach the logs in a few places (debug traces of messages, a refused service, a
crashed command). The emulator's ``cardreader`` command carries test card numbers and PINs on
its command line (``cardreader tap 4242424242424242``, ``cardreader pin 1234``), and a PAN in a
log is a PCI DSS defect even for a test card: whatever is logged goes through :func:`redact`
first. It masks every run of 12 or more digits but its last four (a PAN, whatever command
carries it) and the word after ``cardreader pin`` (quoted or not: host tools quote every word).
"""

from __future__ import annotations

import re

# 12-19 digits is a PAN; longer runs are masked as well rather than cut into pieces.
_PAN = re.compile(r"\d{12,}")
_PIN = re.compile(r"""(cardreader['"]?\s+['"]?pin['"]?\s+['"]?)([^'"\s;&|\x00]+)""")
_PAN_BYTES = re.compile(rb"\d{12,}")
_PIN_BYTES = re.compile(rb"""(cardreader['"]?\s+['"]?pin['"]?\s+['"]?)([^'"\s;&|\x00]+)""")

MASK = "*"


def _mask_digits(run: str) -> str:
    return MASK * (len(run) - 4) + run[-4:]


def redact(text: str) -> str:
    """``text`` with PANs masked to their last four digits and ``cardreader pin`` values
    replaced by ``****``."""
    text = _PIN.sub(lambda match: match.group(1) + MASK * 4, text)
    return _PAN.sub(lambda match: _mask_digits(match.group(0)), text)


def redact_bytes(data: bytes) -> bytes:
    """:func:`redact` for raw payloads (ASCII digits only: card numbers are ASCII)."""
    data = _PIN_BYTES.sub(lambda match: match.group(1) + MASK.encode() * 4, data)
    return _PAN_BYTES.sub(
        lambda match: MASK.encode() * (len(match.group(0)) - 4) + match.group(0)[-4:], data
    )
