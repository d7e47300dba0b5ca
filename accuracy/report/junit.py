"""JUnit XML for CI systems: one testsuite per suite, one testcase per check."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from accuracy.io import write_bytes_atomic
from accuracy.results import SuiteResult


def junit_xml(results: Sequence[SuiteResult]) -> bytes:
    root = ET.Element("testsuites", name="accuracy")
    for result in results:
        failures = sum(1 for c in result.checks if not c.passed)
        suite = ET.SubElement(
            root,
            "testsuite",
            name=result.suite,
            tests=str(max(len(result.checks), 1 if result.error or result.skipped else 0)),
            failures=str(failures),
            errors="1" if result.error else "0",
            skipped="1" if result.skipped else "0",
        )
        if result.skipped:
            case = ET.SubElement(suite, "testcase", classname=result.suite, name="suite")
            ET.SubElement(case, "skipped", message=result.skipped).text = result.skipped
        if result.error:
            case = ET.SubElement(suite, "testcase", classname=result.suite, name="suite")
            ET.SubElement(case, "error", message=result.error).text = result.error
        for check in result.checks:
            case = ET.SubElement(suite, "testcase", classname=result.suite, name=check.name)
            if not check.passed:
                first = check.message.splitlines()[-1] if check.message else "failed"
                ET.SubElement(case, "failure", message=first).text = check.message
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def write_junit(path: str | Path, results: Sequence[SuiteResult]) -> Path:
    return write_bytes_atomic(path, junit_xml(results))
