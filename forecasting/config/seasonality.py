"""Season lengths a frequency implies: the number of periods in a day, a week and a year.

A cycle counts when it spans at least two periods, a whole number of them (within 2 %,
so a year of weeks is 52 and a year of days 365), and at most ``MAX_SEASON_LENGTH``
periods (a year of hours is left out; its week is not). The hour is a cycle only when
the day is not one (minutely data). Multiplied frequencies divide: ``2W`` gives 26,
``15min`` 96 and 672. Business days count five to a week.
"""

from __future__ import annotations

import pandas as pd
from pandas.tseries import offsets

MAX_SEASON_LENGTH = 1000
_CYCLES_IN_DAYS = (1.0 / 24.0, 1.0, 7.0, 365.25)  # hour, day, week, year
_YEAR = 365.25
_CALENDAR_DAYS = {
    offsets.Week: 7.0,
    offsets.MonthBegin: _YEAR / 12, offsets.MonthEnd: _YEAR / 12,
    offsets.BusinessMonthBegin: _YEAR / 12, offsets.BusinessMonthEnd: _YEAR / 12,
    offsets.SemiMonthBegin: _YEAR / 24, offsets.SemiMonthEnd: _YEAR / 24,
    offsets.QuarterBegin: _YEAR / 4, offsets.QuarterEnd: _YEAR / 4,
    offsets.BQuarterBegin: _YEAR / 4, offsets.BQuarterEnd: _YEAR / 4,
    offsets.YearBegin: _YEAR, offsets.YearEnd: _YEAR, offsets.BYearBegin: _YEAR, offsets.BYearEnd: _YEAR,
    offsets.BusinessDay: 7.0 / 5.0,
}


def period_in_days(freq: str) -> float | None:
    """Length of one period of ``freq`` in (calendar) days; None when it has no fixed length."""
    offset = pd.tseries.frequencies.to_offset(freq)
    if isinstance(offset, offsets.Tick):
        return offset.nanos / 86_400e9
    for kind, days in _CALENDAR_DAYS.items():
        if isinstance(offset, kind):
            return days * abs(offset.n)
    return None


def season_lengths(freq: str) -> tuple[int, ...]:
    """The seasonal cycles of ``freq`` in periods, shortest first; ``(1,)`` when it has none."""
    days = period_in_days(freq)
    if not days:
        return (1,)
    found = []
    for cycle in _CYCLES_IN_DAYS:
        count = cycle / days
        whole = round(count)
        if 2 <= whole <= MAX_SEASON_LENGTH and abs(count - whole) <= 0.02 * count:
            found.append(int(whole))
    hour, day = round(_CYCLES_IN_DAYS[0] / days), round(1.0 / days)
    if day in found and hour in found:
        found.remove(hour)
    return tuple(sorted(set(found))) or (1,)
