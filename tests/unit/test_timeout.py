"""Every test has a timeout, and a hanging test fails by it (negative control)."""

from __future__ import annotations


def test_every_test_has_a_timeout(pytestconfig):
    assert pytestconfig.getini("timeout") == "120"


def test_a_hanging_test_is_failed_by_the_timeout(pytester):
    pytester.makepyfile(
        test_hangs="import threading\n\ndef test_hangs():\n    threading.Event().wait()\n"
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-o", "timeout=1")
    result.assert_outcomes(failed=1)
    assert "Timeout" in result.stdout.str()
