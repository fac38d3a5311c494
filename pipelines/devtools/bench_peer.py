"""The benchmark's peer: one date scored by plain DuckDB SQL straight from the raw logs.

Issue 19 measures expscore against "a plain DuckDB SQL recompute of one date" of the spec's
definitions: no window state, nothing kept from an earlier night, none of expscore's code. This
module is that recompute, written from SCORING.md (v1.1) alone. It reads the raw Parquet
partitions of the date's window, the optional `appeals` log too (13.1), drops the rows the spec
rejects (2.5, 13.1), takes the current version of every order and refund and one copy of every
event, session and appeal, and computes the window populations (3) without the subjects of an
upheld appeal (13.2), the exemptions of the rules (13.3: a later pickup deadline, rows removed
from the indicators they name), the twelve indicators with the rows exemptions removed
(`excluded`, 13.4) and the two bonus shares (4), priors, shrinkage, knots with the per-category
overrides, weight spreading and dimension scores (5), the shop score, band, display score, peer
percentile, points lost (6) and the subjects removed by upheld appeals (`appeals_upheld`, 13.4),
PXI with the late shipments of v1.1 (7) and the traffic figures of 9 that need no history. The
harness (`pipelines/devtools/bench/`) runs it in a child process like every other scenario and
compares its tables with what expscore published for the same date.

Rules are data: the SQL is built from the rules TOML's values (knots become CASE expressions,
weights and `k` literals, exemptions predicates on the local dates and the region), read here
with `tomllib`, not through `scoring.rules`.

Not computed, because the spec defines them through the day before (D-1), which a recompute of
one date from raw logs does not have:
- store labels (8), those whose value exemptions reduce (13.3) among them: hysteresis against
  the labels held on D-1, and `since`;
- the shop traffic `weight` (9): `target_weight` clamped against D-1's weight (the
  `target_weight`, `refund_only_tier` and `campaign_eligible` are computed).
Not computed because they are not tables of the date: the quarantine (rejected rows are
dropped, not listed) and the manifest (nor its counts of the rows each exemption matched and of
the appeals read). A rules file is refused (`PeerRulesError`) only when an exemption carries a
key SCORING.md 13.3 does not define, or names an indicator it may not exclude.

Readings where the spec leaves a choice follow README's "How the spec is read" (points lost with
the spread dimension weight, duplicates broken on the remaining columns, quality refunds wherever
requested, priors over exact integer numerators, the score clamped into [3.0, 5.0]), and for
v1.1: copies of an appeal keep the earliest `dt`, then the same tie rule; an order's pickup
deadline is moved by every matching exemption's `ship_by` before the `excluded` rows of
`pickup_on_time_rate` are counted; exemptions change no PXI figure but the late shipment of an
order excluded from `pickup_on_time_rate`; a `ship_by` without an offset is a local time in
the rules' `timezone` (the earlier instant when the clocks repeat it).

Run as `python -m pipelines.devtools.bench_peer SPEC.json`: the spec names the date, the rules
file, the
raw files per log and partition, and the output folder; the tables are written there as Parquet
and one JSON line reports the seconds of each step. Only the standard library and DuckDB are
imported, so the child's start-up is the interpreter's and DuckDB's.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import sys
import time
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb

HOUR_US = 3_600_000_000
STALL_US = 72 * HOUR_US  # a gap of more than 72 h is a stall (4; exactly 72 h is not, 12.6)
PICKUP_GRACE = "INTERVAL 48 HOUR"  # deadline(o) = later of paid_at + 48 h and promised_ship_at

# The twelve indicators of section 4 in the spec's order, with their dimension and whether they
# are `hours` indicators (their numerator sums microseconds, divided by 3.6e9 once, 12.7).
INDICATORS: tuple[tuple[str, str, bool], ...] = (
    ("quality_refund_rate", "product", False),
    ("negative_review_rate", "product", False),
    ("pickup_on_time_rate", "logistics", False),
    ("delivery_promise_rate", "logistics", False),
    ("track_anomaly_rate", "logistics", False),
    ("delivery_hours", "logistics", True),
    ("door_delivery_rate", "logistics", False),
    ("cs_response_rate", "service", False),
    ("cs_satisfaction_rate", "service", False),
    ("refund_refusal_rate", "service", False),
    ("platform_help_rate", "service", False),
    ("refund_handling_hours", "service", True),
)
# Every indicator but `platform_help_rate` (whose numerator mixes refunds and sessions over
# |V|, and which no exemption may name, 13.3) counts the rows of one population: orders of V
# (`order_facts`), refunds of R (`refund_facts`), sessions of C (`session_facts`). Per indicator:
# that population, the predicate of a row in its denominator, and its numerator's (for hours
# indicators: the microseconds a row adds). An exemption naming the indicator removes its
# matching rows from both (13.3); those it removes from the denominator are `excluded` (13.4).
MEASURES: dict[str, tuple[str, str, str]] = {
    "quality_refund_rate": ("order", "delivered_at IS NOT NULL", "quality_refund"),
    "negative_review_rate": ("order", "review_rating IS NOT NULL", "review_rating <= 2"),
    "pickup_on_time_rate": ("order", "pickup_due", "on_time"),
    "delivery_promise_rate": ("order", "promise_due", "kept"),
    "track_anomaly_rate": ("order", "pickup_at IS NOT NULL", "anomaly"),
    "delivery_hours": (
        "order",
        "delivered_at IS NOT NULL",
        "epoch_us(delivered_at) - epoch_us(paid_at)",
    ),
    "door_delivery_rate": ("order", "delivered_at IS NOT NULL", "door"),
    "cs_response_rate": ("session", "service_hour", "first_response_seconds <= 180"),
    "cs_satisfaction_rate": ("session", "satisfaction IS NOT NULL", "satisfaction >= 4"),
    "refund_refusal_rate": (
        "refund",
        "seller_decision IS NOT NULL",
        "seller_decision = 'refused'",
    ),
    "refund_handling_hours": (
        "refund",
        "seller_decision IS NOT NULL",
        "epoch_us(decided_at) - epoch_us(requested_at)",
    ),
}
# The time whose local date an exemption's [paid_from, paid_to] matches, per population (13.3).
MATCHED_TIME = {"order": "paid_at", "refund": "requested_at", "session": "started_at"}
EXEMPTION_KEYS = frozenset({"name", "paid_from", "paid_to", "regions", "ship_by", "exclude_from"})
DIMENSIONS = ("product", "logistics", "service")

# The raw columns (2.1-2.4) with the type each is read as. Every integer is read as BIGINT so an
# out-of-range rating in a wide column reaches the rating check instead of failing a cast;
# timestamps become UTC instants (naive ones are UTC: the session's time zone is UTC).
COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "orders": (
        ("order_id", "BIGINT"),
        ("shop_id", "BIGINT"),
        ("item_id", "BIGINT"),
        ("category_id", "BIGINT"),
        ("buyer_id", "BIGINT"),
        ("paid_at", "TIMESTAMPTZ"),
        ("amount_cents", "BIGINT"),
        ("promised_ship_at", "TIMESTAMPTZ"),
        ("promised_delivery_at", "TIMESTAMPTZ"),
        ("return_insurance", "BOOLEAN"),
        ("cancelled_at", "TIMESTAMPTZ"),
        ("review_rating", "BIGINT"),
        ("is_abnormal", "BOOLEAN"),
        ("updated_at", "TIMESTAMPTZ"),
        ("ship_to_region", "VARCHAR"),
    ),
    "refunds": (
        ("refund_id", "BIGINT"),
        ("order_id", "BIGINT"),
        ("shop_id", "BIGINT"),
        ("item_id", "BIGINT"),
        ("requested_at", "TIMESTAMPTZ"),
        ("refund_type", "VARCHAR"),
        ("reason", "VARCHAR"),
        ("seller_decision", "VARCHAR"),
        ("decided_at", "TIMESTAMPTZ"),
        ("platform_help", "BOOLEAN"),
        ("escalated_at", "TIMESTAMPTZ"),
        ("ruling", "VARCHAR"),
        ("negotiated_retained", "BOOLEAN"),
        ("completed_at", "TIMESTAMPTZ"),
        ("amount_cents", "BIGINT"),
        ("is_abnormal", "BOOLEAN"),
        ("updated_at", "TIMESTAMPTZ"),
    ),
    "logistics": (
        ("event_id", "BIGINT"),
        ("order_id", "BIGINT"),
        ("shop_id", "BIGINT"),
        ("event_type", "VARCHAR"),
        ("event_at", "TIMESTAMPTZ"),
        ("door_delivery", "BOOLEAN"),
    ),
    "cs_sessions": (
        ("session_id", "BIGINT"),
        ("shop_id", "BIGINT"),
        ("buyer_id", "BIGINT"),
        ("order_id", "BIGINT"),
        ("started_at", "TIMESTAMPTZ"),
        ("first_response_seconds", "BIGINT"),
        ("satisfaction", "BIGINT"),
        ("escalated_to_platform", "BOOLEAN"),
        ("closed_at", "TIMESTAMPTZ"),
    ),
    "appeals": (  # optional log (13.1): a missing folder or partition holds no appeals
        ("appeal_id", "BIGINT"),
        ("shop_id", "BIGINT"),
        ("subject", "VARCHAR"),
        ("subject_id", "BIGINT"),
        ("outcome", "VARCHAR"),
        ("decided_at", "TIMESTAMPTZ"),
    ),
}
NULLABLE = {
    "orders": {
        "promised_ship_at",
        "promised_delivery_at",
        "cancelled_at",
        "review_rating",
        "ship_to_region",
    },
    "refunds": {"seller_decision", "decided_at", "escalated_at", "ruling", "completed_at"},
    "logistics": {"door_delivery"},
    "cs_sessions": {"order_id", "first_response_seconds", "satisfaction"},
    "appeals": set(),
}
# Columns a file may leave out: they read as null (13.1).
OPTIONAL = {"orders": ("ship_to_region",)}
ENUMS = {
    "refund_type": ("refund_only", "return_refund"),
    "reason": (
        "quality",
        "not_as_described",
        "damaged",
        "wrong_item",
        "late_delivery",
        "changed_mind",
        "other",
    ),
    "seller_decision": ("agreed", "refused", "negotiated"),
    "ruling": ("merchant_responsible", "buyer_responsible", "no_fault"),
    "event_type": (
        "picked_up",
        "in_transit",
        "out_for_delivery",
        "delivered",
        "exception",
        "returned",
    ),
    "subject": ("order", "refund", "session"),
    "outcome": ("upheld", "rejected"),
}
VERSION_COLUMN = {
    "orders": "updated_at",
    "refunds": "updated_at",
    "logistics": "event_at",
    "cs_sessions": "closed_at",
    "appeals": "decided_at",
}

# What the peer computes and what it leaves out, for the harness's JSON.
COMPUTES = (
    "shop_scores (every column, appeals_upheld too)",
    "shop_indicators (every column, excluded too)",
    "item_scores (every column)",
    "shop_traffic_weights: target_weight, refund_only_tier, campaign_eligible",
    "item_traffic_weights (every column)",
)
SKIPS = (
    "shop_labels: hysteresis and `since` need the labels held on D-1 (8)",
    "shop_traffic_weights.weight: target_weight clamped against D-1's weight (9)",
    "quarantine: rejected rows are dropped, not listed",
    "manifest: the rows each exemption matched, the appeals read (13.4)",
)
STEPS = ("read", "facts", "compute", "write")
TABLES = (
    "shop_scores",
    "shop_indicators",
    "item_scores",
    "shop_traffic_weights",
    "item_traffic_weights",
)


class PeerRulesError(ValueError):
    """The rules file asks for something the peer does not compute."""


# --------------------------------------------------------------------------------------------
# rules: the shipped TOML or another, as plain values


def read_rules(path: Path | None) -> dict[str, Any]:
    """The rules TOML as a dict (the shipped rules when `path` is None).

    Not validated beyond what the SQL needs: the harness runs expscore on the same file, which
    validates it strictly (scoring/rules.py). Refused (`PeerRulesError`): an exemption with a
    key 13.3 does not define, or naming an indicator the peer does not exclude (13.3 allows
    every one but `platform_help_rate`): the peer would otherwise compute something else.
    """
    if path is None:
        text = resources.files("pipelines.config").joinpath("rules.default.toml").read_text("utf-8")
    else:
        text = Path(path).read_text("utf-8")
    rules = tomllib.loads(text)
    for position, exemption in enumerate(rules.get("exemptions", [])):
        unknown = sorted(set(exemption) - EXEMPTION_KEYS)
        if unknown:
            raise PeerRulesError(
                f"exemptions[{position}] has keys the peer does not apply: {', '.join(unknown)}"
            )
        named = sorted(set(exemption.get("exclude_from", [])) - set(MEASURES))
        if named:
            raise PeerRulesError(
                f"exemptions[{position}] excludes what the peer cannot: {', '.join(named)}"
            )
    return rules


@dataclass(frozen=True)
class Exemption:
    """One `[[exemptions]]` entry (13.3) as the SQL applies it."""

    name: str
    paid_from: dt.date
    paid_to: dt.date
    regions: tuple[str, ...]
    ship_by: dt.datetime | None  # a UTC instant
    exclude_from: frozenset[str]


def exemptions(rules: Mapping[str, Any]) -> list[Exemption]:
    """The rules' exemptions: dates as dates, `ship_by` as a UTC instant (an offset datetime;
    without an offset, a local time in the rules' `timezone`, the earlier instant when the
    clocks repeat it)."""
    tz = ZoneInfo(str(rules["timezone"]))
    listed = []
    for entry in rules.get("exemptions", []):
        ship_by = entry.get("ship_by")
        if ship_by is not None:
            if not isinstance(ship_by, dt.datetime):
                raise PeerRulesError(f"exemption {entry.get('name')!r}: ship_by is not a datetime")
            if ship_by.tzinfo is None:
                ship_by = ship_by.replace(tzinfo=tz)
            ship_by = ship_by.astimezone(dt.UTC)
        listed.append(
            Exemption(
                name=str(entry["name"]),
                paid_from=_date(entry["paid_from"]),
                paid_to=_date(entry["paid_to"]),
                regions=tuple(str(r) for r in entry.get("regions", [])),
                ship_by=ship_by,
                exclude_from=frozenset(entry.get("exclude_from", [])),
            )
        )
    return listed


def _date(value: object) -> dt.date:
    """A TOML date (a string in ISO form is taken too)."""
    if isinstance(value, dt.datetime):
        raise PeerRulesError(f"an exemption date is a datetime: {value}")
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))


def _overrides(rules: Mapping[str, Any]) -> dict[int, Mapping[str, Any]]:
    """Per-category overrides (12.10), keyed by category id."""
    return {int(key): value for key, value in rules.get("categories", {}).items()}


def indicator_rule(rules: Mapping[str, Any], category: int | None, indicator: str) -> dict:
    """An indicator's `weight`, `k` and `knots` for shops of main category `category`: the
    defaults with the keys the category's override names replaced (12.10)."""
    rule = dict(rules["indicators"][indicator])
    if category is not None:
        rule.update(_overrides(rules)[category].get("indicators", {}).get(indicator, {}))
    return rule


def dimension_weights(rules: Mapping[str, Any], category: int | None) -> dict[str, float]:
    weights = dict(rules["dimension_weights"])
    if category is not None:
        weights.update(_overrides(rules)[category].get("dimension_weights", {}))
    return weights


# --------------------------------------------------------------------------------------------
# SQL building blocks


def _lit(value: object) -> str:
    """A SQL literal: strings quoted, floats as DOUBLE (an `e0` exponent: a bare `0.005` is a
    DECIMAL literal in DuckDB), dates as DATE, aware datetimes as TIMESTAMPTZ."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        return text if "e" in text or "inf" in text or "nan" in text else f"{text}e0"
    if isinstance(value, dt.datetime):  # an aware instant
        return f"TIMESTAMPTZ '{value.astimezone(dt.UTC).isoformat(sep=' ')}'"
    if isinstance(value, dt.date):
        return f"DATE '{value.isoformat()}'"
    return "'" + str(value).replace("'", "''") + "'"


def interp_sql(x: str, knots: Sequence[Sequence[float]]) -> str:
    """`interp(x, knots)` (5.3) as a CASE: piecewise-linear, flat beyond the end knots, exactly
    a knot's score at a knot (12.12), null for a null `x`. Knot values are distinct (the rules
    parser refuses two knots at one value), so each segment between two knots has a slope."""
    points = sorted((float(v), float(s)) for v, s in knots)
    (v0, s0) = points[0]
    parts = [f"WHEN {x} IS NULL THEN NULL", f"WHEN {x} <= {_lit(v0)} THEN {_lit(s0)}"]
    for (va, sa), (vb, sb) in itertools.pairwise(points):
        slope = f"({_lit(sb)} - {_lit(sa)}) * ({x} - {_lit(va)}) / ({_lit(vb)} - {_lit(va)})"
        parts.append(f"WHEN {x} < {_lit(vb)} THEN {_lit(sa)} + {slope}")
        parts.append(f"WHEN {x} = {_lit(vb)} THEN {_lit(sb)}")
    return f"CASE {' '.join(parts)} ELSE {_lit(points[-1][1])} END"


def _rule_keys(rules: Mapping[str, Any]) -> list[int | None]:
    """The rule sets in play: the defaults (None) and each category with an override."""
    return [None, *sorted(_overrides(rules))]


def _by_rule_key(rules: Mapping[str, Any], expression: Any) -> str:
    """A CASE over the shop's rule key (`rule_key`: its main category when that has an override,
    else null) of `expression(category)`, a SQL text per rule set."""
    keys = _rule_keys(rules)
    if len(keys) == 1:
        return expression(None)
    whens = " ".join(f"WHEN rule_key = {key} THEN {expression(key)}" for key in keys[1:])
    return f"CASE {whens} ELSE {expression(None)} END"


def _good_rows(log: str) -> str:
    """The spec's rejection rules (2.5, 12.2) as the predicate of a row that is kept."""
    columns = dict(COLUMNS[log])
    conditions = [f'"{c}" IS NOT NULL' for c in columns if c not in NULLABLE[log]]
    for column, values in ENUMS.items():
        if column in columns:
            listing = ", ".join(_lit(v) for v in values)
            check = f'"{column}" IN ({listing})'
            conditions.append(
                f'("{column}" IS NULL OR {check})' if column in NULLABLE[log] else check
            )
    for rating in ("review_rating", "satisfaction"):
        if rating in columns:
            conditions.append(f'("{rating}" IS NULL OR "{rating}" BETWEEN 1 AND 5)')
    if "amount_cents" in columns:
        conditions.append("amount_cents >= 0")
    if "first_response_seconds" in columns:
        conditions.append("(first_response_seconds IS NULL OR first_response_seconds >= 0)")
    if log == "orders":
        conditions.append("updated_at >= paid_at")
    if log == "refunds":
        conditions.append("updated_at >= requested_at")
        conditions.append("((seller_decision IS NULL) = (decided_at IS NULL))")
    conditions.append(f'"{VERSION_COLUMN[log]}" < part_cutoff')
    return "\n      AND ".join(conditions)


def _raw_rows(log: str, partitions: Mapping[dt.date, Sequence[str]], tz: str) -> str:
    """Every row of the log's window partitions, cast to the spec's types, with its partition
    `dt` and that partition's cutoff (00:00 of dt+1 in tz). One scan per partition, so `dt` is
    the folder's and files of one partition may differ in column order, width and extras. An
    optional column (`OPTIONAL`) missing from a file reads as null: `union_by_name` fills it
    where another file of the partition has it, the empty `UNION ALL BY NAME` where none does."""
    casts = ", ".join(f'CAST("{name}" AS {kind}) AS "{name}"' for name, kind in COLUMNS[log])
    kinds = dict(COLUMNS[log])
    optional = ", ".join(f'CAST(NULL AS {kinds[c]}) AS "{c}"' for c in OPTIONAL.get(log, ()))
    selects = []
    for day, paths in sorted(partitions.items()):
        if not paths:
            continue
        listing = ", ".join(_lit(str(p)) for p in paths)
        cutoff = f"timezone({_lit(tz)}, CAST({_lit(day + dt.timedelta(days=1))} AS TIMESTAMP))"
        source = f"read_parquet([{listing}], union_by_name = true)"
        if optional:
            source = f"(SELECT * FROM {source} UNION ALL BY NAME SELECT {optional} WHERE false)"
        selects.append(f"SELECT {casts}, {_lit(day)} AS dt, {cutoff} AS part_cutoff FROM {source}")
    if not selects:  # no partition of this log in the window: no rows, the same columns
        nulls = ", ".join(f'CAST(NULL AS {kind}) AS "{name}"' for name, kind in COLUMNS[log])
        return (
            f"SELECT {nulls}, CAST(NULL AS DATE) AS dt, "
            "CAST(NULL AS TIMESTAMPTZ) AS part_cutoff WHERE false"
        )
    return "\nUNION ALL\n".join(selects)


def _current(log: str, partitions: Mapping[dt.date, Sequence[str]], tz: str, key: str) -> str:
    """The log's kept rows, one per key.

    Change logs (orders, refunds): the version with the greatest (updated_at, dt) (2.5);
    append-only logs (events, sessions, appeals): one copy per key, the earliest dt. Remaining
    ties are broken on the other columns, ascending, so that the choice never depends on read
    order.
    """
    names = [name for name, _ in COLUMNS[log]]
    if log in ("orders", "refunds"):
        first = ["updated_at DESC", "dt DESC"]
        rest = [f'"{n}" ASC NULLS FIRST' for n in names if n not in (key, "updated_at")]
    else:
        first = ["dt"]
        rest = [f'"{n}" ASC NULLS FIRST' for n in names if n != key]
    order = ", ".join(first + rest)
    return (
        f"SELECT * EXCLUDE (dt, part_cutoff) FROM (\n{_raw_rows(log, partitions, tz)}\n)\n"
        f"WHERE {_good_rows(log)}\n"
        f"QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY {order}) = 1"
    )


def _matches(exemption: Exemption, population: str, tz: str) -> str:
    """The predicate of a row of `population` (order, refund, session) that `exemption` matches
    (13.3): the local date of its time in [paid_from, paid_to]; a region list matches orders
    only, by `ship_to_region`, and a null region matches no list."""
    if exemption.regions and population != "order":
        return "false"
    local_date = f"CAST(timezone({_lit(tz)}, {MATCHED_TIME[population]}) AS DATE)"
    predicate = f"{local_date} BETWEEN {_lit(exemption.paid_from)} AND {_lit(exemption.paid_to)}"
    if exemption.regions:
        listing = ", ".join(_lit(region) for region in exemption.regions)
        predicate += f" AND coalesce(ship_to_region IN ({listing}), false)"
    return f"({predicate})"


def _excluded_columns(listed: Sequence[Exemption], population: str, tz: str) -> str:
    """`ex_<indicator>` for each indicator over `population`: the row matches an exemption that
    names the indicator (the union over several exemptions, 13.3)."""
    columns = []
    for indicator, (counted, _, _) in MEASURES.items():
        if counted == population:
            matching = [_matches(e, population, tz) for e in listed if indicator in e.exclude_from]
            columns.append(f"{' OR '.join(matching) or 'false'} AS ex_{indicator}")
    return ",\n       ".join(columns)


def _ship_by_terms(listed: Sequence[Exemption], tz: str) -> str:
    """Extra arguments of the deadline's `greatest`: each exemption's `ship_by` where the order
    matches it, else null (which `greatest` skips): the latest `ship_by` wins (13.3)."""
    return "".join(
        f", CASE WHEN {_matches(e, 'order', tz)} THEN {_lit(e.ship_by)} END"
        for e in listed
        if e.ship_by is not None
    )


def _population_sums(population: str) -> str:
    """Per shop, `n_`, `d_` and `x_<indicator>` of the indicators over `population`: the
    numerator and denominator without the rows an exemption removed, and those rows."""
    hours = {indicator for indicator, _, is_hours in INDICATORS if is_hours}
    sums = []
    for indicator, (counted, denominator, numerator) in MEASURES.items():
        if counted != population:
            continue
        kept = f"({denominator}) AND NOT ex_{indicator}"
        sums.append(
            f"coalesce(sum({numerator}) FILTER (WHERE {kept}), 0) AS n_{indicator}"
            if indicator in hours
            else f"count(*) FILTER (WHERE {kept} AND ({numerator})) AS n_{indicator}"
        )
        sums.append(f"count(*) FILTER (WHERE {kept}) AS d_{indicator}")
        sums.append(f"count(*) FILTER (WHERE ({denominator}) AND ex_{indicator}) AS x_{indicator}")
    return ",\n           ".join(sums)


def _sum_columns() -> str:
    """The indicator sums of `shop_sums`, 0 for a shop without rows of the population."""
    alias = {"order": "o", "refund": "r", "session": "c"}
    columns = []
    for indicator, (counted, _, _) in MEASURES.items():
        columns += [
            f"coalesce({alias[counted]}.{part}_{indicator}, 0) AS {part}_{indicator}"
            for part in ("n", "d", "x")
        ]
    columns += [  # help refunds and escalated sessions over |V|; no exemption may name it
        "coalesce(h.help_refunds, 0) + coalesce(c.escalated_sessions, 0) AS n_platform_help_rate",
        "coalesce(o.valid_orders, 0) AS d_platform_help_rate",
        "0 AS x_platform_help_rate",
    ]
    return ",\n       ".join(columns)


# --------------------------------------------------------------------------------------------
# the statements


def peer_statements(
    rules: Mapping[str, Any],
    files: Mapping[str, Mapping[dt.date, Sequence[str]]],
    day: dt.date,
    out: Path,
) -> list[tuple[str, str]]:
    """The recompute of `day` as (step, SQL) pairs, run in order on one connection.

    Steps (`STEPS`): `read` (validate, current state), `facts` (per order, refund and session of
    the window), `compute` (sums, indicators, scores, items, weights), `write` (the tables as
    Parquet under `out`).
    """
    tz = str(rules["timezone"])
    listed = exemptions(rules)
    window_days = int(rules["window_days"])
    first_day = day - dt.timedelta(days=window_days - 1)
    start = f"timezone({_lit(tz)}, CAST({_lit(first_day)} AS TIMESTAMP))"
    cutoff = f"timezone({_lit(tz)}, CAST({_lit(day + dt.timedelta(days=1))} AS TIMESTAMP))"
    in_window = f"BETWEEN {start} AND {cutoff} - INTERVAL 1 MICROSECOND"  # start <= t < cutoff
    local = f"timezone({_lit(tz)}, {{}})"  # a UTC instant as local time in tz

    def not_upheld(subject: str, key: str) -> str:  # 13.2: matched by the id alone
        return f"{key} NOT IN (SELECT subject_id FROM upheld WHERE subject = {_lit(subject)})"

    def upheld(subject: str, key: str) -> str:
        return f"{key} IN (SELECT subject_id FROM upheld WHERE subject = {_lit(subject)})"

    parts = {log: files.get(log, {}) for log in COLUMNS}
    steps: list[tuple[str, str]] = [
        ("read", f"CREATE TEMP TABLE {table} AS {_current(log, parts[log], tz, key)}")
        for table, log, key in (
            ("orders_cur", "orders", "order_id"),
            ("refunds_cur", "refunds", "refund_id"),
            ("events", "logistics", "event_id"),
            ("sessions", "cs_sessions", "session_id"),
            ("appeals_cur", "appeals", "appeal_id"),
        )
    ]
    steps.append(
        (
            "read",
            "CREATE TEMP TABLE upheld AS  -- subjects with an upheld appeal in the window (13.2)\n"
            "SELECT DISTINCT subject, subject_id FROM appeals_cur WHERE outcome = 'upheld'",
        )
    )

    # ---- facts per order of V, refund of R, session of C (3, 4, 13)
    local_paid = local.format("paid_at")
    service_hour = f"hour({local.format('started_at')}) BETWEEN 8 AND 22"
    steps += [
        (
            "facts",
            f"""
CREATE TEMP TABLE v AS  -- V without the orders of upheld appeals (3, 13.2)
SELECT order_id, shop_id, item_id, category_id, paid_at, amount_cents, promised_ship_at,
       promised_delivery_at, return_insurance, cancelled_at, review_rating, ship_to_region
FROM orders_cur
WHERE paid_at {in_window} AND NOT is_abnormal AND {not_upheld("order", "order_id")}""",
        ),
        (
            "facts",
            f"""
CREATE TEMP TABLE tracking AS  -- per order with events; only V's are used (order_facts)
WITH orders AS (
    SELECT order_id,
           min(event_at) FILTER (WHERE event_type = 'picked_up') AS pickup_at,
           min(event_at) FILTER (WHERE event_type = 'delivered') AS delivered_at,
           -- the earliest delivered event, smallest event_id on a tie; null is not the door (12.5)
           arg_min(coalesce(door_delivery, false), (event_at, event_id))
               FILTER (WHERE event_type = 'delivered') AS door,
           bool_or(event_type = 'exception') AS exception,
           list(epoch_us(event_at)) AS times
    FROM events WHERE event_at < {cutoff} GROUP BY order_id
), trails AS (  -- E: the times from pickup to delivery (or to cutoff), every type (4, 12.6)
    SELECT * EXCLUDE (times),
           list_sort(list_filter(times, lambda t: t >= epoch_us(pickup_at)
               AND (delivered_at IS NULL OR t <= epoch_us(delivered_at)))) AS e
    FROM orders
)
SELECT order_id, pickup_at, delivered_at, door, exception,
       -- a gap of more than 72 h in E, or from E's last time to cutoff when not delivered
       coalesce(list_max(list_transform(range(1, len(e)), lambda i: e[i + 1] - e[i])) > {STALL_US}
                OR (delivered_at IS NULL AND epoch_us({cutoff}) - e[-1] > {STALL_US}),
                false) AS stall
FROM trails""",
        ),
        (
            "facts",
            f"""
CREATE TEMP TABLE refund_flags AS  -- current refunds of each order, not abnormal, not appealed
SELECT order_id,                   -- away (4, 7, reading 3, 13.2)
       bool_or(reason IN ('quality', 'not_as_described')) AS quality_refund,
       bool_or(reason IN ('quality', 'not_as_described', 'damaged')
               AND requested_at < {cutoff}) AS problem_refund
FROM refunds_cur WHERE NOT is_abnormal AND {not_upheld("refund", "refund_id")}
GROUP BY order_id""",
        ),
        (
            "facts",
            f"""
CREATE TEMP TABLE order_facts AS
WITH o AS (
    SELECT v.*, t.pickup_at, t.delivered_at,
           coalesce(t.door, false) AS door, coalesce(t.exception, false) AS exception,
           coalesce(t.stall, false) AS stall,
           coalesce(r.quality_refund, false) AS quality_refund,
           coalesce(r.problem_refund, false) AS problem_refund,
           -- the later of paid_at + 48 h, promised_ship_at and the matching exemptions' ship_by
           greatest(v.paid_at + {PICKUP_GRACE}, v.promised_ship_at{_ship_by_terms(listed, tz)})
               AS deadline,
           {_excluded_columns(listed, "order", tz)}
    FROM v LEFT JOIN tracking t ON v.order_id = t.order_id
           LEFT JOIN refund_flags r ON v.order_id = r.order_id
), due AS (
    SELECT *,
           pickup_at IS NOT NULL
             OR (deadline < {cutoff}
                 AND NOT (cancelled_at IS NOT NULL AND cancelled_at <= deadline)) AS pickup_due,
           promised_delivery_at IS NOT NULL
             AND (delivered_at IS NOT NULL
                  OR (promised_delivery_at < {cutoff}
                      AND NOT (cancelled_at IS NOT NULL AND pickup_at IS NULL))) AS promise_due
    FROM o
), outcomes AS (
    SELECT *,
           pickup_due AND coalesce(pickup_at <= deadline, false) AS on_time,
           promise_due AND coalesce(delivered_at <= promised_delivery_at, false) AS kept,
           pickup_at IS NOT NULL AND (exception OR stall) AS anomaly,
           -- delivered before 00:00 of the second day after the local paid date
           coalesce(delivered_at < timezone({_lit(tz)},
               CAST(CAST({local_paid} AS DATE) + 2 AS TIMESTAMP)), false) AS next_day
    FROM due
)
SELECT *,  -- 7 (c): due and not on time; not when excluded from pickup_on_time_rate (13.3)
       pickup_due AND NOT on_time AND NOT ex_pickup_on_time_rate AS late_shipment
FROM outcomes""",
        ),
        (
            "facts",
            f"""
CREATE TEMP TABLE refund_facts AS  -- R without the refunds of upheld appeals (3, 13.2)
SELECT shop_id, requested_at, seller_decision, decided_at,
       {_excluded_columns(listed, "refund", tz)}
FROM refunds_cur
WHERE requested_at {in_window} AND NOT is_abnormal AND {not_upheld("refund", "refund_id")}""",
        ),
        (
            "facts",
            f"""
CREATE TEMP TABLE session_facts AS  -- C without the sessions of upheld appeals (3, 13.2)
SELECT shop_id, started_at, first_response_seconds, satisfaction, escalated_to_platform,
       {service_hour} AS service_hour,
       {_excluded_columns(listed, "session", tz)}
FROM sessions
WHERE started_at {in_window} AND {not_upheld("session", "session_id")}""",
        ),
        (
            "facts",
            f"""
CREATE TEMP TABLE appealed AS  -- subjects upheld appeals took out of V, R or C, per own shop (13.4)
SELECT shop_id, count(*) AS appeals_upheld FROM (
    SELECT shop_id FROM orders_cur
    WHERE paid_at {in_window} AND NOT is_abnormal AND {upheld("order", "order_id")}
    UNION ALL
    SELECT shop_id FROM refunds_cur
    WHERE requested_at {in_window} AND NOT is_abnormal AND {upheld("refund", "refund_id")}
    UNION ALL
    SELECT shop_id FROM sessions
    WHERE started_at {in_window} AND {upheld("session", "session_id")}
) GROUP BY shop_id""",
        ),
    ]

    # ---- per-shop sums (3, 4): orders count for the order's shop, refunds and sessions for
    # their own (12.4)
    steps += [
        (
            "compute",
            f"""
CREATE TEMP TABLE shop_sums AS
WITH o AS (
    SELECT shop_id, count(*) AS valid_orders,
           count(*) FILTER (WHERE return_insurance) AS insured,
           count(*) FILTER (WHERE next_day) AS next_day,
           {_population_sums("order")}
    FROM order_facts GROUP BY shop_id
), categories AS (  -- main category: greatest amount in V, the smallest id on a tie (3)
    SELECT shop_id, arg_max(category_id, (amount, -category_id)) AS main_category_id
    FROM (SELECT shop_id, category_id, sum(amount_cents) AS amount
          FROM order_facts GROUP BY shop_id, category_id)
    GROUP BY shop_id
), r AS (
    SELECT shop_id,
           {_population_sums("refund")}
    FROM refund_facts GROUP BY shop_id
), help AS (  -- help refunds: current, not abnormal, not appealed away (4, 13.2)
    SELECT shop_id, count(*) AS help_refunds
    FROM refunds_cur
    WHERE NOT is_abnormal AND platform_help AND escalated_at {in_window}
      AND ruling IS DISTINCT FROM 'buyer_responsible' AND {not_upheld("refund", "refund_id")}
    GROUP BY shop_id
), c AS (
    SELECT shop_id, count(*) FILTER (WHERE escalated_to_platform) AS escalated_sessions,
           {_population_sums("session")}
    FROM session_facts GROUP BY shop_id
), shops AS (  -- a shop with an order in V, a refund in R or a session in C (10, 12.8)
    SELECT shop_id FROM o UNION SELECT shop_id FROM r UNION SELECT shop_id FROM c
)
SELECT s.shop_id, m.main_category_id,
       coalesce(o.valid_orders, 0) AS valid_orders,
       coalesce(o.insured, 0) AS insured, coalesce(o.next_day, 0) AS next_day,
       coalesce(a.appeals_upheld, 0) AS appeals_upheld,
       {_sum_columns()}
FROM shops s
LEFT JOIN o ON s.shop_id = o.shop_id
LEFT JOIN categories m ON s.shop_id = m.shop_id
LEFT JOIN r ON s.shop_id = r.shop_id
LEFT JOIN help h ON s.shop_id = h.shop_id
LEFT JOIN c ON s.shop_id = c.shop_id
LEFT JOIN appealed a ON s.shop_id = a.shop_id""",
        ),
        ("compute", _indicator_rows_sql(rules)),
        ("compute", _scored_indicators_sql(rules)),
        ("compute", _shop_scores_sql(rules)),
        ("compute", _item_scores_sql(rules)),
        *(("compute", sql) for sql in _weights_sql(rules)),
    ]
    steps += [
        ("write", f"COPY ({query}) TO {_lit(str(out / f'{table}.parquet'))} (FORMAT parquet)")
        for table, query in _outputs().items()
    ]
    return steps


def _indicator_rows_sql(rules: Mapping[str, Any]) -> str:
    """Shop x indicator with its exact numerator (a count, or microseconds) and denominator
    after exemptions, the rows they removed (`excluded`), and the shop's rule key (its main
    category when that category has overrides)."""
    overridden = sorted(_overrides(rules))
    rule_key = (
        f"CASE WHEN main_category_id IN ({', '.join(map(str, overridden))}) "
        "THEN main_category_id END"
        if overridden
        else "CAST(NULL AS BIGINT)"
    )
    selects = []
    for position, (indicator, dimension, hours) in enumerate(INDICATORS):
        numerator, denominator = f"n_{indicator}", f"d_{indicator}"
        value = f"{numerator} / {_lit(float(HOUR_US))}" if hours else f"CAST({numerator} AS DOUBLE)"
        selects.append(
            f"SELECT shop_id, main_category_id, {rule_key} AS rule_key, {position} AS position, "
            f"{_lit(indicator)} AS indicator, {_lit(dimension)} AS dimension, "
            f"CAST({numerator} AS HUGEINT) AS exact_numerator, {value} AS numerator, "
            f"CAST({denominator} AS BIGINT) AS denominator, "
            f"CAST(x_{indicator} AS BIGINT) AS excluded, {_lit(hours)} AS hours FROM shop_sums"
        )
    return "CREATE TEMP TABLE indicator_rows AS\n" + "\nUNION ALL\n".join(selects)


def _scored_indicators_sql(rules: Mapping[str, Any]) -> str:
    """Priors, shrinkage, knots, spread weights and points lost per shop and indicator (5, 6)."""

    def per_indicator(field: str) -> str:
        def expression(category: int | None) -> str:
            whens = " ".join(
                f"WHEN {_lit(i)} THEN {_lit(float(indicator_rule(rules, category, i)[field]))}"
                for i, *_ in INDICATORS
            )
            return f"CASE indicator {whens} END"

        return _by_rule_key(rules, expression)

    def score(category: int | None) -> str:
        whens = " ".join(
            f"WHEN {_lit(i)} THEN "
            + interp_sql("smoothed", indicator_rule(rules, category, i)["knots"])
            for i, *_ in INDICATORS
        )
        return f"CASE indicator {whens} END"

    def dimension_total(category: int | None) -> str:
        totals = {
            d: sum(
                float(indicator_rule(rules, category, i)["weight"])
                for i, dd, *_ in INDICATORS
                if dd == d
            )
            for d in DIMENSIONS
        }
        whens = " ".join(f"WHEN {_lit(d)} THEN {_lit(t)}" for d, t in totals.items())
        return f"CASE dimension {whens} END"

    def dimension_weight(category: int | None) -> str:
        weights = dimension_weights(rules, category)
        whens = " ".join(f"WHEN {_lit(d)} THEN {_lit(float(weights[d]))}" for d in DIMENSIONS)
        return f"CASE dimension {whens} END"

    def all_dimension_weights(category: int | None) -> str:
        return _lit(float(sum(float(w) for w in dimension_weights(rules, category).values())))

    return f"""
CREATE TEMP TABLE scored_indicators AS
WITH category_pool AS (  -- shops of each main category with a non-zero denominator (5.1, 12.9)
    SELECT indicator AS pool_indicator, main_category_id AS pool_category,
           sum(exact_numerator) AS category_n, sum(denominator) AS category_d
    FROM indicator_rows WHERE denominator > 0 AND main_category_id IS NOT NULL
    GROUP BY indicator, main_category_id
), pool AS (
    SELECT indicator AS pool_indicator, sum(exact_numerator) AS all_n, sum(denominator) AS all_d
    FROM indicator_rows WHERE denominator > 0 GROUP BY indicator
), pooled AS (
    SELECT r.*, coalesce(p.all_d, 0) > 0 AS assessed,
           CASE WHEN hours THEN {_lit(float(HOUR_US))} ELSE 1e0 END AS unit,
           CASE WHEN coalesce(c.category_d, 0) > 0 THEN c.category_n ELSE p.all_n END AS pool_n,
           CASE WHEN coalesce(c.category_d, 0) > 0 THEN c.category_d ELSE p.all_d END AS pool_d
    FROM indicator_rows r
    LEFT JOIN pool p ON r.indicator = p.pool_indicator
    LEFT JOIN category_pool c
        ON r.indicator = c.pool_indicator AND r.main_category_id = c.pool_category
), priors AS (  -- exact numerators pooled, divided once (README, reading 4)
    SELECT * EXCLUDE (pool_n, pool_d, unit),
           CASE WHEN assessed
                THEN CAST(pool_n AS DOUBLE) / (CAST(pool_d AS DOUBLE) * unit) END AS prior,
           {per_indicator("weight")} AS weight,
           {per_indicator("k")} AS k,
           {_by_rule_key(rules, dimension_total)} AS dimension_total,
           {_by_rule_key(rules, dimension_weight)} AS dimension_weight,
           {_by_rule_key(rules, all_dimension_weights)} AS all_dimension_weights
    FROM pooled
), smoothed AS (  -- shrinkage (5.2)
    SELECT *,
           CASE WHEN NOT assessed THEN NULL
                WHEN denominator = 0 THEN prior
                ELSE (numerator + k * prior) / (denominator + k) END AS smoothed,
           sum(CASE WHEN assessed THEN weight ELSE 0e0 END)
               OVER (PARTITION BY shop_id, dimension) AS assessed_total
    FROM priors
), spread AS (  -- knots (5.3) and weight spreading (5.4, 12.11)
    SELECT *,
           {_by_rule_key(rules, score)} AS indicator_score,
           CASE WHEN assessed THEN weight * dimension_total / assessed_total ELSE 0e0 END
               AS effective_weight,
           bool_or(assessed) OVER (PARTITION BY shop_id, dimension) AS dimension_assessed
    FROM smoothed
), dims AS (
    SELECT *,
           sum(CASE WHEN dimension_assessed AND position IN {_first_of_dimension()}
                    THEN dimension_weight ELSE 0e0 END)
               OVER (PARTITION BY shop_id) AS assessed_dimension_weights
    FROM spread
)
SELECT *,
       CASE WHEN dimension_assessed
            THEN dimension_weight * all_dimension_weights / assessed_dimension_weights
            ELSE 0e0 END AS effective_dimension_weight
FROM dims"""


def _first_of_dimension() -> str:
    """Positions of each dimension's first indicator: one row per shop and dimension."""
    first: dict[str, int] = {}
    for position, (_, dimension, *_) in enumerate(INDICATORS):
        first.setdefault(dimension, position)
    return "(" + ", ".join(str(p) for p in first.values()) + ")"


def _shop_scores_sql(rules: Mapping[str, Any]) -> str:
    """Dimension scores, bonus, score, band, display, percentile (5.4, 6, 12.13, 12.14).

    Both bonus items are in every rules file (the rules parser requires each, SCORING.md 6)."""
    insured = rules["bonus"]["return_insurance_share"]
    next_day = rules["bonus"]["next_day_delivery_share"]

    def bonus_term(count: str, item: Mapping[str, Any]) -> str:
        return (
            f"CASE WHEN valid_orders > 0 "
            f"AND {count} / valid_orders >= {_lit(float(item['threshold']))} "
            f"THEN {_lit(float(item['points']))} ELSE 0e0 END"
        )

    dimension_columns = ", ".join(
        f"max(dimension_score) FILTER (WHERE dimension = {_lit(d)}) AS {d}_score"
        for d in DIMENSIONS
    )
    weighted = " + ".join(
        "coalesce(max(effective_dimension_weight * dimension_score) "
        f"FILTER (WHERE dimension = {_lit(d)}), 0e0)"
        for d in DIMENSIONS
    )
    return f"""
CREATE TEMP TABLE shop_scores AS
WITH dims AS (
    SELECT shop_id, dimension, max(effective_dimension_weight) AS effective_dimension_weight,
           CASE WHEN bool_or(assessed)
                THEN sum(CASE WHEN assessed THEN effective_weight * indicator_score ELSE 0e0 END)
           END AS dimension_score
    FROM scored_indicators GROUP BY shop_id, dimension
), totals AS (
    SELECT shop_id, {dimension_columns}, {weighted} AS weighted FROM dims GROUP BY shop_id
), shops AS (
    SELECT s.shop_id, s.main_category_id, s.valid_orders,
           CASE WHEN s.valid_orders >= {int(rules["min_orders"])} THEN 'scored'
                ELSE 'insufficient_orders' END AS status,
           t.product_score, t.logistics_score, t.service_score,
           {bonus_term("s.insured", insured)} + {bonus_term("s.next_day", next_day)} AS bonus,
           t.weighted, s.appeals_upheld
    FROM shop_sums s JOIN totals t ON s.shop_id = t.shop_id
), scored AS (
    SELECT *,
           CASE WHEN status = 'scored' THEN least(5e0, greatest(3e0, weighted + bonus)) END AS score
    FROM shops
), ranked AS (  -- among scored shops of the main category: share of the others strictly lower
    SELECT shop_id,
           CASE WHEN count(*) OVER w > 1
                THEN (rank() OVER (w ORDER BY score) - 1) / (count(*) OVER w - 1) END
               AS peer_percentile
    FROM scored WHERE score IS NOT NULL
    WINDOW w AS (PARTITION BY main_category_id)
)
SELECT s.shop_id, s.main_category_id, s.valid_orders, s.status, s.score,
       floor(s.score * 10) / 10 AS score_display,
       CASE WHEN s.score IS NULL THEN 'unscored'
            WHEN s.score >= 4.8e0 THEN '4.8+'
            WHEN s.score >= 4.5e0 THEN '4.5-4.8'
            WHEN s.score >= 4.0e0 THEN '4.0-4.5'
            ELSE '<4.0' END AS band,
       s.product_score, s.logistics_score, s.service_score, s.bonus, r.peer_percentile,
       CAST(s.appeals_upheld AS BIGINT) AS appeals_upheld
FROM scored s LEFT JOIN ranked r ON s.shop_id = r.shop_id"""


def _item_scores_sql(rules: Mapping[str, Any]) -> str:
    """PXI per item over V (7, 12.15): problem orders with the late shipment of v1.1."""
    k_item = _lit(float(rules["k_item"]))
    return f"""
CREATE TEMP TABLE item_scores AS
WITH items AS (
    SELECT item_id, min(shop_id) AS shop_id, min(category_id) AS category_id,
           count(*) AS paid_orders,
           count(*) FILTER (WHERE problem_refund OR review_rating <= 2 OR late_shipment)
               AS problem_orders
    FROM order_facts GROUP BY item_id
), priors AS (
    SELECT category_id, sum(problem_orders) / sum(paid_orders) AS prior
    FROM items GROUP BY category_id
), smoothed AS (
    SELECT i.*,
           (i.problem_orders + {k_item} * p.prior) / (i.paid_orders + {k_item}) AS smoothed_rate,
           i.paid_orders >= {int(rules["min_item_orders"])} AS scored
    FROM items i JOIN priors p ON i.category_id = p.category_id
), pxi AS (
    SELECT *, CASE WHEN scored THEN {interp_sql("smoothed_rate", rules["pxi_knots"])} END AS pxi
    FROM smoothed
), ranked AS (
    SELECT item_id,
           CASE WHEN count(*) OVER w > 1
                THEN (rank() OVER (w ORDER BY pxi) - 1) / (count(*) OVER w - 1) END
               AS category_percentile
    FROM pxi WHERE pxi IS NOT NULL
    WINDOW w AS (PARTITION BY category_id)
)
SELECT p.item_id, p.shop_id, p.category_id, p.paid_orders, p.problem_orders, p.smoothed_rate,
       p.pxi, CASE WHEN p.scored THEN 'scored' ELSE 'insufficient_orders' END AS status,
       r.category_percentile
FROM pxi p LEFT JOIN ranked r ON p.item_id = r.item_id"""


def _weights_sql(rules: Mapping[str, Any]) -> tuple[str, str]:
    """What section 9 defines without D-1: target weights, tiers, campaign eligibility; items
    (which are not clamped) whole."""
    privileges = {key: _lit(float(value)) for key, value in rules["privileges"].items()}
    shops = f"""
CREATE TEMP TABLE shop_traffic_weights AS
SELECT shop_id,
       CASE WHEN score IS NULL THEN 1e0
            ELSE {interp_sql("score", rules["shop_weight_knots"])} END AS target_weight,
       CASE WHEN score >= {privileges["autonomous_min_score"]} THEN 'autonomous'
            WHEN score >= {privileges["negotiate_first_min_score"]} THEN 'negotiate_first'
            ELSE 'standard' END AS refund_only_tier,
       coalesce(score >= {privileges["campaign_min_score"]}, false) AS campaign_eligible
FROM shop_scores"""
    items = f"""
CREATE TEMP TABLE item_traffic_weights AS
SELECT item_id, shop_id,
       CASE WHEN pxi IS NULL THEN 1e0
            ELSE {interp_sql("pxi", rules["item_weight_knots"])} END AS weight,
       coalesce(pxi >= {privileges["campaign_min_pxi"]}, false) AS campaign_eligible
FROM item_scores"""
    return shops, items


def _outputs() -> dict[str, str]:
    """The tables written, with the published column names (SCORING.md 10)."""
    return {
        "shop_scores": "SELECT * FROM shop_scores",
        "shop_indicators": (
            "SELECT shop_id, indicator, dimension, numerator, denominator, excluded, "
            "CASE WHEN denominator > 0 THEN numerator / denominator END AS raw_value, prior, "
            "smoothed AS smoothed_value, indicator_score, effective_weight, "
            "CASE WHEN assessed THEN effective_dimension_weight * effective_weight "
            "* (5e0 - indicator_score) END AS points_lost, assessed "
            "FROM scored_indicators"
        ),
        "item_scores": "SELECT * FROM item_scores",
        "shop_traffic_weights": "SELECT * FROM shop_traffic_weights",
        "item_traffic_weights": "SELECT * FROM item_traffic_weights",
    }


# --------------------------------------------------------------------------------------------
# the child process


def run(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Run the recompute the spec describes; returns the seconds of each step."""
    day = dt.date.fromisoformat(spec["date"])
    rules = read_rules(Path(spec["rules"]) if spec.get("rules") else None)
    files = {
        log: {dt.date.fromisoformat(d): paths for d, paths in partitions.items()}
        for log, partitions in spec["files"].items()
    }
    out = Path(spec["out"])
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.parquet"):
        old.unlink()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")  # naive timestamps are UTC instants (1)
    con.execute("SET enable_progress_bar = false")
    con.execute("SET preserve_insertion_order = false")
    con.execute(f"SET temp_directory = {_lit(str(out / '.spill'))}")
    if spec.get("memory_limit_bytes"):
        con.execute(f"SET memory_limit = '{int(spec['memory_limit_bytes']) // 2**20}MiB'")
    started = time.perf_counter()
    steps: dict[str, float] = {}
    for step, sql in peer_statements(rules, files, day, out):
        lap = time.perf_counter()
        con.execute(sql)
        steps[step] = steps.get(step, 0.0) + time.perf_counter() - lap
    rows = {
        table: con.sql(
            f"SELECT count(*) FROM read_parquet({_lit(str(out / f'{table}.parquet'))})"
        ).fetchall()[0][0]
        for table in TABLES
    }
    con.close()
    return {
        "seconds": round(time.perf_counter() - started, 4),
        "steps": {k: round(v, 4) for k, v in steps.items()},
        "rows": rows,
    }


def main(argv: Sequence[str]) -> int:
    """`python -m pipelines.devtools.bench_peer SPEC.json`: run, print the result as one JSON
    line."""
    if len(argv) != 1:
        print("usage: python -m pipelines.devtools.bench_peer SPEC.json", file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[0]).read_text("utf-8"))
    print(json.dumps(run(spec)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
