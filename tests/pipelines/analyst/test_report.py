"""`expscore report` on the sample: one self-contained HTML file with every chart."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import polars as pl
import pytest
from plotly.offline import get_plotlyjs

from pipelines.analyst.report import CHARTS, write_report
from pipelines.errors import InputError
from pipelines.progress import Reporter
from tests.golden import golden_dates
from tests.pipelines.analyst_support import cli, publish_day


@pytest.fixture(scope="module")
def out(sample_output: Path) -> Path:
    return sample_output


@pytest.fixture(scope="module")
def page(out: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    html = tmp_path_factory.mktemp("html") / "report.html"
    write_report(out, html, days=30, reporter=Reporter(stream=_Sink(), fmt="plain"))
    return html.read_text(encoding="utf-8")


class _Sink:
    """A non-TTY stream that forgets what it is told."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def test_every_chart_is_there(page: str) -> None:
    for chart_id, title in CHARTS.items():
        assert f'<section id="{chart_id}">' in page, chart_id
        assert f"<h2>{title}</h2>" in page
        # a plotly figure is drawn into the section's div
        assert re.search(rf'Plotly\.newPlot\(\s*"chart-{chart_id}"', page), chart_id
    assert page.count("Plotly.newPlot(") == len(CHARTS)


def test_opens_offline(page: str) -> None:
    """No script, stylesheet, font or image is fetched: plotly.js is inlined, nothing is linked.

    The inlined library's own code mentions URLs (map tiles, its logo link, switched off); the
    page's markup around it must not reference any.
    """
    library = get_plotlyjs()
    assert page.count(library) == 1
    assert f'<script type="text/javascript">{library}</script>' in page
    markup = page.replace(library, "")
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"<script[^>]*\bsrc\s*=", markup, flags=re.IGNORECASE)
    assert not re.search(r"<link\b", markup, flags=re.IGNORECASE)
    assert not re.search(r"https?:|(?:src|href)\s*=\s*[\"']?//", markup, flags=re.IGNORECASE)
    assert not re.search(r"@import|url\(", markup, flags=re.IGNORECASE)


def test_headline_is_the_4_8_share_of_the_date(out: Path, page: str) -> None:
    day = golden_dates()[-1]
    scored = pl.read_parquet(out / "shop_scores" / f"dt={day}" / "part-0.parquet").filter(
        pl.col("status") == "scored"
    )
    share = scored.filter(pl.col("band") == "4.8+").height / scored.height
    assert f'<div class="value">{share:.1%}</div>' in page
    shops = pl.read_parquet(out / "shop_scores" / f"dt={day}" / "part-0.parquet").height
    assert f"{scored.height:,} / {shops:,}" in page
    first = golden_dates()[0]
    assert f"period {first} to {day}, {len(golden_dates())} published dates" in page


def test_cli_writes_the_file_and_is_deterministic(monkeypatch, capsys, out, tmp_path) -> None:
    paths = [tmp_path / "a.html", tmp_path / "b.html"]
    for path in paths:
        code, stdout, err = cli(
            monkeypatch, capsys, "report", "--out", str(out), "--html", str(path), "--days", "2"
        )
        assert code == 0
        assert stdout.startswith(f"wrote {path}: {golden_dates()[-1]}, 2 dates, 4.8+ share ")
        assert "event=report_done" in err  # plain progress lines: stderr is not a terminal
    assert paths[0].read_bytes() == paths[1].read_bytes()


def test_one_day_has_no_movers(monkeypatch, capsys, out, tmp_path) -> None:
    path = tmp_path / "one.html"
    code, _, _ = cli(
        monkeypatch, capsys, "report", "--out", str(out), "--html", str(path), "--days", "1"
    )
    assert code == 0
    assert "one date only: nothing to compare" in path.read_text(encoding="utf-8")


def test_bad_input_exits_2(monkeypatch, capsys, out, tmp_path) -> None:
    html = str(tmp_path / "r.html")
    code, _, err = cli(
        monkeypatch, capsys, "report", "--out", str(tmp_path / "none"), "--html", html
    )
    assert code == 2 and "no published shop_scores" in err
    code, _, err = cli(
        monkeypatch, capsys, "report", "--out", str(out), "--html", html, "--date", "2020-01-01"
    )
    assert code == 2 and "no shop_scores output for 2020-01-01" in err
    code, _, err = cli(
        monkeypatch, capsys, "report", "--out", str(out), "--html", str(tmp_path / "x" / "r.html")
    )
    assert code == 2 and "does not exist" in err


def test_exemption_and_appeal_panels_show_the_samples_rows(out: Path, page: str) -> None:
    """The sample's window holds the Spring Festival exemption and upheld appeals (v1.1): both
    panels draw them, with the numbers of the published columns."""
    from pipelines.analyst.report import load_report_data

    data = load_report_data(out, None, 7)
    day = golden_dates()[-1]
    indicators = pl.read_parquet(out / "shop_indicators" / f"dt={day}" / "part-0.parquet")
    assert data.exempted["rows"].sum() == indicators["excluded"].sum() > 0
    assert set(data.exempted["indicator"]) == {
        "delivery_hours", "track_anomaly_rate", "delivery_promise_rate",
    }  # fmt: skip
    shops = pl.read_parquet(out / "shop_scores" / f"dt={day}" / "part-0.parquet")
    last = data.appeals.filter(pl.col("dt") == day)["subjects"].item()
    assert last == shops["appeals_upheld"].sum() > 0
    for section in ("exemptions-applied", "appeals-upheld"):
        assert f'<section id="{section}">' in page
    assert "no exemption removed a row" not in page
    assert "no upheld appeal in the period" not in page


def test_days_below_one_are_refused(out: Path, tmp_path: Path) -> None:
    """The command line refuses `--days 0` itself; the function says why too."""
    html = tmp_path / "r.html"
    with pytest.raises(InputError, match=r"^report: --days must be at least 1, got 0$"):
        write_report(out, html, days=0, reporter=Reporter(stream=_Sink(), fmt="plain"))
    assert not html.exists()


def _sections(page: str) -> dict[str, str]:
    """Each chart's section of the page, by its id."""
    parts = page.split('<section id="')[1:]
    return {part.split('"', 1)[0]: part.split("</section>", 1)[0] for part in parts}


def test_a_period_with_nothing_to_draw_says_so_in_every_chart(tmp_path: Path) -> None:
    """Two published dates of a marketplace with only new shops (none scored), no labels,
    exemptions, appeals or quarantined rows: every chart says what it lacks instead of drawing
    an empty plot, and the headline share is a dash."""
    out = tmp_path / "out"
    d1, d2 = dt.date(2026, 3, 1), dt.date(2026, 3, 2)
    new_shop = {"status": "insufficient_orders", "band": "unscored", "appeals_upheld": 0}
    for day in (d1, d2):
        publish_day(
            out, day, {"shop_scores": [{"shop_id": 1, **new_shop}, {"shop_id": 2, **new_shop}]}
        )
    html = tmp_path / "report.html"
    data = write_report(out, html, days=7, reporter=Reporter(stream=_Sink(), fmt="plain"))
    assert (data.day, data.dates) == (d2, [d1, d2])
    page = html.read_text(encoding="utf-8")
    sections = _sections(page)
    assert set(sections) == set(CHARTS)
    expected = {
        "score-distribution": f"no scored shop on {d2}",
        "band-shares": "no scored shop in the period",
        "dimension-distributions": f"no scored shop on {d2}",
        "indicator-distributions": f"no assessed indicator of a scored shop on {d2}",
        "biggest-movers": "no shop's score changed",
        "labels-gained-lost": "no label gained or lost in the period",
        "exemptions-applied": "no exemption removed a row on the date",
        "appeals-upheld": "no upheld appeal in the period",
        "quarantine-counts": "no quarantined row in the period",
    }
    for chart_id, message in expected.items():
        assert f'"text":"{message}"' in sections[chart_id], chart_id
    assert "<p>No label held on the date.</p>" in sections["labels-gained-lost"]
    assert '<div class="kpi headline"><div class="value">–</div>' in page
    assert 'class="delta"' not in page  # no change of a share that does not exist
    assert '<div class="value">0 / 2</div>' in page  # shops scored / with activity
