"""`gridchain bench links` runs end to end on tiny numbers and reports what it measured.

Why: a benchmark that only runs by hand rots; this keeps its two figures (frames through one
encrypted link, full handshakes) working.  It asserts counts, never timings.
"""

from __future__ import annotations

import json

import pytest

from gridchain.bench import links


def test_the_links_bench_sends_every_frame_and_completes_every_handshake(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert links.main(["--frames", "40", "--sizes", "64,3000", "--handshakes", "3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [(row["frames"], row["size"]) for row in report["frames"]] == [(40, 64), (40, 3000)]
    assert all(row["frames_per_s"] > 0 and row["cpu_us_per_frame"] >= 0 for row in report["frames"])
    assert report["handshakes"]["handshakes"] == 3


def test_the_links_bench_refuses_payloads_too_small_to_number(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        links.main(["--sizes", "4"])
