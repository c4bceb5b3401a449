"""The web dashboard in a real browser (headless Debian chromium through Playwright).

Images are pushed to the local stack's registry and scanned; the tests read every page as a
person would. Screenshots go to ``$DASHBOARD_SCREENSHOTS`` when set (``docs/`` holds the
README's), else to the test's temporary folder.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from scanning.api import time_text
from scanning.store.advisory_index import index_published_at
from tests.integration.helpers import FUNCTION_KEY, App, push_and_scan

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium; make setup does)")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="the playwright package is not installed")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield launched
        launched.close()


@pytest.fixture
def dashboard(app: App, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DASHBOARD_KEY", FUNCTION_KEY)
    return app.host.base_url


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=DESKTOP)
    opened = context.new_page()
    yield opened
    context.close()


def _shoot(page: Any, tmp_path: Path, name: str) -> None:
    folder = Path(os.environ.get("DASHBOARD_SCREENSHOTS") or tmp_path)
    page.screenshot(path=str(folder / f"dashboard-{name}.png"), full_page=True)


def _sign_in(page: Any, base: str) -> None:
    page.goto(f"{base}/?code={FUNCTION_KEY}")


def _follow(page: Any, selector: str) -> None:
    """Click a link or a submit button and wait for the page it leads to."""
    with page.expect_navigation():
        page.click(selector)


def _rows(page: Any, caption: str) -> list[list[str]]:
    table = page.locator("table", has=page.locator(f"caption:text-is('{caption}')"))
    return [[cell.strip() for cell in row.locator("td").all_inner_texts()]
            for row in table.locator("tbody tr").all()]


def test_sign_in_form_asks_for_the_key_and_refuses_a_wrong_one(dashboard: str, page: Any,
                                                              tmp_path: Path) -> None:
    page.goto(f"{dashboard}/")
    first = (page.locator("h1").inner_text(), page.url)
    page.fill("#key", "not-the-key")
    _follow(page, "button[type=submit]")
    refused = page.locator("[role=alert]").inner_text()
    _shoot(page, tmp_path, "sign-in")
    page.fill("#key", FUNCTION_KEY)
    _follow(page, "button[type=submit]")
    cookies = page.context.cookies()
    assert (first, refused, page.locator("h1").inner_text(),
            [(cookie["name"], cookie["httpOnly"], cookie["sameSite"]) for cookie in cookies]) == (
        ("Sign in", f"{dashboard}/"), "That key is wrong.", "Overview",
        [("acrscan_session", True, "Strict")])


def test_code_parameter_signs_in_and_leaves_the_address(dashboard: str, page: Any) -> None:
    page.goto(f"{dashboard}/?code={FUNCTION_KEY}")
    assert (page.url, page.locator("h1").inner_text()) == (
        f"{dashboard}/", "Overview")


def _refresh_summary(page: Any) -> None:
    """Make the dashboard's summary now (the page's *Refresh now*), so it holds what the test
    just pushed whatever the summary timer did meanwhile."""
    _follow(page, "form.asof button")


def test_pages_show_a_pushed_image(app: App, dashboard: str, page: Any,
                                   tmp_path: Path) -> None:
    digest = push_and_scan(app, tmp_path, "dash-pages")
    _sign_in(page, dashboard)
    _refresh_summary(page)
    overview_cards = page.locator(".card").all_inner_texts()
    refreshed = page.locator("main p").first.inner_text()
    rescan = page.locator("main p").nth(1).inner_text()
    split = [row[:4] for row in _rows(page, "Active findings by severity")]
    top_vulnerabilities = _rows(page, "Top vulnerabilities")
    top_repositories = _rows(page, "Top repositories")
    chart = (page.locator("figure.chart svg[role=img] title").text_content(),
             page.locator("figure.chart polyline").count())
    page.click("text=The numbers, per day")
    trend = _rows(page, "Active findings per day")
    _shoot(page, tmp_path, "overview")
    _follow(page, "table >> text=ITEST-0002")
    searched = (page.locator("#cve").input_value(), len(_rows(page, "Affected images")))
    _follow(page, "nav >> text=Images")
    image_rows = [[*row[:13], row[14]] for row in _rows(page, "Images")]
    _shoot(page, tmp_path, "images")
    _follow(page, "table >> text=dash-pages")
    findings = [(row[0], row[1], row[5], row[7]) for row in _rows(page, "Active findings")]
    _shoot(page, tmp_path, "image")
    _follow(page, "nav >> text=Vulnerabilities")
    page.fill("#cve", "ITEST-0001")
    _follow(page, "form.filters button")
    affected = _rows(page, "Affected images")
    _shoot(page, tmp_path, "vulnerabilities")
    _follow(page, "nav >> text=Billing")
    billed = _rows(page, "Billed images")
    _shoot(page, tmp_path, "billing")
    published = index_published_at(app.store.clients.blob_service())
    today = datetime.now(UTC).date().isoformat()
    assert (refreshed, rescan, overview_cards[:2], split, top_vulnerabilities, top_repositories,
            chart, trend, searched, image_rows, findings, affected,
            [row[2] for row in billed]) == (
        f"Advisory index last published: {time_text(published)}",
        "Last weekly rescan: none yet.",
        ["0\nhealthy", "1\nunhealthy"],
        [["critical", "1", "0", "1"], ["high", "0", "0", "0"], ["medium", "0", "2", "2"],
         ["low", "0", "0", "0"], ["negligible", "0", "0", "0"], ["unknown", "0", "0", "0"]],
        [["ITEST-0001", "critical", "1"], ["ITEST-0002", "medium", "1"]],
        [[app.registry, "dash-pages", "1"]],
        (f"Active findings per day from {today} to {today}; latest: critical 1, high 0, "
         "medium 2, low 0, negligible 0, unknown 0", 6),
        [[today, "1", "0", "2", "0", "0", "0"]],
        ("ITEST-0002", 2),
        [[app.registry, "dash-pages", "v1", digest[7:19], "linux/amd64", "unhealthy",
          "1", "0", "2", "0", "0", "0", "1", ""]],
        [("ITEST-0001", "musl", "critical",
          "Upgrade musl from 1.2.4-r1 to 1.2.4-r2 (fixed in Alpine 3.18)"),
         ("ITEST-0002", "libcrypto3", "medium", "No fix is available yet in Alpine 3.18"),
         ("ITEST-0002", "libssl3", "medium", "No fix is available yet in Alpine 3.18")],
        [["ITEST-0001", f"dash-pages@{digest[7:19]}", app.registry, "musl", "1.2.4-r1",
          "1.2.4-r2", "critical", "fixed"]],
        ["dash-pages"])


def _repositories(page: Any) -> list[str]:
    return [row[1] for row in _rows(page, "Images")]


def test_images_sort_by_a_column_and_filter_fixable_ones(app: App, dashboard: str, page: Any,
                                                         tmp_path: Path) -> None:
    push_and_scan(app, tmp_path, "dash-sort-a")
    push_and_scan(app, tmp_path, "dash-sort-b")
    status, _ = app.api("rules", method="POST", body={
        "justification": "musl is patched", "criteria": {
            "vulnerabilityIds": ["ITEST-0001"], "repository": "dash-sort-b"}})
    _sign_in(page, dashboard)
    _follow(page, "nav >> text=Images")
    _refresh_summary(page)
    first = _repositories(page)
    _follow(page, "th a:has-text('Critical')")
    ascending = (_repositories(page), page.locator("th[aria-sort]").text_content())
    _follow(page, "th a:has-text('Critical')")
    descending = (_repositories(page), page.locator("th[aria-sort]").get_attribute("aria-sort"))
    page.check("#fixable")
    _follow(page, "form.filters button")
    fixable = (_repositories(page), page.url.split("?", 1)[1])
    response = page.goto(f"{page.url.split('?', 1)[0]}?sort=size")
    wrong = (response.status, page.locator("[role=alert]").inner_text())
    assert (status, first, ascending, descending, fixable, wrong) == (
        201, ["dash-sort-a", "dash-sort-b"],
        (["dash-sort-b", "dash-sort-a"], "Critical (sort descending)▲"),
        (["dash-sort-a", "dash-sort-b"], "descending"),
        (["dash-sort-a"], "sort=critical&order=desc&registry=&repository=&status=&severity="
                          "&fixable=1"),
        (400, "sort must be one of registry, repository, status, critical, high, pushed, "
              "pulled, assessed, got 'size'"))


def test_disable_from_the_image_page_then_delete_the_rule(app: App, dashboard: str, page: Any,
                                                          tmp_path: Path) -> None:
    digest = push_and_scan(app, tmp_path, "dash-rules")
    _sign_in(page, dashboard)
    page.goto(f"{dashboard}/image?{urlencode({'digest': digest})}")
    page.click("text=Disable…")
    page.fill("#d0-j", "musl is patched by the base image owner")
    _follow(page, "#d0-j >> xpath=.. >> button")
    disabled = [(row[0], row[1], row[9]) for row in _rows(page, "Disabled findings")]
    active = [row[0] for row in _rows(page, "Active findings")]
    _follow(page, "nav >> text=Rules")
    rules = [row[:4] for row in _rows(page, "Rules")]
    _shoot(page, tmp_path, "rules")
    _follow(page, "button[aria-label^='Delete rule']")
    notice = page.locator("[role=status]").inner_text()
    left = _rows(page, "Rules")
    _, image = app.api(f"images/{digest}")
    assert (disabled, active, len(rules), rules[0][1:], notice, left,
            image["counts"]["disabledTotal"]) == (
        [("ITEST-0001", "musl", f"{rules[0][0]}\nmusl is patched by the base image owner")],
        ["ITEST-0002", "ITEST-0002"], 1,
        ["musl is patched by the base image owner",
         f"vulnerabilityIds: ITEST-0001; packages: musl; digest: {digest}", "never"],
        f"Rule {rules[0][0]} deleted.", [], 0)


def _rules_form(page: Any, base: str, field: str, value: str, button: str) -> str:
    """Fill one field of a form on the rules page, submit it; the page's alert."""
    _sign_in(page, base)
    _follow(page, "nav >> text=Rules")
    page.fill(field, value)
    _follow(page, button)
    return str(page.locator("[role=alert]").inner_text())


def test_rule_form_says_what_is_missing(dashboard: str, page: Any) -> None:
    assert _rules_form(page, dashboard, "#r-just", "no criteria given",
                       "text=Create rule") == (
        "say what the rule disables: a vulnerability id, a package or a repository")


def _post(url: str, form: dict[str, str], cookie: str) -> int:
    request = urllib.request.Request(url, data=urlencode(form).encode(), method="POST",
                                     headers={"Cookie": cookie, "Content-Type":
                                              "application/x-www-form-urlencoded"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_a_form_without_its_csrf_token_is_refused(app: App, dashboard: str, page: Any) -> None:
    _sign_in(page, dashboard)
    (cookie,) = page.context.cookies()
    status = _post(f"{dashboard}/rules/create",
                   {"justification": "forged", "vulnerabilityIds": "ITEST-0001"},
                   f"{cookie['name']}={cookie['value']}")
    assert (status, app.store.rules.list()) == (403, ())


def test_phone_width_keeps_the_table_inside_its_scroller(app: App, dashboard: str,
                                                          browser: Any, tmp_path: Path) -> None:
    push_and_scan(app, tmp_path, "dash-phone")
    context = browser.new_context(viewport=PHONE)
    phone = context.new_page()
    try:
        _sign_in(phone, dashboard)
        phone.goto(f"{dashboard}/images")
        _shoot(phone, tmp_path, "images-phone")
        page_width = phone.evaluate("document.documentElement.scrollWidth")
    finally:
        context.close()
    assert page_width == PHONE["width"]


def _download(page: Any, base: str, digest: str, link_text: str,
              tmp_path: Path) -> tuple[str, Any]:
    """The file name and the JSON of a download linked from the image's page."""
    _sign_in(page, base)
    page.goto(f"{base}/image?{urlencode({'digest': digest})}")
    with page.expect_download() as download:
        page.click(f"text={link_text}")
    saved = tmp_path / "download.json"
    download.value.save_as(saved)
    return download.value.suggested_filename, json.loads(saved.read_text())


def test_sarif_download_holds_the_active_findings(app: App, dashboard: str, page: Any,
                                                  tmp_path: Path) -> None:
    digest = push_and_scan(app, tmp_path, "dash-sarif")
    name, sarif = _download(page, dashboard, digest, "SARIF download", tmp_path)
    assert (name,
            [(result["ruleId"], result["level"], result["properties"]["fixedVersion"])
             for result in sarif["runs"][0]["results"]]) == (
        f"dash-sarif-{digest[7:19]}.sarif",
        [("ITEST-0001", "error", "1.2.4-r2"), ("ITEST-0002", "warning", ""),
         ("ITEST-0002", "warning", "")])


def test_billing_shows_a_chosen_month(app: App, dashboard: str, page: Any,
                                      tmp_path: Path) -> None:
    push_and_scan(app, tmp_path, "dash-billing")
    _sign_in(page, dashboard)
    page.goto(f"{dashboard}/billing?month=2020-01")
    empty = (page.locator(".card").all_inner_texts(), _rows(page, "Billed images"))
    this_month = datetime.now(UTC).strftime("%Y-%m")
    _follow(page, f"a:text-is('{this_month}')")
    _refresh_summary(page)
    per_month = [row for row in _rows(page, "Billing per month") if row[0] == this_month]
    assert (empty, page.locator(".card").first.inner_text(), per_month) == (
        (["0\nimages billed in 2020-01", "0 USD\ntotal at 0.29 each"], []),
        f"1\nimages billed in {this_month}", [[this_month, "1", "0.29 USD"]])


def test_an_unknown_image_is_a_page_that_says_so(dashboard: str, page: Any) -> None:
    _sign_in(page, dashboard)
    missing = "sha256:" + "0" * 64
    response = page.goto(f"{dashboard}/image?{urlencode({'digest': missing})}")
    assert (response.status, page.locator("h1").inner_text(),
            page.locator("[role=alert]").inner_text()) == (
        404, "Something went wrong", f"no image {missing}")


def test_the_first_tab_stop_skips_to_the_content(dashboard: str, page: Any) -> None:
    _sign_in(page, dashboard)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"


def test_cyclonedx_download_holds_the_inventory_and_findings(app: App, dashboard: str,
                                                             page: Any, tmp_path: Path) -> None:
    digest = push_and_scan(app, tmp_path, "dash-cdx")
    name, bom = _download(page, dashboard, digest, "CycloneDX download", tmp_path)
    assert (name, bom["bomFormat"],
            sorted(component["name"] for component in bom["components"]),
            sorted(vulnerability["id"] for vulnerability in bom["vulnerabilities"])) == (
        f"dash-cdx-{digest[7:19]}.cdx.json", "CycloneDX",
        ["busybox", "libcrypto3", "libssl3", "musl"], ["ITEST-0001", "ITEST-0002"])


def test_openvex_import_from_the_rules_page(app: App, dashboard: str, page: Any) -> None:
    digest = "sha256:" + "1" * 64
    document = {"@context": "https://openvex.dev/ns/v0.2.0", "@id": "https://example.invalid/vex",
                "statements": [{"vulnerability": {"name": "ITEST-0002"},
                                "products": [{"@id": f"pkg:oci/app@{digest}"}],
                                "status": "not_affected",
                                "justification": "vulnerable_code_not_present"}]}
    _sign_in(page, dashboard)
    _follow(page, "nav >> text=Rules")
    page.fill("#r-vex", json.dumps(document))
    _follow(page, "button:text-is('Import')")
    rules = [(row[2], row[4]) for row in _rows(page, "Rules")]
    assert (page.locator("[role=status]").inner_text(), rules) == (
        "Rules imported from OpenVEX: 1.",
        [(f"vulnerabilityIds: ITEST-0002; digest: {digest}",
          "openvex:https://example.invalid/vex")])


def test_a_broken_openvex_document_says_why(dashboard: str, page: Any) -> None:
    assert _rules_form(page, dashboard, "#r-vex", "{not json",
                       "button:text-is('Import')") == (
        "The OpenVEX document is not JSON: Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1)")


def test_the_image_page_lists_every_layer_with_what_it_introduced(
        app: App, dashboard: str, page: Any, tmp_path: Path) -> None:
    digest = push_and_scan(app, tmp_path, "dash-layers")
    _sign_in(page, dashboard)
    page.goto(f"{dashboard}/image?{urlencode({'digest': digest})}")
    # The test image (helpers.alpine_layers): layer 1 the Alpine 3.18 base with the apk
    # database of four packages (musl, libssl3, libcrypto3 have findings), layer 2 a marker
    # file no analyzer reads.
    assert _rows(page, "Layers of linux/amd64") == [
        ["1", "1a079cd7ee95", "752 B", "COPY layer1 /", "4", "ITEST-0001, ITEST-0002"],
        ["2", "fff59be8c876", "145 B", "COPY layer2 /", "0", "—"]]


# Every form control without a label (its <label>, aria-label or aria-labelledby), and every
# piece of text whose colour against the background behind it is under WCAG 2.1 AA's ratio
# (4.5:1; 3:1 for large text: 24 px, or 18.66 px bold).
_ACCESSIBILITY_PROBLEMS = """() => {
  const unlabelled = [...document.querySelectorAll(
      'input:not([type=hidden]), select, textarea')]
    .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                  && !el.getAttribute('aria-labelledby'))
    .map(el => 'unlabelled ' + el.tagName.toLowerCase() + ' ' + (el.name || el.id));
  const rgb = text => text.match(/[\\d.]+/g).map(Number);
  const luminance = ([r, g, b]) => {
    const channel = c => { c /= 255; return c <= 0.03928 ? c / 12.92
                                                     : Math.pow((c + 0.055) / 1.055, 2.4); };
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  };
  const background = el => {
    for (let node = el; node; node = node.parentElement) {
      const colour = rgb(getComputedStyle(node).backgroundColor);
      if (colour.length < 4 || colour[3] > 0) return colour.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const low = [];
  for (const el of document.querySelectorAll('body *')) {
    const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    const style = getComputedStyle(el);
    if (!own || style.visibility === 'hidden' || style.display === 'none') continue;
    const [fg, bg] = [luminance(rgb(style.color).slice(0, 3)), luminance(background(el))];
    const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5))
      low.push('contrast ' + ratio.toFixed(2) + ' ' + el.tagName.toLowerCase() + ' '
               + el.textContent.trim().slice(0, 30));
  }
  return unlabelled.concat(low);
}"""


def test_every_page_labels_its_controls_and_meets_contrast(app: App, dashboard: str,
                                                           page: Any, tmp_path: Path) -> None:
    digest = push_and_scan(app, tmp_path, "dash-a11y")
    _sign_in(page, dashboard)
    _refresh_summary(page)
    problems = {}
    for path in ("/", "/images", f"/image?{urlencode({'digest': digest})}",
                 "/vulnerabilities?cve=ITEST-0001", "/rules", "/billing"):
        page.goto(dashboard + path)
        problems[path] = page.evaluate(_ACCESSIBILITY_PROBLEMS)
    page.goto(f"{dashboard}/?code=wrong-key")  # the sign-in form
    problems["sign-in"] = page.evaluate(_ACCESSIBILITY_PROBLEMS)
    assert problems == {path: [] for path in problems}


def test_the_accessibility_probe_finds_what_it_looks_for(page: Any) -> None:
    page.set_content(
        '<body style="background:#fff"><p style="color:#999">pale text</p>'
        '<p style="color:#767676">just dark enough</p>'
        '<h1 style="color:#949494;font-size:24px">large pale</h1>'
        '<label>named <input name="named"></label><input name="bare">'
        '<input type="hidden" name="token"><select aria-label="pick"></select></body>')
    assert page.evaluate(_ACCESSIBILITY_PROBLEMS) == [
        "unlabelled input bare", "contrast 2.85 p pale text"]
