"""The permission matrix of ``docs/permissions.md``, rendered from ``ROLE_PERMISSIONS``.

``backend.core.authz.ROLE_PERMISSIONS`` is the single source of truth; the document carries a
copy between ``<!-- matrix:start -->`` and ``<!-- matrix:end -->`` that a test compares with
:func:`render_matrix`. Regenerate the copy with ``python -m tests.support.permissions_doc``.
"""

from __future__ import annotations

import re
from pathlib import Path

from backend.core.authz import ROLE_PERMISSIONS, Permission, Role

MATRIX_START = "<!-- matrix:start -->"
MATRIX_END = "<!-- matrix:end -->"
ALLOWED = "✓"
DENIED = "—"
DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "permissions.md"


def render_matrix() -> str:
    """A markdown table: one row per permission, one column per role (``Role`` order)."""
    roles = list(Role)
    lines = [
        "| Permission | " + " | ".join(f"`{role.value}`" for role in roles) + " |",
        "|---|" + "|".join(":---:" for _ in roles) + "|",
    ]
    for permission in Permission:
        cells = [ALLOWED if permission in ROLE_PERMISSIONS[role] else DENIED for role in roles]
        lines.append(f"| `{permission.value}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def extract_matrix(document: str) -> str | None:
    """The text between the matrix markers, trimmed; None when the markers are missing."""
    match = re.search(
        re.escape(MATRIX_START) + r"(.*?)" + re.escape(MATRIX_END), document, flags=re.DOTALL
    )
    if match is None:
        return None
    return "\n".join(line.rstrip() for line in match.group(1).strip().splitlines())


def main() -> None:
    print(MATRIX_START)
    print(render_matrix())
    print(MATRIX_END)


if __name__ == "__main__":
    main()
