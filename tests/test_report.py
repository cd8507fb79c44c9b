"""The HTML report of statistics() and estimate() (issue #27 point 10), rendered by a real browser: headless
Chromium loads the written file, and the DOM it dumps must hold the chart and the figures, with no script
error. Chromium comes from Debian's package (.ci/run installs it); outside CI a machine without it skips."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from spark_aoai import ChatCompletion
from spark_aoai._core.constants import TIMELINE_MAX_BUCKETS as MAX_BUCKETS
from spark_aoai._features.report import _page, write_html
from spark_aoai._features.stats import JobStatistics
from spark_aoai._features.timeline import Timeline, merge
from spark_aoai.emulator import Emulator, RateLimit


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI: .ci/run installs Debian's chromium package")
        pytest.skip("chromium is not installed here (apt-get install chromium); CI installs it")
    return found


def rendered(path: Path, tmp_path: Path) -> str:
    """The DOM after Chromium loaded ``path`` and ran its scripts."""
    done = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=3000",
         f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", path.as_uri()],
        capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def script_errors(dom: str) -> str:
    found = re.search(r'<pre class="spark-aoai-errors">(.*?)</pre>', dom, re.S)
    assert found is not None, "the report's error box is missing"
    return found.group(1)


def test_the_statistics_report_renders_its_chart_and_figures_in_chromium(spark, tmp_path):
    with Emulator(rate_limit=RateLimit(requests_per_minute=600, window_seconds=1)) as emu:
        stage = ChatCompletion(deploymentName="gpt-4o", promptCol="prompt", endpoint=emu.endpoint, apiKey="k",
                               progress=False, maxRequestsPerMinute=3000, dedup=False, concurrency=8)  # fmt: skip
        rows = [(i, None if i == 0 else f"question {i}") for i in range(50)]
        df = spark.createDataFrame(rows, "id int, prompt string").repartition(2)
        estimate = stage.estimate(df)
        stage.transform(df).collect()
        stats = stage.statistics()
    assert stats.throttled and stats.timeline and stats.by_deployment["gpt-4o"]["requests"] == stats.requests
    assert sum(point[1] for point in stats.timeline) == stats.requests  # every attempt is in the chart
    assert sum(point[-1] for point in stats.timeline) == pytest.approx(stats.estimated_cost)
    dom = rendered(Path(stats.to_html(str(tmp_path / "stats.html"))), tmp_path)
    assert 'data-ready="yes"' in dom and script_errors(dom) == ""
    chart = re.search(r'<svg class="timeline".*?</svg>', dom, re.S)
    assert chart is not None
    for line in ("requests", "throttled", "tokens", "cost"):
        assert f'<polyline class="{line}"' in chart.group(0)
    assert 'class="limit"' in chart.group(0) and "limit 50/s" in chart.group(0)  # maxRequestsPerMinute / 60
    assert f'<td class="n">{stats.rows}</td>' in dom and "<td>invalid_input</td>" in dom
    assert f'<td class="n">{stats.requests:,}</td>' in dom and "<td>gpt-4o</td>" in dom
    assert f"{stats.estimated_cost:,.4f}" in dom and "the one Spark job over the output" in dom
    assert stats._repr_html_().startswith('<div class="spark-aoai"')
    page = rendered(Path(estimate.to_html(str(tmp_path / "estimate.html"))), tmp_path)
    assert 'data-ready="yes"' in page and script_errors(page) == "" and '<svg class="cost-range"' in page
    assert isinstance(estimate, dict) and f'<td class="n">{estimate["requests"]}</td>' in page


def test_a_script_error_in_the_report_shows_in_the_dom(tmp_path):
    page = _page("broken", "<p>x</p>", {"points": []}).replace("root.dataset.ready='yes'", "nothing();")
    dom = rendered(Path(write_html(str(tmp_path / "broken.html"), page, "broken")), tmp_path)
    assert "nothing is not defined" in script_errors(dom) and 'data-ready="yes"' not in dom


def test_before_any_action_the_report_says_why_it_is_empty():
    html = JobStatistics(note="no action has run over the output yet")._repr_html_()
    assert "no action has run over the output yet" in html and "<svg" not in html


def test_a_long_timeline_stays_small_and_keeps_every_request():
    task = Timeline()
    for second in range(3 * MAX_BUCKETS):
        task.add(1_000_000 + second, throttled=second % 3 == 0, prompt=10, completion=2)
    assert len(task.buckets) <= MAX_BUCKETS and task.width == 4
    other = Timeline()
    other.add(1_000_000, throttled=False, prompt=1)
    total = merge([{"timeline": task.as_record()}, {"timeline": other.as_record()}, {"timeline": "garbled"}])
    assert total.width == 4 and sum(b[0] for b in total.buckets.values()) == 3 * MAX_BUCKETS + 1
    assert sum(b[1] for b in total.buckets.values()) == MAX_BUCKETS
