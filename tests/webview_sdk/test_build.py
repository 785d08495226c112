"""``python -m webview_sdk.build``: dist/ is what the source builds to, the script-tag build is
the module's own code, and the type declarations name everything the module exports."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from webview_sdk import DIST_DIR, SRC_DIR, build


def test_dist_is_up_to_date_with_src() -> None:
    stale = build.stale_files()
    assert not stale, f"webview_sdk/dist is stale ({stale}): run `python -m webview_sdk.build`"


def test_check_mode_reports_a_stale_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build.write(tmp_path)
    assert build.stale_files(tmp_path) == []
    (tmp_path / build.SCRIPT).write_text("// edited by hand\n", encoding="utf-8")

    assert build.stale_files(tmp_path) == [build.SCRIPT]
    assert build.main(["--check"]) == 0  # the repository's own dist/ is fresh
    capsys.readouterr()


def test_the_module_is_the_source_behind_a_banner() -> None:
    source = (SRC_DIR / build.MODULE).read_text(encoding="utf-8")
    module = (DIST_DIR / build.MODULE).read_text(encoding="utf-8")

    banner, _, rest = module.partition("\n")
    assert "do not edit" in banner
    assert rest == source


def test_the_script_build_is_the_module_without_module_syntax() -> None:
    source = (SRC_DIR / build.MODULE).read_text(encoding="utf-8")
    script = build.to_script(source)

    assert not re.search(r"^\s*(export|import)\s", script, re.MULTILINE)
    assert "import.meta" not in script
    assert "document.currentScript" in script
    assert script.startswith("(function () {\n")
    assert script.rstrip().endswith("installGlobal();\n})();")
    # Every line of the module's body is there, only `export ` dropped.
    body = [line.removeprefix("export ") for line in source.splitlines()]
    body = [line for line in body if not line.startswith("default ")]
    script_lines = set(script.splitlines())
    missing = [line for line in body if line not in script_lines and "import.meta" not in line]
    assert missing == []


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            'import x from "./x.mjs";\nconst u = import.meta.url;\nexport default MpacPay;\n',
            "line 1",
        ),
        ("const u = 1;\nexport default MpacPay;\n", "import.meta.url exactly once"),
        ("const u = import.meta.url;\nexport { u };\nexport default MpacPay;\n", "line 2"),
        ("const u = import.meta.url;\nexport default Other;\n", "export default MpacPay"),
    ],
    ids=["import", "no_own_url", "export_list", "wrong_default"],
)
def test_the_build_refuses_what_it_cannot_unwrap(source: str, message: str) -> None:
    with pytest.raises(build.BuildError, match=re.escape(message)):
        build.to_script(source)


def _declared_names(types: str) -> set[str]:
    pattern = r"^export declare (?:const|function|class) ([A-Za-z_$][\w$]*)"
    return set(re.findall(pattern, types, re.MULTILINE))


def test_every_export_is_declared_in_the_types() -> None:
    source = (SRC_DIR / build.MODULE).read_text(encoding="utf-8")
    types = (SRC_DIR / build.TYPES).read_text(encoding="utf-8")
    exported = build.exported_names(source)

    assert "default" in exported
    assert re.search(r"^export default MpacPay;$", types, re.MULTILINE)
    values = set(exported) - {"default"}
    assert values == _declared_names(types)
    # The namespace (window.MpacPay, the default export) lists the same names.
    namespace = re.search(r"^const MpacPay = \{(.*?)\};", source, re.MULTILINE | re.DOTALL)
    assert namespace is not None
    members = {name.strip() for name in namespace.group(1).split(",") if name.strip()}
    assert members == values
    interface = re.search(r"interface MpacPayNamespace \{(.*?)\}", types, re.DOTALL)
    assert interface is not None
    assert set(re.findall(r"^\s*(\w+):", interface.group(1), re.MULTILINE)) == values


def test_every_client_method_is_declared_in_the_types() -> None:
    source = (SRC_DIR / build.MODULE).read_text(encoding="utf-8")
    types = (SRC_DIR / build.TYPES).read_text(encoding="utf-8")
    client = source[source.index("export class MpacPayClient") :]
    public = set(re.findall(r"^  (?:async )?(?:get )?([a-z]\w*)\(", client, re.MULTILINE))
    public.discard("constructor")
    declared = types[types.index("export declare class MpacPayClient") :]
    declared = declared[: declared.index("\n}")]

    missing = [name for name in sorted(public) if not re.search(rf"\b{name}\b", declared)]
    assert public >= {"getSession", "payByCard", "payByQr", "cancel", "retry", "on", "off"}
    assert missing == []
