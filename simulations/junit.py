"""JUnit XML for a suite run (what CI systems read): one ``testsuite`` per suite run, one
``testcase`` per scenario; a failed check or verdict is a ``failure`` listing each one that
failed, a run that could not be judged is an ``error`` with its reason."""

from __future__ import annotations

from collections.abc import Iterable
from xml.etree import ElementTree as ET

from simulations.models import RunStatus, ScenarioRun, SuiteRun


def _failures(run: ScenarioRun) -> list[str]:
    lines = [f"check {r['check']}: {r['detail']}" for r in run.check_results if not r["passed"]]
    lines += [f"judge: {v['criterion']}: {v['reason']}" for v in run.verdicts if not v["passed"]]
    return lines


def junit_xml(runs: Iterable[SuiteRun]) -> bytes:
    root = ET.Element("testsuites")
    for suite_run in runs:
        cases = list(ScenarioRun.objects.filter(suite_run=suite_run).order_by("scenario_name", "pk"))
        element = ET.SubElement(root, "testsuite", {
            "name": f"{suite_run.agent.name} / {suite_run.suite.name} ({suite_run.version_label})",
            "tests": str(len(cases)),
            "failures": str(sum(1 for c in cases if c.status == RunStatus.FAILED)),
            "errors": str(sum(1 for c in cases if c.status not in (RunStatus.PASSED, RunStatus.FAILED))),
            "time": f"{sum((c.duration_ms or 0) for c in cases) / 1000:.3f}",
        })
        for case in cases:
            node = ET.SubElement(element, "testcase", {
                "classname": f"{suite_run.agent.name}.{suite_run.suite.name}", "name": case.scenario_name,
                "time": f"{(case.duration_ms or 0) / 1000:.3f}",
            })
            if case.status == RunStatus.FAILED:
                lines = _failures(case)
                failure = ET.SubElement(node, "failure", {"message": lines[0] if lines else "failed"})
                failure.text = "\n".join(lines)
            elif case.status != RunStatus.PASSED:
                message = case.error or f"the scenario did not finish ({case.status})"
                ET.SubElement(node, "error", {"message": message[:500]}).text = message
            if case.transcript:
                ET.SubElement(node, "system-out").text = "\n".join(
                    f"{t['role'].upper()}: {t['text']}" for t in case.transcript)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
