"""Store labels with hysteresis (SCORING.md 8, readings 12.16 and 12.17)."""

from __future__ import annotations

import datetime as dt
import math

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring.catalog import LABEL_BY_ID
from scoring.contract import PREVIOUS_LABELS_SCHEMA
from scoring.labels import display_text, held_labels
from tests.builders import PAID, RUN_DATE, day_inputs, default_rules, score, ts
from tests.hypothesis_budget import examples

from .support import CUTOFF, HOUR, local, many, no_shrinkage, rules_with

# ---------------------------------------------------------------- enter / exit / min_n


def held(label: str, value, n: int, held_since: dt.date | None) -> list[dict]:
    """held_labels for one shop and one label; `held_since` = held on D-1 since that date."""
    candidates = pl.LazyFrame(
        {"shop_id": [1], "label": [label], "value": [value], "n": [n]},
        schema={"shop_id": pl.Int64, "label": pl.String, "value": pl.Float64, "n": pl.Int64},
    )
    previous = pl.LazyFrame(
        [] if held_since is None else [{"shop_id": 1, "label": label, "since": held_since}],
        schema=PREVIOUS_LABELS_SCHEMA,
    )
    return held_labels(candidates, previous, default_rules(), RUN_DATE).collect().to_dicts()


EARLIER = dt.date(2026, 3, 1)

HYSTERESIS = [
    # lower is better: fast_shipping enter <= 24, exit > 30, min_n 30
    ("fast_shipping", 24.0, 30, None, True),
    ("fast_shipping", 24.000001, 30, None, False),
    ("fast_shipping", 30.0, 30, EARLIER, True),
    ("fast_shipping", 30.000001, 30, EARLIER, False),
    ("fast_shipping", 10.0, 29, None, False),
    ("fast_shipping", 10.0, 29, EARLIER, False),  # min_n applies to keeping too (12.16)
    ("fast_shipping", None, 30, EARLIER, False),  # unknown is not good
    # fast_cs_reply enter <= 30, exit > 45, min_n 20
    ("fast_cs_reply", 30.0, 20, None, True),
    ("fast_cs_reply", 45.0, 20, EARLIER, True),
    ("fast_cs_reply", 45.5, 20, EARLIER, False),
    # higher is better: high_cs_satisfaction enter >= 0.95, exit < 0.93, min_n 20
    ("high_cs_satisfaction", 0.95, 20, None, True),
    ("high_cs_satisfaction", 0.9499, 20, None, False),
    ("high_cs_satisfaction", 0.94, 20, EARLIER, True),
    ("high_cs_satisfaction", 0.93, 20, EARLIER, True),
    ("high_cs_satisfaction", 0.9299, 20, EARLIER, False),
    ("high_cs_satisfaction", 1.0, 19, EARLIER, False),
    # damage_free_return enter >= 0.95, exit < 0.9, min_n 3
    ("damage_free_return", 1.0, 3, None, True),
    ("damage_free_return", 1.0, 2, None, False),
    ("damage_free_return", 0.9, 3, EARLIER, True),
    ("damage_free_return", 0.8999, 3, EARLIER, False),
    # door_delivery enter >= 0.9, exit < 0.85, min_n 30; return_insurance >= 0.8 / < 0.75
    ("door_delivery", 0.9, 30, None, True),
    ("door_delivery", 0.85, 30, EARLIER, True),
    ("door_delivery", 0.8499, 30, EARLIER, False),
    ("return_insurance", 0.8, 30, None, True),
    ("return_insurance", 0.79, 30, None, False),
    ("return_insurance", 0.75, 30, EARLIER, True),
    # top_experience enter >= 4.8, exit < 4.75, no min_n
    ("top_experience", 4.8, 0, None, True),
    ("top_experience", 4.79, 0, None, False),
    ("top_experience", 4.75, 0, EARLIER, True),
    ("top_experience", 4.7499, 0, EARLIER, False),
    ("top_experience", None, 30, EARLIER, False),  # unscored
]


@pytest.mark.parametrize(("label", "value", "n", "held_since", "expected"), HYSTERESIS)
def test_enter_exit_and_min_n(label, value, n, held_since, expected):
    rows = held(label, value, n, held_since)
    assert bool(rows) is expected
    if rows:
        # since: carried while the run is unbroken, else the run date
        assert rows[0]["since"] == (held_since or RUN_DATE)
        assert rows[0]["value"] == value


# ---------------------------------------------------------------- display texts


@pytest.mark.parametrize(
    ("label", "value", "text"),
    [
        ("fast_shipping", 24.0, "平均发货 24 小时"),
        ("fast_shipping", 22.5, "平均发货 22 小时"),  # format(22.5, '.0f'): half to even
        ("fast_shipping", 23.5, "平均发货 24 小时"),
        ("fast_shipping", 29.51, "平均发货 30 小时"),
        ("fast_cs_reply", 12.5, "客服平均 12 秒回复"),
        ("fast_cs_reply", 29.5, "客服平均 30 秒回复"),
        ("high_cs_satisfaction", 0.95, "客服满意度 95%"),
        ("high_cs_satisfaction", 28 / 30, "客服满意度 93%"),
        ("high_cs_satisfaction", 0.945, "客服满意度 94%"),  # 94.5 -> 94
        ("high_cs_satisfaction", 0.955, "客服满意度 96%"),  # 95.5 -> 96
        ("high_cs_satisfaction", 0.999, "客服满意度 100%"),
        ("high_cs_satisfaction", 1.0, "客服满意度 100%"),
        ("damage_free_return", 1.0, "破损包退"),
        ("door_delivery", 0.9, "送货上门"),
        ("return_insurance", 0.8, "退货运费险"),
        ("top_experience", 4.8, "体验分 4.8"),
        ("top_experience", 4.795, "体验分 4.7"),  # score_display: rounded down
        ("top_experience", 4.799999999999999, "体验分 4.7"),
        ("top_experience", 5.0, "体验分 5.0"),
    ],
)
def test_display_text_is_python_str_format(label, value, text):
    frame = pl.DataFrame({"label": [label], "value": [value]})
    assert frame.select(display_text()).item() == text
    # the same as str.format on the template (12.16)
    fields = {"score_display": int(value * 10) / 10, "h": value, "s": value, "p": value}
    assert LABEL_BY_ID[label].display.format(**fields) == text


@settings(max_examples=examples(300), deadline=None)
@given(
    st.sampled_from(["fast_shipping", "fast_cs_reply", "high_cs_satisfaction", "top_experience"]),
    st.floats(min_value=0.0, max_value=500.0, allow_nan=False),
)
def test_display_text_matches_str_format_for_any_value(label, value):
    if label == "high_cs_satisfaction":
        value = value / 500.0  # a share
    if label == "top_experience":
        value = 3.0 + value / 250.0  # a score in [3, 5]
    expected = LABEL_BY_ID[label].display.format(
        h=value, s=value, p=value, score_display=math.floor(value * 10) / 10
    )
    frame = pl.DataFrame({"label": [label], "value": [value]})
    assert frame.select(display_text()).item() == expected


def label_rows(tables) -> dict[str, dict]:
    return {row["label"]: row for row in tables["shop_labels"].to_dicts()}


def test_every_label_of_one_shop_end_to_end():
    # 30 orders paid 03-01 10:00 local, 24 insured; 15 picked up after 21 h and 15 after 24 h
    # (mean 22.5 h); all delivered after 30 h (03-02 16:00 local: next day), 27 at the door.
    orders = [{"order_id": i, "return_insurance": i <= 24} for i in range(1, 31)]
    events = []
    for i in range(1, 31):
        events += [
            {"order_id": i, "event_type": "picked_up",
             "event_at": PAID + (21 if i <= 15 else 24) * HOUR},
            {"order_id": i, "event_type": "delivered", "event_at": PAID + 30 * HOUR,
             "door_delivery": i <= 27},
        ]  # fmt: skip
    # 20 answered sessions in service hours: 10 after 12 s and 10 after 13 s (mean 12.5 s),
    # 19 of them rated 5, one 3. Not counted in the mean: one unanswered, one at local 03:00.
    at = local(2026, 3, 10, 10)
    sessions = [
        {"started_at": at, "first_response_seconds": 12 if i < 10 else 13,
         "satisfaction": 3 if i == 0 else 5}
        for i in range(20)
    ] + [
        {"started_at": at, "first_response_seconds": None},
        {"started_at": local(2026, 3, 10, 3), "first_response_seconds": 500},
    ]  # fmt: skip
    # 3 damaged refunds of R agreed, 1 undecided: 3/3 agreed
    decided = {"seller_decision": "agreed", "decided_at": ts(2026, 3, 5, 1)}
    refunds = [{"order_id": i, "reason": "damaged", **decided} for i in (1, 2, 3)]
    refunds.append({"order_id": 4, "reason": "damaged"})

    tables = score(day_inputs(orders=orders, logistics=events, cs_sessions=sessions,
                              refunds=refunds))  # fmt: skip
    labels = label_rows(tables)
    # the score (no label of its own here): product 5, logistics ~4.96, service ~4.91, plus
    # 0.1 bonus -> above 5 -> capped at 5.0
    assert tables["shop_scores"]["score"].item() == 5.0
    assert {k: (r["value"], r["display_text"]) for k, r in labels.items()} == {
        "fast_shipping": (pytest.approx(22.5, abs=1e-9), "平均发货 22 小时"),
        "damage_free_return": (1.0, "破损包退"),
        "fast_cs_reply": (pytest.approx(12.5, abs=1e-9), "客服平均 12 秒回复"),
        "high_cs_satisfaction": (pytest.approx(0.95, abs=1e-12), "客服满意度 95%"),
        "door_delivery": (pytest.approx(0.9, abs=1e-12), "送货上门"),
        "return_insurance": (pytest.approx(0.8, abs=1e-12), "退货运费险"),
        "top_experience": (5.0, "体验分 5.0"),
    }
    assert {r["since"] for r in labels.values()} == {RUN_DATE}


def test_top_experience_shows_the_display_score():
    # the 4.8 shop of test_shop_score (k = 0): 500 orders paid recently, 5 rated 1 (0.01),
    # one escalated session (0.002): score 4.8 -> "体验分 4.8"
    orders = many(5, 1, review_rating=1, paid_at=CUTOFF - HOUR) + many(
        495, 6, review_rating=5, paid_at=CUTOFF - HOUR
    )
    sessions = [{"started_at": local(2026, 3, 10, 3), "escalated_to_platform": True}]
    rules = rules_with(no_shrinkage("negative_review_rate", "platform_help_rate"))
    labels = label_rows(score(day_inputs(orders=orders, cs_sessions=sessions), rules))
    assert labels["top_experience"]["display_text"] == "体验分 4.8"


def test_a_kept_top_experience_shows_the_score_rounded_down():
    # score 4.795 (see test_shop_score): below enter 4.8, kept since held on D-1 and >= 4.75
    orders = many(6, 1, review_rating=1, paid_at=CUTOFF - HOUR) + many(
        244, 7, review_rating=5, paid_at=CUTOFF - HOUR
    )
    since = dt.date(2026, 3, 10)
    previous = pl.DataFrame(
        [{"shop_id": 1, "label": "top_experience", "since": since}], schema=PREVIOUS_LABELS_SCHEMA
    )
    labels = label_rows(score(day_inputs(orders=orders, previous_labels=previous)))
    assert labels["top_experience"]["display_text"] == "体验分 4.7"
    assert labels["top_experience"]["since"] == since
    # without D-1 it is not gained
    assert "top_experience" not in label_rows(score(day_inputs(orders=orders)))


# ---------------------------------------------------------------- several days in a row


def satisfaction_day(day: dt.date, good: int, bad: int, unrated: int = 0) -> list[dict]:
    """Sessions started at 10:00 local on `day`, rated 5 (good) / 2 (bad) / unrated."""
    at = local(day.year, day.month, day.day, 10)
    ratings = [5] * good + [2] * bad + [None] * unrated
    return [{"started_at": at, "satisfaction": r} for r in ratings]


def run_days(days: list[tuple[dt.date, list[dict]]]) -> list[dict[str, dict]]:
    """Score each day with the previous day's published shop_labels as D-1."""
    previous, held_each_day = None, []
    for day, sessions in days:
        tables = score(day_inputs(cs_sessions=sessions, previous_labels=previous), run_date=day)
        previous = tables["shop_labels"]
        held_each_day.append(label_rows(tables))
    return held_each_day


def test_hysteresis_over_several_days():
    days = [dt.date(2026, 3, 16) + dt.timedelta(days=i) for i in range(5)]
    # each day's current state holds only that day's sessions
    history = run_days(
        [
            (days[0], satisfaction_day(days[0], 19, 1)),  # 19/20 = 0.95: gained
            (days[1], satisfaction_day(days[1], 28, 2)),  # 28/30 = 0.933 >= 0.93: kept
            (days[2], satisfaction_day(days[2], 23, 2)),  # 23/25 = 0.92 < 0.93: lost
            (days[3], satisfaction_day(days[3], 47, 3)),  # 47/50 = 0.94: not held, < 0.95
            (days[4], satisfaction_day(days[4], 20, 0)),  # 20/20 = 1.0: gained again
        ]
    )
    sat = [h.get("high_cs_satisfaction") for h in history]
    assert (sat[0]["since"], sat[0]["display_text"]) == (days[0], "客服满意度 95%")
    assert (sat[1]["since"], sat[1]["display_text"]) == (days[0], "客服满意度 93%")
    assert sat[2] is None
    assert sat[3] is None
    assert (sat[4]["since"], sat[4]["display_text"]) == (days[4], "客服满意度 100%")


def test_since_is_carried_over_an_unbroken_run():
    days = [dt.date(2026, 3, 17) + dt.timedelta(days=i) for i in range(4)]
    history = run_days(
        [
            (days[0], satisfaction_day(days[0], 20, 0)),  # 1.0: gained
            (days[1], satisfaction_day(days[1], 19, 1)),  # 0.95: kept
            (days[2], satisfaction_day(days[2], 42, 3)),  # 42/45 = 0.9333: kept
            (days[3], satisfaction_day(days[3], 28, 2)),  # 28/30 = 0.9333: kept
        ]
    )
    assert [h["high_cs_satisfaction"]["since"] for h in history] == [days[0]] * 4


def test_min_n_drops_a_held_label_and_since_restarts():
    days = [dt.date(2026, 3, 17) + dt.timedelta(days=i) for i in range(4)]
    history = run_days(
        [
            (days[0], satisfaction_day(days[0], 20, 0)),  # 20 rated, 1.0: gained
            (days[1], satisfaction_day(days[1], 19, 0)),  # 19 rated < min_n 20: dropped
            (days[2], satisfaction_day(days[2], 20, 0)),  # gained again
            (days[3], satisfaction_day(days[3], 0, 0, unrated=20)),  # unknown: dropped
        ]
    )
    sat = [h.get("high_cs_satisfaction") for h in history]
    assert sat[0]["since"] == days[0]
    assert sat[1] is None
    assert sat[2]["since"] == days[2]
    assert sat[3] is None
