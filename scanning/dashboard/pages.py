"""The dashboard's pages: one request in, one HTML page (or redirect) out.

Pages read through the same store calls and handlers as the JSON API (``scanning.api``), so
a page shows what the API answers; a failed read becomes a page that says what failed,
never a half-drawn one.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from scanning import api
from scanning.assessment import Verdict
from scanning.dashboard import auth
from scanning.dashboard.charts import trend_chart
from scanning.dashboard.html import badge, bars, e, hidden, link, page, table, url
from scanning.dashboard.listing import (
    SORTS,
    ImageQuery,
    Selection,
    page_parameter,
    pages_of,
    parse_query,
    select,
)
from scanning.errors import BadRequest, NotFound
from scanning.matching import package_ecosystems
from scanning.model import AssessmentStatus, Finding
from scanning.principal import entra_auth_enabled
from scanning.report import (
    PlatformReport,
    ReportPackage,
    ScanReport,
    render_cyclonedx,
    render_sarif,
    report_packages,
)
from scanning.rules import DisableRule, rule_to_json
from scanning.service.evaluation import parse_inventories
from scanning.service.rules import current_verdict, load_rules
from scanning.service.summary import (
    SEVERITIES,
    BillingMonth,
    ListedImage,
    RescanSummary,
    SeverityTotal,
    billing_months,
    image_findings,
    images_with,
    listing_or_refresh,
    month_billing,
    overview_or_refresh,
    package_term,
    refresh_summary,
    vulnerability_term,
)
from scanning.store import ImageRecord, ScanFilter, Store
from scanning.store.advisory_index import index_published_at
from scanning.store.billing import check_month, price_from_settings

IMAGES_PER_BILLING_PAGE = 100
SEARCH_IMAGES_PAGE = 10  # images whose findings (whole rows) a Vulnerabilities page reads

# App Service Authentication's own sign-in, coming back to the dashboard afterwards.
ENTRA_SIGN_IN = "/.auth/login/aad?post_login_redirect_uri=/"


@dataclass(frozen=True, slots=True, kw_only=True)
class DashboardRequest:
    method: str
    path: str  # after the site root, no leading slash
    query: Mapping[str, str]
    form: Mapping[str, str]
    cookies: Mapping[str, str]
    headers: Mapping[str, str]  # lower-case names
    secure: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class DashboardResponse:
    status: int
    body: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str = "text/html"


@dataclass(frozen=True, slots=True, kw_only=True)
class Viewer:
    identity: str
    csrf: str


def _html(status: int, title: str, body: str, current: str, viewer: Viewer | None,
          headers: tuple[tuple[str, str], ...] = ()) -> DashboardResponse:
    return DashboardResponse(status=status, body=page(
        title, body, current, signed_in=viewer is not None,
        csrf=viewer.csrf if viewer else ""), headers=headers)


def _redirect(location: str, *extra: tuple[str, str]) -> DashboardResponse:
    return DashboardResponse(status=303, headers=(("Location", location), *extra))


# ---------------------------------------------------------------- sign-in


def _sign_in_page(status: int, message: str) -> DashboardResponse:
    problem = f'<p class="error" role="alert">{e(message)}</p>' if message else ""
    body = (f"{problem}<form method=\"post\" action=\"{e(url('signin'))}\">"
            '<label for="key">Function key</label>'
            '<input id="key" name="key" type="password" required autocomplete="current-password">'
            ' <button type="submit">Sign in</button></form>'
            "<p>Locally, the key is the one <code>python -m scanning local up</code> printed; "
            "opening the dashboard with <code>?code=KEY</code> signs in too.</p>"
            + (f'<p><a href="{e(ENTRA_SIGN_IN)}">Sign in with Microsoft Entra ID</a></p>'
               if entra_auth_enabled() else ""))
    return _html(status, "Sign in", body, "", None)


def _signed_in_redirect(target: str, secure: bool) -> DashboardResponse:
    return _redirect(target, ("Set-Cookie", auth.session_cookie(auth.dashboard_key(), secure)))


# ---------------------------------------------------------------- overview


def _as_of_form(made_at: datetime, viewer: Viewer, back: str = "") -> str:
    """When the summary the page shows was made, and a button to make it again now."""
    return (f'<form class="asof" method="post" action="{e(url("summary/refresh"))}">'
            f"<span>Summary as of {e(api.time_text(made_at.replace(microsecond=0)))} (made "
            "every 5 minutes, after a rescan, an advisory refresh or a rule change)</span> "
            f'{hidden("csrf", viewer.csrf)}{hidden("back", back) if back else ""}'
            '<button type="submit">Refresh now</button></form>')


def _rescan_text(rescan: RescanSummary | None) -> str:
    if rescan is None:
        return "Last weekly rescan: none yet."
    state = "complete" if rescan.complete else "running"
    failed = f", {rescan.failed} failed" if rescan.failed else ""
    failed += f", {rescan.failed_chunks} chunks failed" if rescan.failed_chunks else ""
    return (f"Last weekly rescan: <code>{e(rescan.id)}</code>, started "
            f"{e(rescan.started_at)}, {state}: {rescan.chunks_done} of {rescan.chunks_total} "
            f"chunks, {rescan.reassessed} of {rescan.images_total} images re-assessed "
            f"({rescan.new_findings} with new findings{e(failed)}), {rescan.to_reanalyze} to "
            f"re-analyse. Progress: <code>GET /api/rescans/{e(rescan.id)}</code>.")


def _severity_split(totals: tuple[SeverityTotal, ...]) -> str:
    top = max((total.fixable + total.not_fixable for total in totals), default=0) or 1
    rows = [[f'<span class="{total.severity.value}">{e(total.severity.value)}</span>',
             str(total.fixable), str(total.not_fixable), str(total.fixable + total.not_fixable),
             f'<span class="bar fixable" style="width:{total.fixable * 12 / top:.2f}rem">'
             f'</span><span class="bar" style="width:{total.not_fixable * 12 / top:.2f}rem">'
             "</span>"]
            for total in totals]
    return table(("Severity", "Fixable", "Not fixable", "Total", "Chart"), rows,
                 "Active findings by severity")


def overview(store: Store, request: DashboardRequest, viewer: Viewer,
             now: datetime) -> DashboardResponse:
    summary = overview_or_refresh(store, now)
    statuses = dict(summary.statuses)
    refreshed = index_published_at(store.clients.blob_service())
    status_cards = "".join(
        f'<a class="card" href="{e(url("images", {"status": status.value}))}">'
        f"<b>{statuses.get(status.value, 0)}</b>{e(status.value.replace('_', ' '))}</a>"
        for status in AssessmentStatus)
    body = (f"<p>Advisory index last published: "
            f"{e(api.time_text(refreshed) or 'never: no image can be assessed yet')}</p>"
            f"<p>{_rescan_text(summary.last_rescan)}</p>"
            + _as_of_form(summary.made_at, viewer)
            + f'<h2>Images by status</h2><div class="cards">{status_cards}</div>'
            "<h2>Active findings by severity</h2>"
            '<p class="legend-note"><span class="bar fixable key"></span> fixable (a fixed '
            'version exists) <span class="bar key"></span> not fixable</p>'
            + _severity_split(summary.severities)
            + "<h2>Active findings per day</h2>" + trend_chart(summary.trend)
            + "<h2>Top vulnerabilities by images affected</h2>"
            + table(("Vulnerability", "Severity", "Images"), (
                (link("vulnerabilities", item.id, {"cve": item.id}),
                 f'<span class="{item.severity.value}">{e(item.severity.value)}</span>',
                 str(item.images))
                for item in summary.top_vulnerabilities),
                "Top vulnerabilities", "No image has an active finding.")
            + "<h2>Top repositories by critical + high</h2>"
            + table(("Registry", "Repository", "Critical + high"), (
                (e(item.registry), link("images", item.repository, {
                    "registry": item.registry, "repository": item.repository}),
                 str(item.critical_high))
                for item in summary.top_repositories),
                "Top repositories", "No repository has a critical or high finding."))
    return _html(200, "Overview", body, "", viewer)


def refresh_summary_action(store: Store, request: DashboardRequest, viewer: Viewer,
                           now: datetime) -> DashboardResponse:
    refresh_summary(store, now)
    back = request.form.get("back", "")
    return _redirect(back if back.startswith((url("images"), url("billing"),
                                              url("vulnerabilities"))) else url(""))


# ---------------------------------------------------------------- images


def _counts_cells(image: ListedImage) -> list[str]:
    return [f'<span class="{severity.value}">{count}</span>'
            for severity, count in zip(SEVERITIES, image.active, strict=True)]


def _sort_header(name: str, query: ImageQuery) -> str:
    """A column header that sorts by ``name``: ascending first, then the other way."""
    text = SORTS[name][0]
    current = query.sort == name
    descending = current and not query.descending
    target = url("images", query.parameters(sort=name, order="desc" if descending else "",
                                            page=""))
    sort_state = (f' aria-sort="{"descending" if query.descending else "ascending"}"'
                  if current else "")
    arrow = ("▼" if query.descending else "▲") if current else ""
    hint = f"sort {'descending' if descending else 'ascending'}"
    return (f'<th scope="col"{sort_state}><a href="{e(target)}">{e(text)}'
            f'<span class="visually-hidden"> ({hint})</span>'
            f'<span aria-hidden="true">{arrow}</span></a></th>')


def _images_table(selection: Selection, query: ImageQuery) -> str:
    if not selection.images:
        return "<p>No image matches these filters.</p>"
    sortable = {"Registry": "registry", "Repository": "repository", "Status": "status",
                "Critical": "critical", "High": "high", "Last pushed": "pushed",
                "Last pulled": "pulled", "Assessed": "assessed"}
    headers = ("Registry", "Repository", "Tags", "Digest", "Platforms", "Status",
               *(severity.value.capitalize() for severity in SEVERITIES), "Fixable",
               "Last pushed", "Last pulled", "Assessed")
    head = "".join(_sort_header(sortable[name], query) if name in sortable
                   else f'<th scope="col">{e(name)}</th>' for name in headers)
    rows = "".join(
        "<tr>" + "".join(f"<td>{cell}</td>" for cell in (
            e(image.registry),
            link("image", image.repository, {"registry": image.registry,
                                             "repository": image.repository,
                                             "digest": image.digest}),
            e(", ".join(image.tags)), f"<code>{e(image.digest[7:19])}</code>",
            e(", ".join(image.platforms)), badge(image.status or None),
            *_counts_cells(image), str(image.fixable), _shown_time(image.last_pushed),
            _shown_time(image.last_pulled), _shown_time(image.assessed_at))) + "</tr>"
        for image in selection.images)
    return (f'<div class="wrap"><table><caption class="visually-hidden">Images</caption>'
            f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>")


def _shown_time(text: str) -> str:
    """A listed time to the minute, in UTC (the exact one in ``datetime``): narrow enough
    for the table to fit 1280 pixels."""
    if not text:
        return ""
    moment = datetime.fromisoformat(text).astimezone(UTC)
    return (f'<time datetime="{e(api.time_text(moment))}">{moment:%Y-%m-%d %H:%M}</time>')


def _pager(target: str, page_number: int, pages: int, first: int, shown: int, matched: int,
           parameters: Callable[[str], Mapping[str, str]]) -> str:
    """Where this page is among ``matched`` images, and links to the others (``parameters``
    gives the address parameters of a page number)."""
    counted = (f"Images {first} to {first + shown - 1} of {matched}, page {page_number} of "
               f"{pages}" if matched else "No image")
    steps = [(label, number) for label, number in (
        ("First", 1), ("Previous", page_number - 1), ("Next", page_number + 1),
        ("Last", pages)) if 1 <= number <= pages and number != page_number]
    links = " ".join(link(target, f"{label} page", parameters(str(number)))
                     for label, number in steps)
    return f'<nav class="pager" aria-label="Pages of images"><span>{counted}</span> {links}</nav>'


def _image_filters(query: ImageQuery) -> str:
    options = "".join(f'<option value="{e(status.value)}"'
                      + (" selected" if query.status == status.value else "")
                      + f">{e(status.value.replace('_', ' '))}</option>"
                      for status in AssessmentStatus)
    severity_options = "".join(f'<option value="{e(severity.value)}"'
                               + (" selected" if query.severity is severity else "")
                               + f">{e(severity.value)}</option>" for severity in SEVERITIES)
    kept = "".join(hidden(name, value) for name, value in query.parameters().items()
                   if name in ("sort", "order"))
    return (f'<form class="filters" method="get" action="{e(url("images"))}">{kept}'
            f'<div><label for="registry">Registry</label><input id="registry" '
            f'name="registry" value="{e(query.registry)}"></div>'
            f'<div><label for="repository">Repository contains</label><input id="repository" '
            f'name="repository" value="{e(query.repository)}"></div>'
            f'<div><label for="status">Status</label><select id="status" name="status">'
            f'<option value="">any</option>{options}</select></div>'
            f'<div><label for="severity">Minimum severity</label><select id="severity" '
            f'name="severity"><option value="">any</option>{severity_options}</select></div>'
            '<div><input id="fixable" name="fixable" type="checkbox" value="1"'
            + (" checked" if query.fixable else "")
            + '> <label for="fixable" class="inline">Fixable only</label></div>'
            '<button type="submit">Filter</button></form>')


def images_page(store: Store, request: DashboardRequest, viewer: Viewer,
                now: datetime) -> DashboardResponse:
    query = parse_query(request.query)
    listing = listing_or_refresh(store, now)
    selection = select(listing.images, query)
    as_of = _as_of_form(listing.made_at, viewer, url("images", query.parameters()))
    body = (_image_filters(query) + as_of + _images_table(selection, query)
            + _pager("images", query.page, selection.pages, selection.first,
                     len(selection.images), selection.matched,
                     lambda number: query.parameters(page=number)))
    return _html(200, "Images", body, "images", viewer)


# ---------------------------------------------------------------- one image


def _cvss(finding: Finding) -> str:
    return ", ".join(f"{score.base_score} (v{score.version})" for score in finding.cvss)


def _finding_row(finding: Finding) -> list[str]:
    aliases = f"<br><small>{e(', '.join(finding.aliases))}</small>" if finding.aliases else ""
    return [f"<strong>{e(finding.id)}</strong>{aliases}", e(finding.package),
            e(finding.installed_version), e(finding.fixed_version),
            e(finding.fix_status.value.replace("_", " ")),
            f'<span class="{finding.severity.value}">{e(finding.severity.value)}</span>',
            e(_cvss(finding)), e(finding.remediation),
            f"<code>{e(finding.layer_digest[7:19])}</code>"]


_FINDING_HEADERS = ("Vulnerability", "Package", "Installed", "Fixed", "Fix status", "Severity",
                    "CVSS", "Remediation", "Layer")


def _disable_form(viewer: Viewer, finding: Finding, image: Mapping[str, str],
                  index: int) -> str:
    """Creates a rule hiding ``finding`` in this image (scope: the image or its repository)."""
    field = f"d{index}"
    return (f'<details><summary>Disable…</summary><form method="post" '
            f'action="{e(url("rules/create"))}">{hidden("csrf", viewer.csrf)}'
            f'{hidden("vulnerabilityIds", finding.id)}{hidden("packages", finding.package)}'
            f'{hidden("digest", image["digest"])}{hidden("imageRepository", image["repository"])}'
            f'{hidden("back", url("image", image))}'
            f'<label for="{field}-j">Justification</label>'
            f'<input id="{field}-j" name="justification" required minlength="3">'
            f'<label for="{field}-x">Expires (optional)</label>'
            f'<input id="{field}-x" name="expires" type="date">'
            f'<label for="{field}-s">Scope</label><select id="{field}-s" name="scope">'
            f'<option value="image">this image</option>'
            f'<option value="repository">every image of {e(image["repository"])}</option>'
            f'</select> <button type="submit">Create rule</button></form></details>')


def _assessed_image(store: Store, query: Mapping[str, str], rules: tuple[DisableRule, ...],
                    now: datetime) -> tuple[ImageRecord, Verdict | None]:
    """The image the query names, and its verdict with the current rules."""
    digest = api.digest_parameter(api.text_parameter(query, "digest"))
    image = api.find_image(store, digest, api.text_parameter(query, "registry"),
                           api.text_parameter(query, "repository"))
    return image, current_verdict(
        image, store.findings_of(image.registry, image.repository, image.digest), rules, now)


def _report(image: ImageRecord, verdict: Verdict | None,
            packages: Mapping[str, tuple[ReportPackage, ...]]) -> ScanReport:
    """The image's active findings (and ``packages`` by platform) as the CLI reports them."""
    if verdict is None:
        raise NotFound(f"{image.repository}@{image.digest} has not been assessed yet")
    status = verdict.status
    platforms = tuple(
        PlatformReport(platform=result.platform, os=result.os, status=status,
                       packages=packages.get(result.platform, ()),
                       findings=tuple(finding for finding in result.findings
                                      if not finding.disabled_by))
        for result in verdict.platforms)
    return ScanReport(reference=f"{image.registry}/{image.repository}@{image.digest}",
                      digest=image.digest, platforms=platforms)


def _download(image: ImageRecord, body: str, content_type: str,
              extension: str) -> DashboardResponse:
    name = f"{image.repository.replace('/', '_')}-{image.digest[7:19]}.{extension}"
    return DashboardResponse(status=200, body=body, content_type=content_type,
                             headers=(("Content-Disposition", f'attachment; filename="{name}"'),))


def sarif_download(store: Store, request: DashboardRequest, viewer: Viewer,
                   now: datetime) -> DashboardResponse:
    """The image's active findings as SARIF 2.1.0 (what ``acr-scan scan --format sarif`` writes)."""
    image, verdict = _assessed_image(store, request.query, load_rules(store), now)
    return _download(image, render_sarif(_report(image, verdict, {})),
                     "application/sarif+json", "sarif")


def cyclonedx_download(store: Store, request: DashboardRequest, viewer: Viewer,
                       now: datetime) -> DashboardResponse:
    """A CycloneDX BOM of the stored inventory with the active findings (``scan --format
    cyclonedx``)."""
    image, verdict = _assessed_image(store, request.query, load_rules(store), now)
    inventories = parse_inventories(store.blobs.get_inventory(image.registry, image.digest),
                                    image.registry, image.digest)
    if inventories is None:
        raise NotFound(f"the stored inventory of {image.repository}@{image.digest} was made by "
                       "another analyzer version; the next rescan replaces it")
    packages = {str(inventory.platform): report_packages(inventory.packages,
                                                         package_ecosystems(inventory.os))
                for inventory in inventories}
    return _download(image, render_cyclonedx(_report(image, verdict, packages),
                                             timestamp=api.time_text(now) or ""),
                     "application/vnd.cyclonedx+json", "cdx.json")


def _size_text(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / (1024 * 1024):.1f} MiB"


def _layers_section(store: Store, image: ImageRecord,
                    active: list[tuple[str, Finding]]) -> str:
    """Every layer of each platform, in order, with its Dockerfile instruction, the packages
    and the active findings it introduced; from the stored inventory."""
    try:
        inventories = parse_inventories(store.blobs.get_inventory(image.registry, image.digest),
                                        image.registry, image.digest)
        problem = "" if inventories is not None else (
            "the stored inventory was made by another analyzer version; the next rescan "
            "replaces it")
    except NotFound as error:
        inventories, problem = None, str(error)
    if inventories is None:
        # Without the inventory, the findings still name the layers that introduced them.
        introduced: dict[tuple[str, str], set[str]] = {}
        for _, finding in active:
            introduced.setdefault((finding.layer_digest, finding.layer_instruction),
                                  set()).add(finding.id)
        return (f'<h2>Layers</h2><p class="error" role="status">The layer list is not '
                f"available: {e(problem)}. The layers that introduced an active finding:</p>"
                + table(("Layer", "Instruction", "Findings introduced"), (
                    (f"<code>{e(digest[7:19])}</code>", f"<code>{e(instruction)}</code>",
                     e(", ".join(sorted(ids))))
                    for (digest, instruction), ids in introduced.items()), "Layers",
                    "No layer introduced an active finding."))
    sections = []
    for inventory in inventories:
        platform = str(inventory.platform)
        packages = Counter(package.layer_digest for package in inventory.packages)
        findings: dict[str, set[str]] = {}
        for finding_platform, finding in active:
            if finding_platform == platform:
                findings.setdefault(finding.layer_digest, set()).add(finding.id)
        heading = f"<h2>Layers of {e(platform)}</h2>" if len(inventories) > 1 else \
            "<h2>Layers</h2>"
        sections.append(heading + table(
            ("#", "Layer", "Size", "Instruction", "Packages introduced",
             "Active findings introduced"), (
                (str(index), f"<code>{e(layer.digest[7:19])}</code>", e(_size_text(layer.size)),
                 f"<code>{e(layer.instruction or '—')}</code>", str(packages[layer.digest]),
                 e(", ".join(sorted(findings.get(layer.digest, ()))) or "—"))
                for index, layer in enumerate(inventory.layers, start=1)),
            f"Layers of {platform}", "The inventory lists no layer."))
    return "".join(sections)


def image_page(store: Store, request: DashboardRequest, viewer: Viewer,
               now: datetime) -> DashboardResponse:
    rules = {rule.id: rule for rule in load_rules(store)}
    image, verdict = _assessed_image(store, request.query, tuple(rules.values()), now)
    ref = {"registry": image.registry, "repository": image.repository, "digest": image.digest}
    results = verdict.platforms if verdict is not None else ()
    status = verdict.status.value if verdict is not None else None
    oses = api.platform_os(image)
    platforms = table(("Platform", "OS"), (
        (e(platform), e(oses[platform].pretty_name if platform in oses else "not detected"))
        for platform in dict.fromkeys([*image.platforms, *(r.platform for r in results)])),
        "Platforms", "No platform was read.")
    active = [(result.platform, finding) for result in results for finding in result.findings
              if not finding.disabled_by]
    disabled = [(result.platform, finding) for result in results
                for finding in result.findings if finding.disabled_by]
    findings = table((*_FINDING_HEADERS, "Action"), (
        [*_finding_row(finding), _disable_form(viewer, finding, ref, index)]
        for index, (_, finding) in enumerate(
            sorted(active, key=lambda item: (-item[1].severity.rank, item[1].id)))),
        "Active findings", "No active finding.")
    hidden_rows = table((*_FINDING_HEADERS, "Disabled by"), (
        [*_finding_row(finding),
         e(finding.disabled_by) + (f"<br><small>{e(rules[finding.disabled_by].justification)}"
                                   "</small>" if finding.disabled_by in rules else "")]
        for _, finding in disabled), "Disabled findings", "No disabled finding.")
    layer_rows = _layers_section(store, image, active)
    scans = store.scans.list(ScanFilter(registry=image.registry, repository=image.repository,
                                        digest=image.digest), 20, None).items
    history = table(("Started", "Trigger", "Outcome", "Seconds", "Error"), (
        (e(api.time_text(scan.started)), e(scan.trigger.value),
         e(scan.outcome.value if scan.outcome else "running"),
         e(scan.duration_seconds), e(scan.error))
        for scan in scans), "Scan history", "No scan recorded.")
    api_url = (f"/api/images/{image.digest}?registry={image.registry}"
               f"&repository={image.repository}")
    counts = verdict.counts if verdict is not None else image.counts
    body = (f"<p>{badge(status)} <code>{e(image.registry)}/{e(image.repository)}"
            f"@{e(image.digest)}</code></p>"
            f"<p>Tags: {e(', '.join(image.tags) or 'none')} · reason: {e(image.reason or '—')}"
            f" · {counts.active_total} active, {counts.disabled_total} disabled findings</p>"
            f'<p><a href="{e(api_url)}">API JSON</a> (needs the function key) · '
            f'{link("image.sarif", "SARIF download", ref)} · '
            f'{link("image.cdx.json", "CycloneDX download", ref)}</p>'
            f"<h2>Platforms</h2>{platforms}<h2>Findings</h2>{findings}"
            f"{layer_rows}<h2>Disabled findings</h2>{hidden_rows}"
            f"<h2>Scan history</h2>{history}")
    return _html(200, image.repository, body, "images", viewer)


# ---------------------------------------------------------------- vulnerabilities


def _searched(finding: Finding, cve: str, package: str) -> bool:
    """The search's match, as the API's: an id or alias, a package or source package, in any
    case."""
    return ((not cve or cve.casefold() in (name.casefold()
                                           for name in (finding.id, *finding.aliases)))
            and (not package or package.casefold() in (finding.package.casefold(),
                                                       finding.source_package.casefold())))


def vulnerabilities_page(store: Store, request: DashboardRequest, viewer: Viewer,
                         now: datetime) -> DashboardResponse:
    """The images that have the finding come from the summary's term index (so a search
    reads no other row); their findings are read live, a page of images at a time, with
    the current rules."""
    cve = api.text_parameter(request.query, "cve")
    package = api.text_parameter(request.query, "package")
    form = (f'<form class="filters" method="get" action="{e(url("vulnerabilities"))}">'
            f'<div><label for="cve">CVE or advisory id</label><input id="cve" name="cve" '
            f'value="{e(cve)}"></div><div><label for="package">Package</label>'
            f'<input id="package" name="package" value="{e(package)}"></div>'
            '<button type="submit">Search</button></form>')
    if not cve and not package:
        return _html(200, "Vulnerabilities", form + "<p>Search by CVE or package.</p>",
                     "vulnerabilities", viewer)
    page_number = page_parameter(request.query)
    listing, affected = images_with(store, now, (
        *((vulnerability_term(cve),) if cve else ()), *((package_term(package),) if package
                                                         else ())))
    pages, start = pages_of(len(affected), page_number, SEARCH_IMAGES_PAGE)
    shown = affected[start:start + SEARCH_IMAGES_PAGE]
    rules = load_rules(store)
    rows = []
    for image, results in image_findings(store, shown):
        verdict = current_verdict(image, results, rules, now)
        for result in verdict.platforms if verdict is not None else ():
            for finding in result.findings:
                if finding.disabled_by or not _searched(finding, cve, package):
                    continue
                rows.append([
                    e(finding.id), link("image", f"{image.repository}@{image.digest[7:19]}", {
                        "registry": image.registry, "repository": image.repository,
                        "digest": image.digest}),
                    e(image.registry), e(finding.package), e(finding.installed_version),
                    e(finding.fixed_version),
                    f'<span class="{finding.severity.value}">{e(finding.severity.value)}</span>',
                    e(finding.fix_status.value.replace("_", " "))])
    searched = {"cve": cve, "package": package}
    as_of = _as_of_form(listing.made_at, viewer, url("vulnerabilities", searched))
    return _html(200, "Vulnerabilities", form + as_of + table(
        ("Vulnerability", "Image", "Registry", "Package", "Installed", "Fixed", "Severity",
         "Fix status"), rows, "Affected images", "No image has it.")
        + _pager("vulnerabilities", page_number, pages, start + 1 if shown else 0, len(shown),
                 len(affected), lambda number: {**searched, "page": number}),
        "vulnerabilities", viewer)


# ---------------------------------------------------------------- rules


def _rule_scope(rule: DisableRule) -> str:
    criteria = rule_to_json(rule)["criteria"]
    return "; ".join(f"{name}: {', '.join(map(str, value)) if isinstance(value, list) else value}"
                     for name, value in criteria.items())


def rules_page(store: Store, request: DashboardRequest, viewer: Viewer, now: datetime,
               notice: str = "", problem: str = "", status: int = 200) -> DashboardResponse:
    rows = [[e(rule.id), e(rule.justification), e(_rule_scope(rule)),
             e(api.time_text(rule.expires) or "never")
             + (' <strong>(expired)</strong>' if rule.expired(now) else ""),
             e(rule.source or "dashboard/API"),
             f'<form class="inline" method="post" action="{e(url("rules/delete"))}">'
             f'{hidden("csrf", viewer.csrf)}{hidden("id", rule.id)}'
             f'<button type="submit" aria-label="Delete rule {e(rule.id)}">Delete</button>'
             "</form>"] for rule in load_rules(store)]
    messages = ((f'<p class="notice" role="status">{e(notice)}</p>' if notice else "")
                + (f'<p class="error" role="alert">{e(problem)}</p>' if problem else ""))
    form = request.form
    create = (f'<h2>New rule</h2><form method="post" action="{e(url("rules/create"))}">'
              f'{hidden("csrf", viewer.csrf)}'
              '<label for="r-id">Id (optional)</label>'
              f'<input id="r-id" name="id" value="{e(form.get("id", ""))}" '
              'pattern="[A-Za-z0-9._:\\-]{1,128}">'
              '<label for="r-just">Justification</label>'
              f'<input id="r-just" name="justification" required minlength="3" size="60" '
              f'value="{e(form.get("justification", ""))}">'
              '<label for="r-vulns">Vulnerability ids (comma separated)</label>'
              f'<input id="r-vulns" name="vulnerabilityIds" '
              f'value="{e(form.get("vulnerabilityIds", ""))}">'
              '<label for="r-pkgs">Packages (comma separated)</label>'
              f'<input id="r-pkgs" name="packages" value="{e(form.get("packages", ""))}">'
              '<label for="r-repo">Repository pattern</label>'
              f'<input id="r-repo" name="repository" value="{e(form.get("repository", ""))}">'
              '<label for="r-exp">Expires (optional)</label>'
              f'<input id="r-exp" name="expires" type="date" '
              f'value="{e(form.get("expires", ""))}">'
              '<p><button type="submit">Create rule</button></p></form>'
              f'<h2>Import OpenVEX</h2><form method="post" action="{e(url("rules/import"))}">'
              f'{hidden("csrf", viewer.csrf)}<label for="r-vex">OpenVEX document (JSON)'
              '</label><textarea id="r-vex" name="openvex" rows="6" cols="70" required>'
              '</textarea><p><button type="submit">Import</button></p></form>')
    body = messages + table(("Id", "Justification", "Criteria", "Expires", "Source", ""),
                            rows, "Rules", "No rule.") + create
    return _html(status, "Rules", body, "rules", viewer)


def _rule_document(form: Mapping[str, str]) -> dict[str, object]:
    """The API's rule JSON from the form's fields (empty ones left out)."""
    def listed(name: str) -> list[str]:
        return [part.strip() for part in form.get(name, "").split(",") if part.strip()]

    criteria: dict[str, object] = {}
    if listed("vulnerabilityIds"):
        criteria["vulnerabilityIds"] = listed("vulnerabilityIds")
    if listed("packages"):
        criteria["packages"] = listed("packages")
    if form.get("scope") == "repository":
        criteria["repository"] = form.get("imageRepository", "")
    elif form.get("repository", "").strip():
        criteria["repository"] = form["repository"].strip()
    if form.get("digest") and form.get("scope") != "repository":
        criteria["digest"] = form["digest"]
    if not criteria:
        raise BadRequest("say what the rule disables: a vulnerability id, a package or a "
                         "repository")
    document: dict[str, object] = {"justification": form.get("justification", "").strip(),
                                   "criteria": criteria}
    if form.get("id", "").strip():
        document["id"] = form["id"].strip()
    expires = form.get("expires", "").strip()
    if expires:
        try:
            day = datetime.strptime(expires, "%Y-%m-%d").replace(tzinfo=UTC)
        except ValueError:
            raise BadRequest(f"expires must be a date (YYYY-MM-DD), got {expires!r}") from None
        document["expires"] = api.time_text(day)
    return document


def create_rule_action(store: Store, request: DashboardRequest, viewer: Viewer,
                       now: datetime) -> DashboardResponse:
    form = request.form
    try:
        answer = api.respond(lambda: api.create_rules(
            store, json.dumps(_rule_document(form)).encode(), "application/json", now))
    except BadRequest as error:
        return rules_page(store, request, viewer, now, problem=str(error), status=400)
    if answer.status >= 400:
        return rules_page(store, request, viewer, now, problem=answer.body["error"]["message"],
                          status=answer.status)
    back = form.get("back", "")
    refresh_summary(store, now)
    return _redirect(back if back.startswith(url("image")) else url("rules", {
        "created": answer.body["id"]}))


def import_rules_action(store: Store, request: DashboardRequest, viewer: Viewer,
                        now: datetime) -> DashboardResponse:
    text = request.form.get("openvex", "")
    try:
        json.loads(text)
    except ValueError as error:  # the API's message would speak of a request body
        return rules_page(store, request, viewer, now, status=400,
                          problem=f"The OpenVEX document is not JSON: {error}")
    answer = api.respond(lambda: api.create_rules(
        store, text.encode(), api.OPENVEX_MEDIA_TYPE, now))
    if answer.status >= 400:
        return rules_page(store, request, viewer, now, problem=answer.body["error"]["message"],
                          status=answer.status)
    refresh_summary(store, now)
    return _redirect(url("rules", {"imported": str(len(answer.body["value"]))}))


def delete_rule_action(store: Store, request: DashboardRequest, viewer: Viewer,
                       now: datetime) -> DashboardResponse:
    rule_id = request.form.get("id", "")
    answer = api.respond(lambda: api.delete_rule(store, rule_id, now))
    if answer.status >= 400:
        return rules_page(store, request, viewer, now, problem=answer.body["error"]["message"],
                          status=answer.status)
    refresh_summary(store, now)
    return _redirect(url("rules", {"deleted": rule_id}))


# ---------------------------------------------------------------- billing


def _billing_month(query: Mapping[str, str], now: datetime) -> str:
    """The month asked for (``YYYY-MM``), this UTC month unless one is."""
    month = api.text_parameter(query, "month") or f"{now.astimezone(UTC):%Y-%m}"
    # check_month's \d would take any Unicode digit (full-width ones too): ASCII first.
    if not month.isascii():
        raise BadRequest(f"month must be YYYY-MM, got {month!r}")
    return check_month(month)


def _amounts(month: BillingMonth) -> str:
    return ", ".join(f"{amount} {currency}" for currency, amount in month.totals) or "0"


def billing_page(store: Store, request: DashboardRequest, viewer: Viewer,
                 now: datetime) -> DashboardResponse:
    """The month's sums and the 12 months' chart come from the dashboard summary (a month
    outside it is summed from its records); the month's billed images are read live, a page
    at a time."""
    month = _billing_month(request.query, now)
    summary = overview_or_refresh(store, now)
    kept = {item.month: item for item in summary.billing}
    chosen = kept.get(month) or month_billing(store, month, now)
    unit_price, currency = price_from_settings()
    total = dict(chosen.totals).get(currency, "0")
    picker = (f'<form class="filters" method="get" action="{e(url("billing"))}">'
              '<div><label for="month">Month</label><input id="month" name="month" '
              f'type="month" value="{e(month)}"></div>'
              '<button type="submit">Show</button></form>')
    cards = (f'<div class="cards"><div class="card"><b>{chosen.count}</b>images billed in '
             f'{e(month)}</div><div class="card"><b>{e(total)} {e(currency)}</b>total at '
             f'{e(unit_price)} each</div></div>')
    as_of = (_as_of_form(summary.made_at, viewer, url("billing", {"month": month}))
             if month in kept else "")
    months = summary.billing or billing_months(store, now)
    history = bars(((item.month, item.count) for item in months), "Month") + table(
        ("Month", "Images billed", "Total"), (
            (link("billing", item.month, {"month": item.month}), str(item.count),
             e(_amounts(item)))
            for item in months), "Billing per month")
    page_of = store.billing.billed_images(month, IMAGES_PER_BILLING_PAGE,
                                          api.text_parameter(request.query,
                                                             "continuationToken") or None)
    rows = [[e(api.time_text(record.billed_at)), e(record.registry), e(record.repository),
             f"<code>{e(record.digest[7:19])}</code>", e(record.trigger.value),
             e(f"{record.unit_price} {record.currency}")] for record in page_of.items]
    more = (link("billing", "Next page →", {"month": month,
                                             "continuationToken": page_of.next_token})
            if page_of.next_token else "")
    return _html(200, "Billing", picker + cards + as_of + "<h2>Images billed per month</h2>"
                 + history + f"<h2>Billed in {e(month)}</h2>"
                 + table(("Billed", "Registry", "Repository", "Digest", "Trigger", "Price"),
                         rows, "Billed images", "No image billed this month.") + more,
                 "billing", viewer)


# ---------------------------------------------------------------- routing

Page = Callable[[Store, DashboardRequest, Viewer, datetime], DashboardResponse]

_GET: dict[str, Page] = {
    "": overview,
    "images": images_page,
    "image": image_page,
    "image.sarif": sarif_download,
    "image.cdx.json": cyclonedx_download,
    "vulnerabilities": vulnerabilities_page,
    "rules": lambda store, request, viewer, now: rules_page(
        store, request, viewer, now, notice=_rules_notice(request.query)),
    "billing": billing_page,
}
_POST: dict[str, Page] = {
    "summary/refresh": refresh_summary_action,
    "rules/create": create_rule_action,
    "rules/import": import_rules_action,
    "rules/delete": delete_rule_action,
}


def _rules_notice(query: Mapping[str, str]) -> str:
    for name, text in (("created", "Rule {} created."), ("deleted", "Rule {} deleted."),
                       ("imported", "Rules imported from OpenVEX: {}.")):
        if query.get(name):
            return text.format(query[name])
    return ""


def handle(store_of: Callable[[], Store], request: DashboardRequest,
           now: datetime) -> DashboardResponse:
    """The response to one dashboard request; every failure is a page that says what failed."""
    path = request.path.strip("/")
    key = auth.dashboard_key()
    if request.method == "POST" and path == "signin":
        if auth.key_ok(request.form.get("key", ""), key):
            return _signed_in_redirect(url(""), request.secure)
        return _sign_in_page(401, "That key is wrong." if key else
                             "Sign-in by key is off: DASHBOARD_KEY is not set.")
    code = request.query.get("code", "")
    if code and request.method == "GET":
        if auth.key_ok(code, key):
            rest = {name: value for name, value in request.query.items() if name != "code"}
            return _signed_in_redirect(url(path, rest), request.secure)
        return _sign_in_page(401, "That key is wrong.")
    identity = auth.signed_in_as(request.cookies, request.headers)
    if identity is None:
        expired = auth.SESSION_COOKIE in request.cookies or request.method == "POST"
        return _sign_in_page(401, "Your sign-in has expired; sign in again." if expired
                             else "")
    refusal = auth.entra_refusal(identity, request.headers)
    if refusal:
        return _html(403, "Not allowed", f'<p class="error" role="alert">{e(refusal)}</p>',
                     "", None)
    try:
        secret = auth.csrf_secret(store_of)
    except Exception as error:  # the stored secret is a storage read: say so, as a page does
        return _html(503, "Something went wrong", '<p class="error" role="alert">'
                     f"{e(str(error))}</p>", "", None)
    viewer = Viewer(identity=identity, csrf=auth.csrf_token(identity, secret))
    if request.method == "POST":
        if not auth.csrf_ok(identity, request.form.get("csrf", ""), secret):
            return _html(403, "Form expired", '<p class="error" role="alert">This form is '
                         "out of date or did not come from this dashboard; reload the page "
                         "and try again.</p>", "", viewer)
        if path == "signout":
            return _redirect(url(""), ("Set-Cookie", auth.cleared_cookie()))
        handler = _POST.get(path)
    elif request.method == "GET":
        handler = _GET.get(path)
    else:
        return _html(405, "Not allowed", "<p>Only GET and POST.</p>", "", viewer)
    if handler is None:
        return _html(404, "Not found", f"<p>No page {e(path)}. {link('', 'Overview')}</p>",
                     "", viewer)
    try:
        return handler(store_of(), request, viewer, now)
    except Exception as error:  # a page must say what failed, never half-draw
        answer = api.error_response(error)
        message = answer.body["error"]["message"] if isinstance(answer.body, dict) else ""
        if isinstance(error, NotFound | BadRequest):
            message = str(error)
        return _html(answer.status, "Something went wrong",
                     f'<p class="error" role="alert">{e(message)}</p>', path, viewer)
