"""Independent reference implementation (test oracle) of SCORING.md v1.1.

Plain, row-by-row Python written only from /work/shared/spec/SCORING.md (sections 1-13) and
rules.default.toml. It is slow on purpose and meant for small data (a few thousand rows): its
only job is to cross-check the vectorised pipeline.

API
---
    reference_tables(raw_dir, run_date, rules, previous=None) -> dict[str, list[dict]]

``raw_dir`` holds ``<raw>/<log>/dt=YYYY-MM-DD/*.parquet`` (log in orders, refunds, logistics,
cs_sessions and, optionally, appeals); ``rules`` is the parsed TOML dict (its optional
``exemptions`` list is validated first: a rules error raises ValueError naming the exemption);
``previous`` is the run's own published D-1 output ``{"shop_labels": [...],
"shop_traffic_weights": [...]}`` (None = nothing held on D-1). The result has the keys
shop_scores, shop_indicators, item_scores, shop_labels, shop_traffic_weights,
item_traffic_weights (rows with the columns of spec section 10 plus ``dt`` = run date and
``rules_version``; v1.1 adds ``excluded`` to shop_indicators and ``appeals_upheld`` to
shop_scores, 13.4) and quarantine (rows ``{"log", "reason", "key", "dt"}``, dt = partition
date). Every row list is sorted deterministically (by ids, then indicator / label in spec table
order). The run manifest (10, 13.4) is not modelled.

READINGS (choices where the spec could be read more than one way; each one is also marked
``# READING:`` at the place in the code)
--------------------------------------------------------------------------------------------
R1  Every column of the section-2 schema of a log must be present in every file (nullable ones
    too); a missing one raises ValueError naming the file and the column.
R2  Column types: int columns must have an integer (or all-null) Arrow type, timestamps a
    timestamp type, bools a bool type, strings a (large/view/dictionary) string type; otherwise
    ValueError. Integer VALUES outside the canonical type of the column (BIGINT for ids, counts
    and amounts, INTEGER for category_id / first_response_seconds, TINYINT for review_rating /
    satisfaction) also raise ValueError ("a type that cannot hold the values"), they are not
    quarantined.
R3  Timestamps finer than microseconds are truncated to microseconds.
R4  Quarantine rows list every rejected row of every partition the run reads
    (D-(W-1) <= dt <= D), one quarantine row per physical row (copies included), with their own
    partition date as ``dt``. No rules_version column on them (the brief lists the four keys).
R5  "amount negative" = ``amount_cents < 0`` in orders and refunds; ``first_response_seconds < 0``
    in cs_sessions. Rating check = ``review_rating`` (orders) / ``satisfaction`` (cs), non-null
    and outside 1..5. Cutoff check column: updated_at (orders, refunds), event_at (logistics),
    closed_at (cs_sessions).
R6  Versions of one order/refund equal on (updated_at, dt) but differing in content (invalid
    data): the one with the greatest repr of its sorted (column, value) items is taken, so the
    result does not depend on read order. Logistics / CS copies of one key that differ in
    content: the copy of the earliest dt, then the smallest repr, is taken. Quarantine is applied
    before dedupe for these logs too.
R7  A quality refund (quality_refund_rate) and a PXI problem refund need no window condition on
    the refund (any current, not abnormal refund linked by order_id; "requested before cutoff" is
    always true for rows read). The refund's own shop_id / item_id are ignored for these.
R8  The rate-indicator ``numerator`` is returned as int (a count), the hours-indicator numerator
    as float hours; denominators are ints.
R9  Hours priors are computed from the exact integer microsecond sums over the pooled shops,
    divided by 3.6e9 once, then by the pooled denominator (rather than summing per-shop floats).
R10 Label ``held`` = value reaches ``enter`` OR (held on D-1 AND value has not crossed ``exit``),
    both only when the value is computable and n >= min_n. ``since`` = D when newly held, else the
    D-1 row's ``since`` (D-1 itself when that row's since is null).
R11 ``top_experience`` n (for min_n) = valid_orders; its value is the unrounded score; its text is
    "体验分 {:.1f}".format(score_display).
R12 Label value n's: fast_shipping = orders of V with pickup(o); damage_free_return = refunds of R
    with reason damaged and a non-null seller_decision; fast_cs_reply = sessions of C in service
    hours with non-null first_response_seconds; high_cs_satisfaction / door_delivery = the
    indicator denominators; return_insurance = |V|.
R13 A dimension whose assessed indicators all have weight 0 (possible only through rule
    overrides) is treated like a dimension with nothing assessed: dimension score null, its
    weight spread over the other dimensions, its indicators' effective_weight 0 and points_lost
    0.0 (they stay assessed). When no dimension at all is assessed, score is null (band
    ``unscored``, no percentile) even for a shop with status ``scored``.
R14 Dimension scores (product_score, ...) are null when the dimension has no assessed indicator;
    they are reported for unscored shops too. ``bonus`` is 0.0 when no item is reached (also for
    shops with |V| = 0, whose shares are null).
R15 peer_percentile groups by main_category_id; a scored shop with a null main category (possible
    only with min_orders = 0) gets a null percentile. Same for items (category never null).
R16 Items: status ``scored`` when paid_orders >= min_item_orders, else ``insufficient_orders``.
    The PXI category prior pools all orders of V of the items whose (item-level, smallest)
    category_id is that category. category_percentile compares unrounded pxi.
R17 Per-category overrides: looked up as rules["categories"][str(main_category_id)] (an int key
    is accepted as well). Knots given by any source are sorted by value (stable); duplicated knot
    values: the first knot (in sorted order) at that value decides the score at that exact value.
    Scores are not clamped beyond what the knots give.
R18 Previous traffic weight ``w`` is read from previous["shop_traffic_weights"][*]["weight"]; a
    null there counts as "no w".
R19 cutoff/start/local midnights are built with datetime.combine(date, 00:00, tzinfo=ZoneInfo(tz))
    (fold=0) and converted to UTC.
R20 next_day_delivery_share counts orders of V with delivered(o) strictly before 00:00 local of
    (local paid date + 2 days); return_insurance_share = orders of V with return_insurance / |V|;
    bonus when share >= threshold (null share = not reached).
R21 Order-based numerators/denominators never look at the event's shop_id (12.4). Events
    "before cutoff" = event_at < cutoff(D) (all kept rows satisfy it anyway).
R22 refund_handling_hours may be negative if decided_at < requested_at (kept, not quarantined);
    delivery_hours likewise.
R24 Sums of floats in the score (weight sums, dimension scores, the weighted total) use
    math.fsum, i.e. the correctly rounded sum, independent of order. NOTE: score_display =
    floor(score*10)/10 has no epsilon (12.14), so a score that is mathematically k/10 can land one
    ulp below and display (k-1)/10 depending on summation order (e.g. 0.35+0.30+0.35 summed
    left-to-right is 0.9999999999999999). Comparisons of score_display at such boundaries are
    fragile between implementations.
R25 Effective weights: ``weight * sum_all / sum_assessed`` evaluated left to right; effective
    dimension weight likewise ``dw * dw_all / dw_assessed``; the score then is
    ``max(3.0, min(5.0, sum_d eff_dw_d * dim_score_d + bonus))`` (the 3.0 clamp is the
    project's documented reading: it only removes rounding below the range).
R26 Weights are used as given (after overrides): they are not renormalised to sum to 1, so
    an override such as weight = 1.5 can give a dimension score above 5 (the 5.0 cap on the
    shop score still applies); only the spreading of 12.11 rescales them.
R23 Indicator ordering inside shop_indicators / label ordering in shop_labels follow the spec
    tables; row order is not part of the contract.

v1.1 (section 7 (c), section 13):
R27 Late shipment (7 (c)) = the order is in the pickup_on_time_rate denominator and not in its
    numerator, both as v1.1 computes them: with the ship_by deadline of 13.3, and never for an
    order an exemption excludes from pickup_on_time_rate. A problem order counts once whatever
    combination of (a) problem refund, (b) review_rating <= 2 and (c) late shipment it has.
    Exclusions from quality_refund_rate or negative_review_rate do not touch PXI (a) / (b).
R28 ``ship_to_region`` is optional in every orders file (absent = all null); when present it
    must be a string (or all-null / dictionary-of-string) type, else ValueError. No quarantine
    rule reads it. Regions compare by exact, case-sensitive string equality (no trimming).
R29 Appeals are read from the run's partitions D-(W-1) <= dt <= D only, like every log (an
    appeal in an older partition is not seen). Required columns: all six (R1). Quarantine
    codes: null_in_required_column, unknown_enum_value (subject, outcome),
    at_or_after_partition_cutoff (decided_at >= cutoff(dt)), first match in 12.2 order. Copies
    of an appeal_id are one appeal; copies differing in content are resolved as logistics (R6:
    earliest dt, then smallest repr), before outcomes are looked at.
R30 A subject (order_id / refund_id / session_id by subject) is removed when at least one of
    its appeals is ``upheld``: a rejected appeal, earlier or later, never restores it. No
    condition on decided_at (it is only checked against its partition's cutoff), none on the
    appeal's shop_id, none on the subject being in the window. An upheld appeal naming an id
    that does not exist (or whose rows are all quarantined) does nothing.
R31 An upheld order leaves V (and everything read from V: every order-based indicator, |V|,
    main category, bonus shares, labels, PXI, item rows); its refunds stay in R and in the help
    refunds and its sessions stay in C (as with is_abnormal orders in v1.0: those populations
    never look at the order's state). An upheld refund leaves R, the help refunds, the quality
    refunds and the PXI problem refunds. An upheld session leaves C (so also the session part
    of the platform_help_rate numerator and the fast_cs_reply label).
R32 appeals_upheld = number of distinct (subject, id) pairs removed by upheld appeals among:
    orders that are current, paid in window and not is_abnormal (counted for the order's
    shop_id); refunds current, requested in window and not is_abnormal (the refund's shop_id);
    sessions started in window (the session's shop_id). Help refunds outside R are not
    counted. A shop that has a row and no such subject gets 0 (not null); a shop whose every
    row-giving subject was appealed has no row (its count is then reported nowhere).
R33 Exemption rules errors (ValueError naming the exemption, or its 1-based position when it
    has no usable name): exemptions not a list of tables; name missing, not a string, not
    matching [a-z0-9_]+ (the documented format is enforced), or used twice; paid_from /
    paid_to missing, not a date (a TOML local date or an ISO "YYYY-MM-DD" string; a
    datetime is refused), or paid_from after paid_to; regions not a list of strings;
    ship_by not a date-time with an offset (a naive one is refused rather than guessed);
    exclude_from not a list of strings, naming platform_help_rate or an id not in section 4;
    neither ship_by nor a non-empty exclude_from. Unknown keys are ignored. Validation runs
    before anything is read, whether or not any row matches.
R34 Matching: an order by its current local paid date in [paid_from, paid_to] (inclusive)
    and, when regions is non-empty, ship_to_region in regions (null never matches). A refund by
    the local date of requested_at, a session by that of started_at, and only exemptions whose
    regions is empty (or absent). The indicators excluded for a row are the union of
    exclude_from over its matching exemptions, restricted to the indicators that count that
    kind of row (order-based seven for orders, cs_response_rate / cs_satisfaction_rate for
    sessions, refund_refusal_rate / refund_handling_hours for refunds); an exemption naming
    only indicators of another kind of row simply has no effect there (not an error).
R35 ship_by: deadline(o) = the latest of paid_at + 48h, promised_ship_at and the ship_by of
    every matching exemption that has one. It is used wherever pickup_on_time_rate reads
    deadline(o): the due test (deadline < cutoff), the cancellation excuse (cancelled_at <=
    deadline) and the numerator; so a ship_by after cutoff(D) can also make an unpicked order
    not yet due. ship_by never changes fast_shipping or any other indicator.
R36 ``excluded`` (per shop and indicator) = rows of the shop (order's / session's / refund's
    own shop_id, 12.4) that match an exemption naming the indicator and satisfy the
    indicator's denominator condition as v1.1 computes it (so with the ship_by deadline for
    pickup_on_time_rate). Always 0 for platform_help_rate. Priors pool the reduced sums, and
    "not assessed" (12.9) is decided on them: an indicator whose every row is excluded is
    not assessed for the whole run. A shop whose denominator is emptied by exclusion gets
    raw_value null and smoothed = prior, like any shop with denominator 0.
R37 Exemptions leave alone: |V|, valid_orders, status, main category, bonus shares, and the
    labels fast_shipping, damage_free_return (all refunds of R with reason damaged and a
    decision, also those excluded from refund_refusal_rate), fast_cs_reply (all sessions of C
    in service hours, also those excluded from cs_response_rate), return_insurance;
    top_experience follows the (changed) score. high_cs_satisfaction and door_delivery read the
    reduced raw_value and denominator (n for min_n).
R38 v1.1 keeps the quarantine once per raw partition in storage; this oracle still returns
    every rejected row of every partition the run reads (R4), appeals included as log
    ``appeals`` with key = appeal_id. Comparing it to one date's stored quarantine is the
    comparing test's business.
"""

from __future__ import annotations

import datetime
import itertools
import math
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

UTC = datetime.UTC
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=UTC)
US_PER_HOUR = 3.6e9

# --------------------------------------------------------------------------------------------
# Raw schema (section 2), re-declared here on purpose (independent of pipelines/).
# (name, kind, nullable, enum, canonical int bits)
# --------------------------------------------------------------------------------------------
REFUND_TYPES = ("refund_only", "return_refund")
REFUND_REASONS = (
    "quality",
    "not_as_described",
    "damaged",
    "wrong_item",
    "late_delivery",
    "changed_mind",
    "other",
)
SELLER_DECISIONS = ("agreed", "refused", "negotiated")
RULINGS = ("merchant_responsible", "buyer_responsible", "no_fault")
EVENT_TYPES = ("picked_up", "in_transit", "out_for_delivery", "delivered", "exception", "returned")
APPEAL_SUBJECTS = ("order", "refund", "session")
APPEAL_OUTCOMES = ("upheld", "rejected")


def _c(name, kind, nullable=False, enum=None, bits=64, optional=False):
    # optional: the column may be absent from a file (it then reads as all null), 13.1
    return {
        "name": name,
        "kind": kind,
        "nullable": nullable,
        "enum": enum,
        "bits": bits,
        "optional": optional,
    }


SCHEMAS = {
    "orders": {
        "key": "order_id",
        "version": "updated_at",
        "columns": [
            _c("order_id", "int"),
            _c("shop_id", "int"),
            _c("item_id", "int"),
            _c("category_id", "int", bits=32),
            _c("buyer_id", "int"),
            _c("paid_at", "ts"),
            _c("amount_cents", "int"),
            _c("promised_ship_at", "ts", True),
            _c("promised_delivery_at", "ts", True),
            _c("return_insurance", "bool"),
            _c("cancelled_at", "ts", True),
            _c("review_rating", "int", True, bits=8),
            _c("is_abnormal", "bool"),
            _c("updated_at", "ts"),
            # v1.1 (13.1): optional, nullable; READING (R28)
            _c("ship_to_region", "str", True, optional=True),
        ],
    },
    "refunds": {
        "key": "refund_id",
        "version": "updated_at",
        "columns": [
            _c("refund_id", "int"),
            _c("order_id", "int"),
            _c("shop_id", "int"),
            _c("item_id", "int"),
            _c("requested_at", "ts"),
            _c("refund_type", "str", enum=REFUND_TYPES),
            _c("reason", "str", enum=REFUND_REASONS),
            _c("seller_decision", "str", True, SELLER_DECISIONS),
            _c("decided_at", "ts", True),
            _c("platform_help", "bool"),
            _c("escalated_at", "ts", True),
            _c("ruling", "str", True, RULINGS),
            _c("negotiated_retained", "bool"),
            _c("completed_at", "ts", True),
            _c("amount_cents", "int"),
            _c("is_abnormal", "bool"),
            _c("updated_at", "ts"),
        ],
    },
    "logistics": {
        "key": "event_id",
        "version": "event_at",
        "columns": [
            _c("event_id", "int"),
            _c("order_id", "int"),
            _c("shop_id", "int"),
            _c("event_type", "str", enum=EVENT_TYPES),
            _c("event_at", "ts"),
            _c("door_delivery", "bool", True),
        ],
    },
    "cs_sessions": {
        "key": "session_id",
        "version": "closed_at",
        "columns": [
            _c("session_id", "int"),
            _c("shop_id", "int"),
            _c("buyer_id", "int"),
            _c("order_id", "int", True),
            _c("started_at", "ts"),
            _c("first_response_seconds", "int", True, bits=32),
            _c("satisfaction", "int", True, bits=8),
            _c("escalated_to_platform", "bool"),
            _c("closed_at", "ts"),
        ],
    },
    # v1.1 (13.1): optional fifth log; a missing folder or partition = no appeals.
    "appeals": {
        "key": "appeal_id",
        "version": "decided_at",  # the column of the at_or_after_partition_cutoff check
        "columns": [
            _c("appeal_id", "int"),
            _c("shop_id", "int"),
            _c("subject", "str", enum=APPEAL_SUBJECTS),
            _c("subject_id", "int"),
            _c("outcome", "str", enum=APPEAL_OUTCOMES),
            _c("decided_at", "ts"),
        ],
    },
}
LOGS = ("orders", "refunds", "logistics", "cs_sessions", "appeals")

# Section 4 table, in order: (id, dimension, lower_is_better, is_hours)
INDICATORS = [
    ("quality_refund_rate", "product", True, False),
    ("negative_review_rate", "product", True, False),
    ("pickup_on_time_rate", "logistics", False, False),
    ("delivery_promise_rate", "logistics", False, False),
    ("track_anomaly_rate", "logistics", True, False),
    ("delivery_hours", "logistics", True, True),
    ("door_delivery_rate", "logistics", False, False),
    ("cs_response_rate", "service", False, False),
    ("cs_satisfaction_rate", "service", False, False),
    ("refund_refusal_rate", "service", True, False),
    ("platform_help_rate", "service", True, False),
    ("refund_handling_hours", "service", True, True),
]
DIMENSIONS = ["product", "logistics", "service"]
HOURS_INDICATORS = {i[0] for i in INDICATORS if i[3]}

# Section 8 table, in order: (label, lower_is_better)
LABELS = [
    ("fast_shipping", True),
    ("damage_free_return", False),
    ("fast_cs_reply", True),
    ("high_cs_satisfaction", False),
    ("door_delivery", False),
    ("return_insurance", False),
    ("top_experience", False),
]


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------
def _us(delta: datetime.timedelta) -> int:
    """Exact microseconds of a timedelta, as an int."""
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def _local_midnight_utc(d: datetime.date, tz: ZoneInfo) -> datetime.datetime:
    # READING (R19): 00:00 local built with fold=0, then converted to UTC.
    return datetime.datetime.combine(d, datetime.time(0, 0), tzinfo=tz).astimezone(UTC)


def _sorted_knots(knots):
    # READING (R17): sorted by value, stable, so duplicated values keep their given order.
    return sorted(([float(v), float(s)] for v, s in knots), key=lambda k: k[0])


def interp(x: float, knots) -> float:
    """Piecewise-linear through sorted knots, flat beyond the ends, exact at knots (12.12)."""
    ks = _sorted_knots(knots)
    if x <= ks[0][0]:
        return ks[0][1] if x < ks[0][0] else _first_at(ks, x)
    if x >= ks[-1][0]:
        return ks[-1][1] if x > ks[-1][0] else _first_at(ks, x)
    for v, _s in ks:
        if x == v:
            return _first_at(ks, x)
    for i in range(len(ks) - 1):
        v0, s0 = ks[i]
        v1, s1 = ks[i + 1]
        if v0 < x < v1:
            return s0 + (s1 - s0) * (x - v0) / (v1 - v0)
    raise AssertionError("unreachable")


def _first_at(ks, x):
    for v, s in ks:
        if v == x:
            return s
    raise AssertionError("unreachable")


def _canon(row: dict) -> str:
    return repr(sorted(row.items()))


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------
def _column_values(path: Path, table: pa.Table, col: dict) -> list:
    name = col["name"]
    arr = table.column(name)
    t = arr.type
    kind = col["kind"]
    if pa.types.is_null(t):
        return [None] * len(arr)
    if pa.types.is_dictionary(t):
        arr = pc.cast(arr, t.value_type)
        t = arr.type
    if kind == "int":
        if not pa.types.is_integer(t):
            raise ValueError(f"{path}: column {name}: type {t} is not an integer type")
        values = arr.to_pylist()
        lo, hi = -(2 ** (col["bits"] - 1)), 2 ** (col["bits"] - 1) - 1
        for v in values:
            # READING (R2): values outside the canonical type stop the run.
            if v is not None and not lo <= v <= hi:
                raise ValueError(f"{path}: column {name}: value {v} does not fit int{col['bits']}")
        return values
    if kind == "ts":
        if not pa.types.is_timestamp(t):
            raise ValueError(f"{path}: column {name}: type {t} is not a timestamp type")
        # The stored value of an Arrow timestamp is the UTC epoch offset whatever its tz
        # (naive = UTC per section 1). READING (R3): truncate to microseconds.
        us = pc.cast(arr, pa.timestamp("us", tz=t.tz), safe=False)
        ints = pc.cast(us, pa.int64()).to_pylist()
        return [None if v is None else EPOCH + datetime.timedelta(microseconds=v) for v in ints]
    if kind == "bool":
        if not pa.types.is_boolean(t):
            raise ValueError(f"{path}: column {name}: type {t} is not boolean")
        return arr.to_pylist()
    if kind == "str":
        ok = pa.types.is_string(t) or pa.types.is_large_string(t)
        if not ok and hasattr(pa.types, "is_string_view"):
            ok = pa.types.is_string_view(t)
        if not ok:
            raise ValueError(f"{path}: column {name}: type {t} is not a string type")
        return arr.to_pylist()
    raise AssertionError(kind)


def _read_log(raw_dir: Path, log: str, first: datetime.date, last: datetime.date):
    """All rows of partitions first <= dt <= last, as (row dict, partition date)."""
    schema = SCHEMAS[log]
    out = []
    base = raw_dir / log
    if not base.is_dir():
        return out
    parts = []
    for p in base.iterdir():
        m = re.fullmatch(r"dt=(\d{4}-\d{2}-\d{2})", p.name)
        if p.is_dir() and m:
            d = datetime.date.fromisoformat(m.group(1))
            if first <= d <= last:
                parts.append((d, p))
    for d, p in sorted(parts):
        for f in sorted(p.glob("*.parquet")):
            try:
                table = pq.ParquetFile(f).read()
            except Exception as exc:
                raise ValueError(f"{f}: cannot be read as Parquet: {exc}") from exc
            names = set(table.column_names)
            cols = {}
            for col in schema["columns"]:
                if col["name"] not in names and col["optional"]:
                    # 13.1 / READING (R28): a file without an optional column reads as all null.
                    cols[col["name"]] = [None] * table.num_rows
                    continue
                # READING (R1): every schema column is required to be present.
                if col["name"] not in names:
                    raise ValueError(f"{f}: column {col['name']} is missing")
                cols[col["name"]] = _column_values(f, table, col)
            for i in range(table.num_rows):
                out.append(({c: cols[c][i] for c in cols}, d))
    return out


def _reject_reason(log: str, row: dict, dt: datetime.date, tz: ZoneInfo):
    """First matching reason code of 12.2, or None."""
    schema = SCHEMAS[log]
    # 1 null_in_required_column
    for col in schema["columns"]:
        if not col["nullable"] and row[col["name"]] is None:
            return "null_in_required_column"
    # 2 unknown_enum_value
    for col in schema["columns"]:
        value = row[col["name"]]
        if col["enum"] is not None and value is not None and value not in col["enum"]:
            return "unknown_enum_value"
    # 3 rating_out_of_range  (READING R5)
    for rc in ("review_rating", "satisfaction"):
        if rc in row and row[rc] is not None and not 1 <= row[rc] <= 5:
            return "rating_out_of_range"
    # 4 negative_value
    for nc in ("amount_cents", "first_response_seconds"):
        if nc in row and row[nc] is not None and row[nc] < 0:
            return "negative_value"
    # 5 updated_before_created
    if log == "orders" and row["updated_at"] < row["paid_at"]:
        return "updated_before_created"
    if log == "refunds" and row["updated_at"] < row["requested_at"]:
        return "updated_before_created"
    # 6 at_or_after_partition_cutoff
    if row[schema["version"]] >= _local_midnight_utc(dt + datetime.timedelta(days=1), tz):
        return "at_or_after_partition_cutoff"
    # 7 decision_time_mismatch
    if log == "refunds" and ((row["decided_at"] is None) != (row["seller_decision"] is None)):
        return "decision_time_mismatch"
    return None


# --------------------------------------------------------------------------------------------
# rules helpers
# --------------------------------------------------------------------------------------------
def _shop_config(rules: dict, main_cat):
    """Indicator configs and dimension weights for a shop's main category (12.10)."""
    ind = {}
    for name, _dim, _low, _h in INDICATORS:
        base = rules["indicators"][name]
        ind[name] = {
            "weight": float(base["weight"]),
            "k": float(base.get("k", 20)),
            "knots": base["knots"],
        }
    dw = {d: float(rules["dimension_weights"][d]) for d in DIMENSIONS}
    if main_cat is not None:
        cats = rules.get("categories", {}) or {}
        # READING (R17): lookup by str(main category id); an int key is accepted too.
        over = cats.get(str(main_cat), cats.get(main_cat))
        if over:
            for name, o in (over.get("indicators", {}) or {}).items():
                if name not in ind:
                    continue
                for key in ("knots", "weight", "k"):
                    if key in o:
                        ind[name][key] = o[key] if key == "knots" else float(o[key])
            for d, v in (over.get("dimension_weights", {}) or {}).items():
                if d in dw:
                    dw[d] = float(v)
    return ind, dw


# 13.3: which indicators an exemption may exclude, by the kind of row they count.
ORDER_INDICATORS = (
    "quality_refund_rate",
    "negative_review_rate",
    "pickup_on_time_rate",
    "delivery_promise_rate",
    "track_anomaly_rate",
    "delivery_hours",
    "door_delivery_rate",
)
SESSION_INDICATORS = ("cs_response_rate", "cs_satisfaction_rate")
REFUND_INDICATORS = ("refund_refusal_rate", "refund_handling_hours")
EXCLUDABLE = set(ORDER_INDICATORS) | set(SESSION_INDICATORS) | set(REFUND_INDICATORS)
EXEMPTION_NAME = re.compile(r"[a-z0-9_]+")


def _exemption_date(name, key, value) -> datetime.date:
    # READING (R33): a TOML local date (datetime.date) or an ISO "YYYY-MM-DD" string; a
    # datetime (a date with a time) is refused.
    if isinstance(value, str):
        try:
            return datetime.date.fromisoformat(value)
        except ValueError:
            pass
    elif isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        return value
    raise ValueError(f"exemption {name!r}: {key} must be a date, got {value!r}")


def _parse_exemptions(rules: dict) -> list[dict]:
    """The rules' [[exemptions]], validated (13.3); a rules error raises ValueError."""
    raw = rules.get("exemptions")
    if raw is None:
        return []  # none by default
    if not isinstance(raw, list):
        raise ValueError(f"exemptions must be a list of tables, got {type(raw).__name__}")
    out = []
    seen = set()
    for i, e in enumerate(raw):
        if not isinstance(e, dict):
            raise ValueError(f"exemption #{i + 1}: must be a table, got {e!r}")
        name = e.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"exemption #{i + 1}: name is missing or not a string: {name!r}")
        # READING (R33): the documented name format is enforced as a rules error too.
        if not EXEMPTION_NAME.fullmatch(name):
            raise ValueError(
                f"exemption {name!r}: name must be lower-case letters, digits and _ only"
            )
        if name in seen:
            raise ValueError(f"exemption {name!r}: two exemptions with one name")
        seen.add(name)
        for key in ("paid_from", "paid_to"):
            if key not in e:
                raise ValueError(f"exemption {name!r}: {key} is missing")
        paid_from = _exemption_date(name, "paid_from", e["paid_from"])
        paid_to = _exemption_date(name, "paid_to", e["paid_to"])
        if paid_from > paid_to:
            raise ValueError(
                f"exemption {name!r}: paid_from {paid_from} is after paid_to {paid_to}"
            )
        regions = e.get("regions", [])
        if regions is None:
            regions = []
        if not isinstance(regions, list) or not all(isinstance(r, str) for r in regions):
            raise ValueError(f"exemption {name!r}: regions must be a list of strings")
        ship_by = e.get("ship_by")
        if ship_by is not None:
            # READING (R33): an aware datetime; a naive one (TOML local date-time) or a date is
            # a rules error rather than a guess at its zone.
            if not isinstance(ship_by, datetime.datetime) or ship_by.utcoffset() is None:
                raise ValueError(
                    f"exemption {name!r}: ship_by must be a date-time with an offset, "
                    f"got {ship_by!r}"
                )
            ship_by = ship_by.astimezone(UTC)
        exclude = e.get("exclude_from", [])
        if exclude is None:
            exclude = []
        if not isinstance(exclude, list) or not all(isinstance(x, str) for x in exclude):
            raise ValueError(f"exemption {name!r}: exclude_from must be a list of indicator ids")
        for x in exclude:
            if x == "platform_help_rate":
                raise ValueError(f"exemption {name!r}: platform_help_rate cannot be excluded")
            if x not in EXCLUDABLE:
                raise ValueError(f"exemption {name!r}: unknown indicator {x!r} in exclude_from")
        if ship_by is None and not exclude:
            raise ValueError(
                f"exemption {name!r}: has neither ship_by nor a non-empty exclude_from"
            )
        out.append(
            {
                "name": name,
                "paid_from": paid_from,
                "paid_to": paid_to,
                "regions": tuple(regions),
                "ship_by": ship_by,
                "exclude": frozenset(exclude),
            }
        )
    return out


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------
def reference_tables(
    raw_dir, run_date: datetime.date, rules: dict, previous: dict | None = None
) -> dict[str, list[dict]]:
    raw_dir = Path(raw_dir)
    D = run_date
    tz = ZoneInfo(rules.get("timezone", "Asia/Shanghai"))
    W = int(rules.get("window_days", 30))
    version = rules["version"]
    first_dt = D - datetime.timedelta(days=W - 1)
    cutoff = _local_midnight_utc(D + datetime.timedelta(days=1), tz)
    start = _local_midnight_utc(first_dt, tz)

    def in_window(t):
        return t is not None and start <= t < cutoff

    # 13.3: the rules' exemptions, validated before any data is read.
    exemptions = _parse_exemptions(rules)

    # ---------------- 2.5 read, quarantine, current state ----------------
    quarantine = []
    kept = {}
    # READING (R38): the quarantine lists every rejected row of every partition read, the
    # appeals log included (log "appeals", key appeal_id), as in R4.
    for log in LOGS:
        rows = _read_log(raw_dir, log, first_dt, D)
        good = []
        for row, dt in rows:
            reason = _reject_reason(log, row, dt, tz)
            if reason is None:
                good.append((row, dt))
            else:
                quarantine.append(
                    {"log": log, "reason": reason, "key": row[SCHEMAS[log]["key"]], "dt": dt}
                )
        kept[log] = good
    quarantine.sort(key=lambda q: (q["log"], q["dt"], q["key"] is None, q["key"] or 0, q["reason"]))

    def current(log):
        key = SCHEMAS[log]["key"]
        best = {}
        for row, dt in kept[log]:
            # READING (R6): exact (updated_at, dt) ties broken by the canonical repr.
            rank = (row["updated_at"], dt, _canon(row))
            k = row[key]
            if k not in best or rank > best[k][0]:
                best[k] = (rank, row)
        return {k: v[1] for k, v in best.items()}

    def dedupe(log):
        key = SCHEMAS[log]["key"]
        best = {}
        for row, dt in kept[log]:
            rank = (dt, _canon(row))  # READING (R6)
            k = row[key]
            if k not in best or rank < best[k][0]:
                best[k] = (rank, row)
        return {k: v[1] for k, v in best.items()}

    orders_cur = current("orders")
    refunds_cur = current("refunds")
    events = dedupe("logistics")
    sessions = dedupe("cs_sessions")
    # 13.1: appeals count once per key, copies as for logistics. READING (R29), R6.
    appeals = dedupe("appeals")

    # ---------------- 13.2 upheld appeals ----------------
    # READING (R30): a subject is removed when at least one of its appeals (after dedupe) is
    # upheld, whatever its other appeals say and whatever their decided_at; matched by id alone.
    upheld = {"order": set(), "refund": set(), "session": set()}
    for a in appeals.values():
        if a["outcome"] == "upheld":
            upheld[a["subject"]].add(a["subject_id"])

    # ---------------- section 3 populations ----------------
    # the populations as v1.0 defines them, before upheld appeals (for appeals_upheld, 13.4)
    V_before = [o for o in orders_cur.values() if in_window(o["paid_at"]) and not o["is_abnormal"]]
    V = [o for o in V_before if o["order_id"] not in upheld["order"]]
    V.sort(key=lambda o: o["order_id"])
    v_ids = {o["order_id"] for o in V}

    events_by_order = {}
    for e in events.values():
        # READING (R21): only events before cutoff(D) exist.
        if e["event_at"] < cutoff and e["order_id"] in v_ids:
            events_by_order.setdefault(e["order_id"], []).append(e)

    # READING (R31): an upheld refund counts nowhere, like an abnormal one; an upheld order does
    # not take its refunds or sessions with it (the refund and session populations never look
    # at the order's state, as with is_abnormal in v1.0).
    R_before = [
        r for r in refunds_cur.values() if not r["is_abnormal"] and in_window(r["requested_at"])
    ]
    refunds_ok = [
        r
        for r in refunds_cur.values()
        if not r["is_abnormal"] and r["refund_id"] not in upheld["refund"]
    ]
    R = [r for r in refunds_ok if in_window(r["requested_at"])]
    help_refunds = [
        r
        for r in refunds_ok
        if r["platform_help"]
        and in_window(r["escalated_at"])
        and r["ruling"] != "buyer_responsible"
    ]
    C_before = [s for s in sessions.values() if in_window(s["started_at"])]
    C = [s for s in C_before if s["session_id"] not in upheld["session"]]

    # READING (R7): any current, not abnormal refund linked by order_id.
    quality_refund_orders = {
        r["order_id"] for r in refunds_ok if r["reason"] in ("quality", "not_as_described")
    }
    problem_refund_orders = {
        r["order_id"]
        for r in refunds_ok
        if r["reason"] in ("quality", "not_as_described", "damaged") and r["requested_at"] < cutoff
    }

    # ---------------- 13.3 exemption matching ----------------
    def order_exemptions(o):
        # READING (R34): local paid date in [paid_from, paid_to]; a non-empty regions list
        # matches by exact string equality and never matches a null ship_to_region.
        local = o["paid_at"].astimezone(tz).date()
        region = o["ship_to_region"]
        return [
            e
            for e in exemptions
            if e["paid_from"] <= local <= e["paid_to"]
            and (not e["regions"] or (region is not None and region in e["regions"]))
        ]

    def row_exemptions(t):
        # refunds (requested_at) and sessions (started_at): only exemptions without regions
        local = t.astimezone(tz).date()
        return [
            e for e in exemptions if not e["regions"] and e["paid_from"] <= local <= e["paid_to"]
        ]

    def excluded_ids(matching, kind_ids):
        # READING (R34): the union of exclude_from over the matching exemptions, restricted to
        # the indicators that count this kind of row.
        out = set()
        for e in matching:
            out |= e["exclude"]
        return out & set(kind_ids)

    # per-order derived facts
    info = {}
    for o in V:
        evs = events_by_order.get(o["order_id"], [])
        pick_times = [e["event_at"] for e in evs if e["event_type"] == "picked_up"]
        pickup = min(pick_times) if pick_times else None
        dels = [e for e in evs if e["event_type"] == "delivered"]
        delivered = None
        door = False
        if dels:
            delivered = min(e["event_at"] for e in dels)
            at_first = sorted(
                (e for e in dels if e["event_at"] == delivered), key=lambda e: e["event_id"]
            )
            door = at_first[0]["door_delivery"] is True  # null = not at the door (12.5)
        deadline = o["paid_at"] + datetime.timedelta(hours=48)
        if o["promised_ship_at"] is not None and o["promised_ship_at"] > deadline:
            deadline = o["promised_ship_at"]
        matching = order_exemptions(o)
        # 13.3 ship_by: the later of the section-3 deadline and the latest matching ship_by.
        # READING (R35): this deadline is used everywhere pickup_on_time_rate reads deadline(o)
        # (the due test, the cancellation excuse and the numerator), and for late shipment.
        ship_bys = [e["ship_by"] for e in matching if e["ship_by"] is not None]
        if ship_bys and max(ship_bys) > deadline:
            deadline = max(ship_bys)
        excl = excluded_ids(matching, ORDER_INDICATORS)
        cancelled_excused = (
            o["cancelled_at"] is not None and o["cancelled_at"] <= deadline and pickup is None
        )
        pickup_due = pickup is not None or (deadline < cutoff and not cancelled_excused)
        pickup_on_time = pickup_due and pickup is not None and pickup <= deadline
        has_exception = any(e["event_type"] == "exception" for e in evs)
        stall = False
        if pickup is not None:
            times = sorted(
                e["event_at"]
                for e in evs
                if pickup <= e["event_at"] < cutoff
                and (delivered is None or e["event_at"] <= delivered)
            )
            limit = 72 * 3600 * 1_000_000
            for a, b in itertools.pairwise(times):
                if _us(b - a) > limit:
                    stall = True
            if delivered is None and times and _us(cutoff - times[-1]) > limit:
                stall = True
        paid_local_date = o["paid_at"].astimezone(tz).date()
        next_day_limit = _local_midnight_utc(paid_local_date + datetime.timedelta(days=2), tz)
        info[o["order_id"]] = {
            "pickup": pickup,
            "delivered": delivered,
            "door": door,
            "deadline": deadline,
            "pickup_due": pickup_due,
            "pickup_on_time": pickup_on_time,
            # 7 (c) late shipment; READING (R27): due and not on time, in the v1.1 sense (with
            # ship_by); an order excluded from pickup_on_time_rate is not due for it (13.3).
            "late": (pickup_due and not pickup_on_time and "pickup_on_time_rate" not in excl),
            "excl": excl,
            "anomaly": has_exception or stall,
            "next_day": delivered is not None and delivered < next_day_limit,
        }

    # shops of shop_scores
    shops = sorted(
        {o["shop_id"] for o in V} | {r["shop_id"] for r in R} | {s["shop_id"] for s in C}
    )
    shop_set = set(shops)

    # main category
    amounts = {}
    for o in V:
        amounts.setdefault(o["shop_id"], {}).setdefault(o["category_id"], 0)
        amounts[o["shop_id"]][o["category_id"]] += o["amount_cents"]
    main_cat = {}
    for s in shops:
        cats = amounts.get(s)
        if not cats:
            main_cat[s] = None
        else:
            main_cat[s] = sorted(cats.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]

    # 13.4 appeals_upheld: distinct subjects an upheld appeal removed from the v1.0 populations,
    # each for its own shop_id. READING (R32).
    appealed = {s: set() for s in shops}
    for o in V_before:
        if o["order_id"] in upheld["order"] and o["shop_id"] in shop_set:
            appealed[o["shop_id"]].add(("order", o["order_id"]))
    for r in R_before:
        if r["refund_id"] in upheld["refund"] and r["shop_id"] in shop_set:
            appealed[r["shop_id"]].add(("refund", r["refund_id"]))
    for c in C_before:
        if c["session_id"] in upheld["session"] and c["shop_id"] in shop_set:
            appealed[c["shop_id"]].add(("session", c["session_id"]))

    # ---------------- section 4 indicators: per shop numerators/denominators ----------------
    # hours numerators kept as exact int microseconds ("_us") until the end.
    acc = {s: {name: [0, 0] for name, *_ in INDICATORS} for s in shops}
    # 13.4: rows an exemption removed from each indicator's denominator.
    # READING (R36): rows that match an exemption naming the indicator and satisfy the
    # denominator condition as v1.1 computes it (ship_by deadline included).
    excluded = {s: {name: 0 for name, *_ in INDICATORS} for s in shops}
    extra = {
        s: {
            "V": 0,
            "ins": 0,
            "next_day": 0,
            "pick_us": 0,
            "pick_n": 0,
            "dmg_n": 0,
            "dmg_agreed": 0,
            "reply_s": 0,
            "reply_n": 0,
        }
        for s in shops
    }

    def add(s, contrib, excl):
        """contrib: indicator -> numerator part, for each indicator whose denominator the row
        is in (one row = 1 in the denominator); excluded indicators count in `excluded`."""
        for name, num in contrib.items():
            if name in excl:
                excluded[s][name] += 1
            else:
                acc[s][name][0] += num
                acc[s][name][1] += 1

    for o in V:
        s = o["shop_id"]
        x = extra[s]
        f = info[o["order_id"]]
        # READING (R37): |V|, bonus shares and the other labels ignore exemptions.
        x["V"] += 1
        if o["return_insurance"]:
            x["ins"] += 1
        if f["next_day"]:
            x["next_day"] += 1
        contrib = {}
        # quality_refund_rate
        if f["delivered"] is not None:
            contrib["quality_refund_rate"] = int(o["order_id"] in quality_refund_orders)
        # negative_review_rate
        if o["review_rating"] is not None:
            contrib["negative_review_rate"] = int(o["review_rating"] <= 2)
        # pickup_on_time_rate
        pickup = f["pickup"]
        if f["pickup_due"]:
            contrib["pickup_on_time_rate"] = int(f["pickup_on_time"])
        # delivery_promise_rate
        pda = o["promised_delivery_at"]
        if pda is not None:
            due = f["delivered"] is not None or (
                pda < cutoff and not (o["cancelled_at"] is not None and pickup is None)
            )
            if due:
                contrib["delivery_promise_rate"] = int(
                    f["delivered"] is not None and f["delivered"] <= pda
                )
        # track_anomaly_rate
        if pickup is not None:
            contrib["track_anomaly_rate"] = int(f["anomaly"])
        # delivery_hours, door_delivery_rate
        if f["delivered"] is not None:
            contrib["delivery_hours"] = _us(f["delivered"] - o["paid_at"])
            contrib["door_delivery_rate"] = int(f["door"])
        # platform_help_rate denominator = |V| (never excluded, 13.3)
        contrib["platform_help_rate"] = 0
        add(s, contrib, f["excl"])
        # label fast_shipping
        if pickup is not None:
            x["pick_us"] += _us(pickup - o["paid_at"])
            x["pick_n"] += 1

    for c in C:
        s = c["shop_id"]
        x = extra[s]
        hour = c["started_at"].astimezone(tz).hour
        in_service = 8 <= hour < 23
        contrib = {}
        frs = c["first_response_seconds"]
        if in_service:
            contrib["cs_response_rate"] = int(frs is not None and frs <= 180)
            # label fast_cs_reply: every session of C, exemptions or not (R37)
            if frs is not None:
                x["reply_s"] += frs
                x["reply_n"] += 1
        if c["satisfaction"] is not None:
            contrib["cs_satisfaction_rate"] = int(c["satisfaction"] >= 4)
        add(s, contrib, excluded_ids(row_exemptions(c["started_at"]), SESSION_INDICATORS))
        if c["escalated_to_platform"]:
            acc[s]["platform_help_rate"][0] += 1

    for r in R:
        s = r["shop_id"]
        x = extra[s]
        contrib = {}
        if r["seller_decision"] is not None:
            contrib["refund_refusal_rate"] = int(r["seller_decision"] == "refused")
            contrib["refund_handling_hours"] = _us(r["decided_at"] - r["requested_at"])
            # label damage_free_return: every refund of R, exemptions or not (R37)
            if r["reason"] == "damaged":
                x["dmg_n"] += 1
                if r["seller_decision"] == "agreed":
                    x["dmg_agreed"] += 1
        add(s, contrib, excluded_ids(row_exemptions(r["requested_at"]), REFUND_INDICATORS))

    for r in help_refunds:
        # 12.8: a help refund of a shop without a row counts nowhere.
        if r["shop_id"] in shop_set:
            acc[r["shop_id"]]["platform_help_rate"][0] += 1

    # ---------------- section 5 priors ----------------
    def numer_value(name, raw_num):
        return raw_num / US_PER_HOUR if name in HOURS_INDICATORS else raw_num

    priors_cat = {}  # (indicator, category) -> prior
    prior_all = {}  # indicator -> prior or None (= not assessed)
    for name, *_ in INDICATORS:
        tot_n, tot_d = 0, 0
        by_cat = {}
        for s in shops:
            n, d = acc[s][name]
            if d == 0:
                continue
            tot_n += n
            tot_d += d
            if main_cat[s] is not None:
                cn, cd = by_cat.get(main_cat[s], (0, 0))
                by_cat[main_cat[s]] = (cn + n, cd + d)
        # READING (R9): hours sums exact in microseconds, divided by 3.6e9 once.
        prior_all[name] = numer_value(name, tot_n) / tot_d if tot_d > 0 else None
        for cat, (cn, cd) in by_cat.items():
            if cd > 0:
                priors_cat[(name, cat)] = numer_value(name, cn) / cd
    assessed = {name: prior_all[name] is not None for name, *_ in INDICATORS}

    # ---------------- sections 5 and 6 per shop ----------------
    min_orders = int(rules.get("min_orders", 30))
    bonus_rules = rules.get("bonus", {})
    shop_scores, shop_indicators = [], []
    shop_state = {}
    for s in shops:
        cfg, dw = _shop_config(rules, main_cat[s])
        mc = main_cat[s]
        rows = {}
        for name, dim, _low, is_hours in INDICATORS:
            n_raw, d = acc[s][name]
            num = n_raw / US_PER_HOUR if is_hours else n_raw  # READING (R8)
            raw_value = num / d if d > 0 else None
            if assessed[name]:
                prior = priors_cat.get((name, mc)) if mc is not None else None
                if prior is None:
                    prior = prior_all[name]
                k = cfg[name]["k"]
                smoothed = prior if d == 0 else (num + k * prior) / (d + k)
                iscore = interp(smoothed, cfg[name]["knots"])
            else:
                prior = smoothed = iscore = None
            rows[name] = {
                "dimension": dim,
                "numerator": num,
                "denominator": d,
                "raw_value": raw_value,
                "prior": prior,
                "smoothed_value": smoothed,
                "indicator_score": iscore,
                "assessed": assessed[name],
            }

        # 12.11 weight spreading inside each dimension
        dim_score = {}
        dim_assessed = {}
        for dim in DIMENSIONS:
            names = [n for n, dd, *_ in INDICATORS if dd == dim]
            # READING (R24): float sums via math.fsum (correctly rounded, order-independent).
            w_all = math.fsum(cfg[n]["weight"] for n in names)
            w_ass = math.fsum(cfg[n]["weight"] for n in names if assessed[n])
            # READING (R13): zero assessed weight = nothing assessed in the dimension.
            dim_assessed[dim] = any(assessed[n] for n in names) and w_ass > 0
            for n in names:
                if assessed[n] and w_ass > 0:
                    rows[n]["effective_weight"] = cfg[n]["weight"] * w_all / w_ass
                else:
                    rows[n]["effective_weight"] = 0.0
            if dim_assessed[dim]:
                dim_score[dim] = math.fsum(
                    rows[n]["effective_weight"] * rows[n]["indicator_score"]
                    for n in names
                    if assessed[n]
                )
            else:
                dim_score[dim] = None  # READING (R14)
        dw_all = math.fsum(dw[d] for d in DIMENSIONS)
        dw_ass = math.fsum(dw[d] for d in DIMENSIONS if dim_assessed[d])
        eff_dw = {
            d: (dw[d] * dw_all / dw_ass if dim_assessed[d] and dw_ass > 0 else 0.0)
            for d in DIMENSIONS
        }
        for name, dim, *_ in INDICATORS:
            r = rows[name]
            if r["assessed"]:
                r["points_lost"] = (
                    eff_dw[dim] * r["effective_weight"] * (5.0 - r["indicator_score"])
                )
            else:
                r["points_lost"] = None

        # bonus items
        x = extra[s]
        nv = x["V"]
        ins_share = x["ins"] / nv if nv > 0 else None
        nd_share = x["next_day"] / nv if nv > 0 else None
        bonus = 0.0
        for bname, share in (
            ("return_insurance_share", ins_share),
            ("next_day_delivery_share", nd_share),
        ):
            b = bonus_rules.get(bname)
            if b is not None and share is not None and share >= float(b["threshold"]):
                bonus += float(b["points"])

        status = "scored" if nv >= min_orders else "insufficient_orders"
        score = None
        if status == "scored" and any(dim_assessed.values()) and dw_ass > 0:
            total = math.fsum(eff_dw[d] * dim_score[d] for d in DIMENSIONS if dim_assessed[d])
            # READING (project docs, "How the spec is read"): the weighted sum is an average of
            # scores in [3, 5]; clamping at 3.0 removes rounding (0.35*3 + 0.3*3 + 0.35*3 is
            # 2.9999999999999996 in doubles, which would display 2.9).
            score = max(3.0, min(5.0, total + bonus))
        score_display = math.floor(score * 10) / 10 if score is not None else None
        if score is None:
            band = "unscored"
        elif score >= 4.8:
            band = "4.8+"
        elif score >= 4.5:
            band = "4.5-4.8"
        elif score >= 4.0:
            band = "4.0-4.5"
        else:
            band = "<4.0"
        shop_scores.append(
            {
                "shop_id": s,
                "main_category_id": mc,
                "valid_orders": nv,
                "status": status,
                "score": score,
                "score_display": score_display,
                "band": band,
                "product_score": dim_score["product"],
                "logistics_score": dim_score["logistics"],
                "service_score": dim_score["service"],
                "bonus": bonus,
                "peer_percentile": None,
                # 13.4; READING (R32): 0 for a shop with a row and no appealed subject.
                "appeals_upheld": len(appealed[s]),
                "dt": D,
                "rules_version": version,
            }
        )
        for name, *_ in INDICATORS:
            r = rows[name]
            shop_indicators.append(
                {
                    "shop_id": s,
                    "indicator": name,
                    "dimension": r["dimension"],
                    "numerator": r["numerator"],
                    "denominator": r["denominator"],
                    "raw_value": r["raw_value"],
                    "prior": r["prior"],
                    "smoothed_value": r["smoothed_value"],
                    "indicator_score": r["indicator_score"],
                    "effective_weight": r["effective_weight"],
                    "points_lost": r["points_lost"],
                    "assessed": r["assessed"],
                    "excluded": excluded[s][name],  # 13.4
                    "dt": D,
                    "rules_version": version,
                }
            )
        shop_state[s] = {
            "score": score,
            "score_display": score_display,
            "rows": rows,
            "ins_share": ins_share,
            "status": status,
        }

    # peer percentile
    for row in shop_scores:
        if row["score"] is None or row["main_category_id"] is None:  # READING (R15)
            continue
        peers = [
            p
            for p in shop_scores
            if p["score"] is not None and p["main_category_id"] == row["main_category_id"]
        ]
        n = len(peers)
        if n > 1:
            lower = sum(
                1 for p in peers if p["shop_id"] != row["shop_id"] and p["score"] < row["score"]
            )
            row["peer_percentile"] = lower / (n - 1)

    # ---------------- section 7 PXI ----------------
    item_orders = {}
    for o in V:
        item_orders.setdefault(o["item_id"], []).append(o)
    items = {}
    for item_id, os_ in item_orders.items():
        paid = len(os_)
        # 7: (a) problem refund, (b) bad review, (c) late shipment; an order counts once.
        problem = sum(
            1
            for o in os_
            if o["order_id"] in problem_refund_orders
            or (o["review_rating"] is not None and o["review_rating"] <= 2)
            or info[o["order_id"]]["late"]
        )
        items[item_id] = {
            "shop_id": min(o["shop_id"] for o in os_),
            "category_id": min(o["category_id"] for o in os_),
            "paid": paid,
            "problem": problem,
        }
    cat_pool = {}
    for it in items.values():  # READING (R16): pooled over items of the item-level category
        p, q = cat_pool.get(it["category_id"], (0, 0))
        cat_pool[it["category_id"]] = (p + it["problem"], q + it["paid"])
    k_item = float(rules.get("k_item", 10))
    min_item_orders = int(rules.get("min_item_orders", 5))
    item_scores = []
    for item_id in sorted(items):
        it = items[item_id]
        p, q = cat_pool[it["category_id"]]
        prior = p / q
        smoothed = (it["problem"] + k_item * prior) / (it["paid"] + k_item)
        if it["paid"] >= min_item_orders:
            status, pxi = "scored", interp(smoothed, rules["pxi_knots"])
        else:
            status, pxi = "insufficient_orders", None
        item_scores.append(
            {
                "item_id": item_id,
                "shop_id": it["shop_id"],
                "category_id": it["category_id"],
                "paid_orders": it["paid"],
                "problem_orders": it["problem"],
                "smoothed_rate": smoothed,
                "pxi": pxi,
                "status": status,
                "category_percentile": None,
                "dt": D,
                "rules_version": version,
            }
        )
    for row in item_scores:
        if row["pxi"] is None:
            continue
        peers = [
            p
            for p in item_scores
            if p["pxi"] is not None and p["category_id"] == row["category_id"]
        ]
        n = len(peers)
        if n > 1:
            lower = sum(
                1 for p in peers if p["item_id"] != row["item_id"] and p["pxi"] < row["pxi"]
            )
            row["category_percentile"] = lower / (n - 1)

    # ---------------- section 8 labels ----------------
    prev_labels = {}
    prev_weights = {}
    if previous:
        for r in previous.get("shop_labels", []) or []:
            prev_labels[(r["shop_id"], r["label"])] = r
        for r in previous.get("shop_traffic_weights", []) or []:
            if r.get("weight") is not None:  # READING (R18)
                prev_weights[r["shop_id"]] = r["weight"]
    label_rules = rules.get("labels", {})
    yesterday = D - datetime.timedelta(days=1)
    shop_labels = []
    for s in shops:
        x = extra[s]
        st = shop_state[s]
        rows = st["rows"]
        # (value, n) per label  -- READING (R12)
        vals = {
            "fast_shipping": (
                (x["pick_us"] / US_PER_HOUR) / x["pick_n"] if x["pick_n"] else None,
                x["pick_n"],
            ),
            "damage_free_return": (
                x["dmg_agreed"] / x["dmg_n"] if x["dmg_n"] else None,
                x["dmg_n"],
            ),
            "fast_cs_reply": (x["reply_s"] / x["reply_n"] if x["reply_n"] else None, x["reply_n"]),
            "high_cs_satisfaction": (
                rows["cs_satisfaction_rate"]["raw_value"],
                rows["cs_satisfaction_rate"]["denominator"],
            ),
            "door_delivery": (
                rows["door_delivery_rate"]["raw_value"],
                rows["door_delivery_rate"]["denominator"],
            ),
            "return_insurance": (st["ins_share"], x["V"]),
            "top_experience": (st["score"], x["V"]),  # READING (R11)
        }
        for label, lower_better in LABELS:
            lr = label_rules.get(label)
            if lr is None:
                continue
            value, n = vals[label]
            enter, exit_ = float(lr["enter"]), float(lr["exit"])
            min_n = int(lr.get("min_n", 0))
            prev = prev_labels.get((s, label))
            held = False
            if value is not None and n >= min_n:
                if lower_better:
                    reaches = value <= enter
                    keeps = value <= exit_
                else:
                    reaches = value >= enter
                    keeps = value >= exit_
                # READING (R10)
                held = reaches or (prev is not None and keeps)
            if not held:
                continue
            since = D  # newly gained today
            if prev is not None:
                since = prev.get("since") or yesterday
            if label == "fast_shipping":
                text = "平均发货 {h:.0f} 小时".format(h=value)  # noqa: UP032 (spec text, literal)
            elif label == "fast_cs_reply":
                text = "客服平均 {s:.0f} 秒回复".format(s=value)  # noqa: UP032
            elif label == "high_cs_satisfaction":
                text = "客服满意度 {p:.0%}".format(p=value)  # noqa: UP032
            elif label == "top_experience":
                text = "体验分 {:.1f}".format(st["score_display"])
            else:
                text = {
                    "damage_free_return": "破损包退",
                    "door_delivery": "送货上门",
                    "return_insurance": "退货运费险",
                }[label]
            shop_labels.append(
                {
                    "shop_id": s,
                    "label": label,
                    "value": float(value),
                    "display_text": text,
                    "since": since,
                    "dt": D,
                    "rules_version": version,
                }
            )

    # ---------------- section 9 traffic weights ----------------
    priv = rules.get("privileges", {})
    m = float(rules.get("max_daily_change", 0.10))
    shop_weights = []
    for row in shop_scores:
        s = row["shop_id"]
        score = row["score"]
        scored = row["status"] == "scored" and score is not None
        target = interp(score, rules["shop_weight_knots"]) if scored else 1.0
        weight = target
        if s in prev_weights:
            w = float(prev_weights[s])
            weight = min(max(target, w * (1 - m)), w * (1 + m))
        if scored and score >= float(priv.get("autonomous_min_score", 4.8)):
            tier = "autonomous"
        elif scored and score >= float(priv.get("negotiate_first_min_score", 4.5)):
            tier = "negotiate_first"
        else:
            tier = "standard"
        shop_weights.append(
            {
                "shop_id": s,
                "target_weight": target,
                "weight": weight,
                "refund_only_tier": tier,
                "campaign_eligible": bool(
                    scored and score >= float(priv.get("campaign_min_score", 4.2))
                ),
                "dt": D,
                "rules_version": version,
            }
        )
    item_weights = []
    min_pxi = float(priv.get("campaign_min_pxi", 60.0))
    for row in item_scores:
        pxi = row["pxi"]
        item_weights.append(
            {
                "item_id": row["item_id"],
                "shop_id": row["shop_id"],
                "weight": interp(pxi, rules["item_weight_knots"]) if pxi is not None else 1.0,
                "campaign_eligible": pxi is not None and pxi >= min_pxi,
                "dt": D,
                "rules_version": version,
            }
        )

    return {
        "shop_scores": shop_scores,
        "shop_indicators": shop_indicators,
        "item_scores": item_scores,
        "shop_labels": shop_labels,
        "shop_traffic_weights": shop_weights,
        "item_traffic_weights": item_weights,
        "quarantine": quarantine,
    }
