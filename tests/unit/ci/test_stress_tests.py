"""The stress mode names every failed test of a run from pytest's junit report, and refuses bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts import stress_tests

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="4">
  <testcase classname="tests.integration.engine.test_engine_cdk" name="test_ok" time="0.1"/>
  <testcase classname="tests.integration.engine.test_engine_cdk" name="test_bake" time="0.2">
    <failure message="AssertionError: assert 'LambdaFunctionStarted' == 'WaitStateEntered'&#10;more">trace</failure>
  </testcase>
  <testcase classname="tests.e2e.test_demo" name="test_demo_end_to_end" time="3">
    <error message="">setup failed</error>
  </testcase>
  <testcase classname="tests.e2e.test_demo" name="test_skipped" time="0"><skipped message="no"/></testcase>
</testsuite></testsuites>
"""


def test_failures_and_errors_are_named_with_their_first_line(tmp_path: Path) -> None:
    report = tmp_path / "run.xml"
    report.write_text(JUNIT, encoding="utf-8")
    assert stress_tests._failures(report) == {
        "tests.integration.engine.test_engine_cdk::test_bake": "AssertionError: assert 'LambdaFunctionStarted' == 'WaitStateEntered'",
        "tests.e2e.test_demo::test_demo_end_to_end": "error",
    }


@pytest.mark.parametrize("args", [["--runs", "0"], ["--workers", "0"], ["--load", "-1"], ["--tiers", "nope"]])
def test_bad_arguments_are_refused_before_anything_runs(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        stress_tests.main(args)
    assert exited.value.code == 2
    assert "stress_tests.py" in capsys.readouterr().err


def test_a_run_is_the_two_passes_of_make_test(tmp_path: Path) -> None:
    passes = stress_tests._passes(["integration", "e2e"], 3, tmp_path / "run-1")
    assert [name for name, _, _ in passes] == ["parallel", "e2e"]
    (_, parallel_report, parallel), (_, e2e_report, serial) = passes
    assert parallel[parallel.index("-n") + 1] == "3" and parallel[parallel.index("--dist") + 1] == "load"
    assert "tests/integration" in parallel and "tests/e2e" not in parallel
    assert f"--junitxml={parallel_report}" in parallel
    assert "-n" not in serial and serial[-1] == "tests/e2e" and f"--junitxml={e2e_report}" in serial
    assert parallel_report != e2e_report


def test_e2e_alone_is_one_serial_pass(tmp_path: Path) -> None:
    assert [name for name, _, _ in stress_tests._passes(["e2e"], 3, tmp_path / "run-1")] == ["e2e"]
