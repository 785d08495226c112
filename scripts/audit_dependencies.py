"""Run pip-audit over the project's environment and judge its report (scripts/audit_dependencies.sh).

Exit status: 0 every dependency was checked and none has a known vulnerability outside the
ignore list; 1 at least one has; 2 bad usage or ignore list; 3 the audit could not be done or
was incomplete (the vulnerability service unreachable, or some dependencies not found there).

pip-audit itself exits 0 when it could check nothing at all (every dependency "not found on
PyPI", as behind a registry mirror without PyPI's per-version JSON API): that must not read as a
clean bill of health, hence this wrapper. Standard library only: it runs on pip-audit's own
interpreter.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CLEAN, VULNERABLE, USAGE, UNAVAILABLE = 0, 1, 2, 3
# pip-audit's skip reason for our own package (--skip-editable): expected, not a gap.
EDITABLE_SKIP = "distribution marked as editable"


@dataclass
class Finding:
    package: str
    version: str
    vuln_id: str
    aliases: list[str]
    fix_versions: list[str]

    @property
    def names(self) -> set[str]:
        return {self.vuln_id, *self.aliases}


@dataclass
class Verdict:
    status: int
    lines: list[str] = field(default_factory=list)


def read_ignore_list(path: Path) -> dict[str, str]:
    """``ID  reason`` per line (``#`` comments, blank lines); every entry must give its reason."""
    ignored: dict[str, str] = {}
    if not path.exists():
        return ignored
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        vuln_id, _, reason = line.partition(" ")
        if not reason.strip():
            raise ValueError(f"{path}:{number}: {vuln_id} has no reason; say why it does not apply")
        ignored[vuln_id] = reason.strip()
    return ignored


def judge(report: dict[str, Any], ignored: dict[str, str], *, allow_unavailable: bool) -> Verdict:
    """The exit status and what to print for a pip-audit JSON report."""
    dependencies = report.get("dependencies", [])
    findings: list[Finding] = []
    not_checked: list[str] = []
    checked = 0
    for dependency in dependencies:
        reason = dependency.get("skip_reason")
        if reason is not None:
            if reason != EDITABLE_SKIP:
                not_checked.append(f"{dependency['name']}: {reason}")
            continue
        checked += 1
        for vuln in dependency.get("vulns", []):
            findings.append(
                Finding(
                    dependency["name"],
                    dependency.get("version", "?"),
                    vuln["id"],
                    list(vuln.get("aliases", [])),
                    list(vuln.get("fix_versions", [])),
                )
            )

    verdict = Verdict(CLEAN)
    real = []
    for finding in findings:
        waived = sorted(finding.names & ignored.keys())
        if waived:
            verdict.lines.append(
                f"ignored: {finding.package} {finding.version} {finding.vuln_id}"
                f" ({ignored[waived[0]]})"
            )
        else:
            real.append(finding)
    used = {name for finding in findings for name in finding.names}
    for vuln_id in sorted(ignored.keys() - used):
        verdict.lines.append(f"note: ignore-list entry {vuln_id} matched nothing; remove it?")

    if real:
        verdict.status = VULNERABLE
        verdict.lines.append(f"VULNERABLE: {len(real)} known vulnerabilities:")
        for finding in real:
            fixes = ", ".join(finding.fix_versions) or "none yet"
            aliases = f" ({', '.join(finding.aliases)})" if finding.aliases else ""
            verdict.lines.append(
                f"  {finding.package} {finding.version}: {finding.vuln_id}{aliases}; fixed in {fixes}"
            )
    if not_checked:
        what = (
            "the vulnerability service could not be used: no dependency was checked"
            if checked == 0
            else f"the audit is incomplete: {len(not_checked)} dependencies were not checked"
        )
        verdict.lines.append(f"NOT AUDITED: {what}.")
        verdict.lines.extend(f"  {line}" for line in not_checked[:10])
        if len(not_checked) > 10:
            verdict.lines.append(f"  ... and {len(not_checked) - 10} more")
        if checked == 0 and all("not found on PyPI" in line for line in not_checked):
            verdict.lines.append(
                "hint: this index answers no per-version JSON (/pypi/<name>/<version>/json), as"
                " a registry mirror may not; try --service osv where OSV is reachable."
            )
        if verdict.status == CLEAN:
            verdict.status = CLEAN if allow_unavailable else UNAVAILABLE
            if allow_unavailable:
                verdict.lines.append("WARNING: passing anyway (--allow-unavailable).")
    elif verdict.status == CLEAN:
        verdict.lines.append(f"ok: {checked} dependencies checked, no known vulnerabilities.")
    return verdict


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pip-audit", required=True, help="the pip-audit executable")
    parser.add_argument("--python", required=True, help="interpreter of the environment to audit")
    parser.add_argument("--service", default="pypi", choices=["pypi", "osv"])
    parser.add_argument(
        "--ignore-file", type=Path, default=Path(__file__).with_name("audit_ignore.txt")
    )
    parser.add_argument(
        "--allow-unavailable",
        action="store_true",
        help="exit 0 (with a warning) when the audit could not be done, instead of 3",
    )
    args = parser.parse_args(argv)
    try:
        ignored = read_ignore_list(args.ignore_file)
    except ValueError as error:
        print(f"audit_dependencies: {error}", file=sys.stderr)
        return USAGE

    command = [
        args.pip_audit,
        "--progress-spinner",
        "off",
        "--skip-editable",
        "--format",
        "json",
        "--vulnerability-service",
        args.service,
    ]
    # pip-audit lists the packages of whichever interpreter pip-api is pointed at.
    env = {**os.environ, "PIPAPI_PYTHON_LOCATION": args.python}
    print(f"audit_dependencies: pip-audit ({args.service}) over {args.python}", flush=True)
    # The executable is the one the wrapper installed; nothing here comes from a request.
    result = subprocess.run(  # noqa: S603
        command, env=env, capture_output=True, text=True, check=False
    )
    try:
        report = json.loads(result.stdout)
    except ValueError:
        print(
            f"NOT AUDITED: pip-audit failed (exit {result.returncode}) without a report; the"
            f" {args.service} vulnerability service is probably unreachable.",
        )
        for line in result.stderr.strip().splitlines()[-5:]:
            print(f"  {line}")
        if args.allow_unavailable:
            print("WARNING: passing anyway (--allow-unavailable).")
            return CLEAN
        return UNAVAILABLE
    verdict = judge(report, ignored, allow_unavailable=args.allow_unavailable)
    print("\n".join(verdict.lines))
    return verdict.status


if __name__ == "__main__":
    sys.exit(main())
