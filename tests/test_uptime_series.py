"""`health_monitor_check_uptime_ratio` as a scrape shows it after each history flush."""

from monitor.check_series import CheckSeries


def exposition(series: CheckSeries) -> str:
    return "".join(series.uptime_snapshot())


def test_a_changed_ratio_is_shown_and_a_steady_check_is_not_formatted_again() -> None:
    series = CheckSeries("histogram", (0.25,))
    series.set_uptime({"api": {"24h": 1.0, "7d": 1.0}, 'we"b': {"24h": 0.5}})
    first = series._uptime_lines["api"][1]
    series.set_uptime({"api": {"24h": 1.0, "7d": 1.0}, 'we"b': {"24h": 0.25}})
    text = exposition(series)
    assert 'health_monitor_check_uptime_ratio{check="we\\"b",window="24h"} 0.25\n' in text
    assert "0.5" not in text
    assert 'health_monitor_check_uptime_ratio{check="api",window="7d"} 1.0\n' in text
    assert series._uptime_lines["api"][1] is first, "the steady check's lines are the ones made before"
    series.set_uptime({"api": {"24h": 1.0}})
    assert exposition(series) == 'health_monitor_check_uptime_ratio{check="api",window="24h"} 1.0\n'
