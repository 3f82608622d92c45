"""The page's charts and badges, drawn from buckets: what each bar and line says."""

from datetime import UTC, datetime, timedelta

from monitor.history.aggregate import DAY, Bucket, Uptime
from monitor.history.badge import status_badge, uptime_badge
from monitor.model import Status
from monitor.status_charts import SPARK_POINTS, SPARK_STEP, day_strip, percent, sparkline
from monitor.status_page import CheckRow, render_status_page

NOW = datetime(2026, 11, 26, 19, 30, tzinfo=UTC)


def bucket(runs: int, good: int, latency: float = 0.1, held: int = 0) -> Bucket:
    return Bucket(runs, good, latency * runs, latency, held, held)


def test_each_day_is_one_bar_coloured_by_its_uptime() -> None:
    today = DAY.floor(NOW.timestamp())
    days = {today: bucket(1440, 1440), today - 86400: bucket(1440, 1420), today - 2 * 86400: bucket(1440, 1000),
            today - 3 * 86400: bucket(1000, 1000, held=200)}
    strip = day_strip(days, NOW)
    assert len(strip) == 90 and strip[-1].day == "2026-11-26"
    assert [bar.level for bar in strip[-4:]] == ["good", "bad", "poor", "good"]
    assert strip[-3].label == "2026-11-24: 69.44% uptime (1440 runs)"
    assert strip[-4].label == "2026-11-23: 100.00% uptime (800 runs, 200 in maintenance or silenced)"
    assert strip[0].level == "none" and strip[0].label.endswith("no data")


def test_the_sparkline_draws_15_minute_averages_with_gaps_where_nothing_ran() -> None:
    last = SPARK_STEP.floor(NOW.timestamp())
    quarters = {last - 900 * n: bucket(90, 90, 0.05) for n in range(0, 40)}
    quarters[last] = bucket(90, 90, 0.8)
    line = sparkline(quarters, NOW)
    assert line.peak == 0.8 and line.label.startswith("Latency over the last 24 hours: average ")
    assert line.path.startswith("M") and line.path.count("M") == 1, "one stretch: the last 10 hours"
    assert len(line.path.split(" ")) // 2 == 600 // 15, "one point per 15 minutes"
    assert sparkline({}, NOW).path == "" and "no data" in sparkline({}, NOW).label
    assert SPARK_POINTS == 96


def test_percentages_never_round_a_failure_up_to_100() -> None:
    assert percent(0.99999) == "99.99%" and percent(1.0) == "100.00%" and percent(None) == "-"


def test_badges_say_status_or_uptime_and_escape_the_label() -> None:
    assert 'aria-label="api&lt;x&gt;: critical"' in status_badge("api<x>", "critical")
    assert "#cf222e" in status_badge("api", "critical")
    assert ">99.50%<" in uptime_badge("uptime 30d", Uptime(200, 199)) and "no data" in uptime_badge("u", None)


def test_a_flapping_check_carries_its_badge_and_its_uptime_figures() -> None:
    row = CheckRow("api", "http", 30, Status.WARNING, 0.2, NOW - timedelta(seconds=5), "slow",
                   flapping=True, uptime={"24h": Uptime(100, 99), "90d": Uptime(1000, 990, 10, 0)})
    html = render_status_page("prod", [row], [], [], NOW)
    assert '<span class="flapping"' in html
    assert '<dd data-window="24h">99.00%</dd>' in html and '<dd data-window="7d">-</dd>' in html
    assert '<dd data-window="90d">100.00%</dd>' in html and "10 runs in maintenance or silenced" in html
