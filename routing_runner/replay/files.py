"""A replay's machine-readable reports: JSON (versioned) and JUnit XML."""

from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, TextIO

from routing_runner.config.model import Config
from routing_runner.private_files import write_private
from routing_runner.render import tool_line
from routing_runner.runtime.usage import usage_record
from routing_runner.wording import count, inert

from .plan import Job
from .report import _label, failure_details
from .results import BatchResult, ConversationResult, TurnResult
from .stats import PassRate, coverage, pass_rates
from .usage_report import batch_usage, conversation_usage, usage_properties

REPORT_VERSION = 1


def to_json(result: BatchResult) -> dict[str, Any]:
    """The machine-readable report: totals, coverage, one object per conversation and turn."""
    cov = coverage(result)
    return {
        "version": REPORT_VERSION,
        "config": str(result.config.source),
        "exit_code": result.exit_code,
        "stopped": result.stopped,
        "seconds": round(result.seconds, 4),
        "totals": {
            "conversations": len(result.jobs),
            "passed": result.count("passed"),
            "failed": result.count("failed"),
            "errors": result.count("error"),
            "not_run": len(result.not_run),
            "turns": sum(len(c.turns) for c in result.conversations),
            "rate_limited": result.rate_limited,
            "usage": batch_usage(result),
        },
        "coverage": {
            "declared": [list(e) for e in cov.declared],
            "taken": [list(e) for e in cov.taken],
            "never": [list(e) for e in cov.never],
        },
        "pass_rates": [
            {"transcript": r.transcript, "turn": r.turn, "location": r.location,
             "passed": r.passed, "runs": r.runs} for r in pass_rates(result)
        ],
        "conversations": [_conversation_json(c) for c in result.conversations],
        "not_run": [_job_json(job) for job in result.not_run],
    }


def _job_json(job: Job) -> dict[str, Any]:
    transcript = job.transcript
    return {"name": transcript.name, "file": transcript.location.file,
            "line": transcript.location.line, "tags": list(transcript.tags),
            "repeat": job.repeat, "session_id": job.session_id}


def _conversation_json(conversation: ConversationResult) -> dict[str, Any]:
    return {
        **_job_json(conversation.job),
        "status": conversation.status,
        "seconds": round(conversation.seconds, 4),
        "error": conversation.error,
        "usage": conversation_usage(conversation),
        "turns": [_turn_json(t, conversation.job.transcript.config) for t in conversation.turns],
        "cassette": None if conversation.cassette is None else vars(conversation.cassette),
    }


def _turn_json(turn: TurnResult, config: Config) -> dict[str, Any]:
    observed = turn.observed
    return {
        "turn": turn.number,
        "line": turn.turn.location.line,
        "user": turn.turn.user,
        "after_restart": turn.after_restart,
        "status": turn.status,
        "seconds": round(turn.seconds, 4),
        "first_text_seconds": (None if turn.first_text_seconds is None
                               else round(turn.first_text_seconds, 4)),
        "observed": None if observed is None else {
            "agent": observed.agent, "route": list(observed.route), "text": observed.text,
            "model_calls": observed.model_calls, "tool_calls": observed.tool_calls,
            "retries": observed.retries, "language": observed.language,
            "output": observed.output, "guardrail": observed.guardrail,
            "usage": usage_record(config, observed.usage),
            "tools": [{"agent": c.agent, "name": c.tool, "arguments": c.arguments,
                       "output": c.output} for c in observed.tools],
        },
        "failures": [{"check": m.check, "expected": m.expected, "got": m.got}
                     for m in turn.mismatches],
        "error": turn.error,
        "notes": list(turn.notes),
    }


def write_json(result: BatchResult, target: str, stdout: TextIO) -> None:
    """Write the JSON report to `target`, or to `stdout` when it is `-`."""
    text = json.dumps(to_json(result), indent=2, ensure_ascii=False) + "\n"
    if target == "-":
        stdout.write(text)
        stdout.flush()
    else:
        write_private(Path(target), text)


def junit_tree(result: BatchResult) -> ET.ElementTree[ET.Element]:
    """JUnit XML: one testsuite for the config, one testcase per conversation."""
    suite_name = _xml_safe(f"replay {result.config.title}")
    root = ET.Element("testsuites", name="routing-runner replay")
    suite = ET.SubElement(root, "testsuite", {
        "name": suite_name, "tests": str(len(result.jobs)),
        "failures": str(result.count("failed")), "errors": str(result.count("error")),
        "skipped": str(len(result.not_run)), "time": f"{result.seconds:.3f}",
    })
    root.attrib.update({k: suite.attrib[k] for k in ("tests", "failures", "errors", "time")})
    rates: dict[str, list[PassRate]] = {}
    for rate in pass_rates(result):
        rates.setdefault(rate.transcript, []).append(rate)
    for conversation in result.conversations:
        case = _testcase(suite, conversation.job, conversation.seconds, conversation)
        _pass_rate_properties(case, rates.get(conversation.transcript.name, []))
        if conversation.status == "passed":
            _tool_calls(case, conversation)
            continue
        first = _first_problem(conversation)
        kind = "error" if conversation.status == "error" else "failure"
        element = ET.SubElement(case, kind, {
            "message": _xml_safe(first),
            "type": "RunFailure" if kind == "error" else "ExpectationFailed",
        })
        element.text = _xml_safe("\n".join(failure_details(conversation)))
        _tool_calls(case, conversation)  # JUnit puts the output after the failure
    for job in result.not_run:
        case = _testcase(suite, job, 0.0)
        why = "interrupted" if result.stopped == "interrupted" else "stopped by --fail-fast"
        ET.SubElement(case, "skipped", message=f"not run ({why})")
    ET.indent(root)
    return ET.ElementTree(root)


def _testcase(suite: ET.Element, job: Job, seconds: float,
              conversation: ConversationResult | None = None) -> ET.Element:
    transcript = job.transcript
    name = transcript.name + (f" [run {job.repeat}]" if job.repeats > 1 else "")
    classname = Path(transcript.location.file).with_suffix("").as_posix().strip("./")
    case = ET.SubElement(suite, "testcase", {
        "classname": _xml_safe(classname.replace("/", ".")), "name": _xml_safe(name),
        "file": _xml_safe(transcript.location.file), "line": str(transcript.location.line),
        "time": f"{seconds:.3f}",
    })
    properties = ET.SubElement(case, "properties")
    ET.SubElement(properties, "property", name="session_id", value=job.session_id)
    for name, value in usage_properties(conversation):
        ET.SubElement(properties, "property", name=name, value=value)
    return case


def _pass_rate_properties(case: ET.Element, rates: list[PassRate]) -> None:
    """Each turn's pass rate over its transcript's runs, for CI dashboards that chart them."""
    properties = case.find("properties")
    assert properties is not None  # every test case has its session id
    for rate in rates:
        ET.SubElement(properties, "property", name=f"pass_rate.turn_{rate.turn}",
                      value=f"{rate.passed}/{rate.runs}")
def _tool_calls(case: ET.Element, conversation: ConversationResult) -> None:
    """The turns' tool calls, one line each, as the test case's output."""
    lines = [f"turn {turn.number}:{tool_line(call)}" for turn in conversation.turns
             if turn.observed for call in turn.observed.tools]
    if lines:
        ET.SubElement(case, "system-out").text = _xml_safe("\n".join(lines))


def _first_problem(conversation: ConversationResult) -> str:
    for turn in conversation.turns:
        if turn.error is not None:
            return f"turn {turn.number}: run failed: {turn.error}"
        if turn.mismatches:
            m = turn.mismatches[0]
            more = len(turn.mismatches) - 1
            extra = f" (and {count(more, 'more check')})" if more else ""
            return (f"turn {turn.number}: expected {_label(m.check)} {m.expected}, "
                    f"got {m.got}{extra}")
    return conversation.error or "failed"


_NOT_XML = re.compile("[\ud800-\udfff\ufffe\uffff]")


def _xml_safe(text: str) -> str:
    # inert() makes control characters visible; XML 1.0 cannot carry them (nor lone
    # surrogates and U+FFFE/U+FFFF) at all, and a CI server would reject the whole file.
    return _NOT_XML.sub("\ufffd", inert(text))


def write_junit(result: BatchResult, path: Path) -> None:
    """Write the JUnit XML report to `path` (created owner-only, never through a symlink)."""
    document = io.BytesIO()
    junit_tree(result).write(document, encoding="utf-8", xml_declaration=True)
    write_private(path, document.getvalue())
