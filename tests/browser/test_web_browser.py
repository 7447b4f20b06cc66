"""The web application in headless Chromium: sign in with a one-time code, answer a referral,
meet a version conflict, see a deadline breach, and prove that two agencies each see only
their own cases. Every main page is checked with axe-core (no serious or critical violation)
and saved as a screenshot (in var/screenshots/; `make screenshots` refreshes the README's
docs/screenshots/)."""

from __future__ import annotations

import re
from datetime import timedelta

from axe_playwright_python.sync_playwright import Axe  # type: ignore[import-untyped]
from playwright.sync_api import Browser, Page, expect

from api.web.i18n import LANGUAGES, catalogue
from tests.browser.conftest import PASSWORD, SCREENSHOTS, LiveServer
from tests.support.api import agency

SERIOUS = ("serious", "critical")


def accessible(page: Page, axe: Axe) -> None:
    violations = axe.run(page).response["violations"]
    serious = [
        (v["id"], v["impact"], [n["target"] for n in v["nodes"][:3]])
        for v in violations
        if v["impact"] in SERIOUS
    ]
    assert not serious, serious


def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def sign_in(page: Page, live: LiveServer, name: str) -> None:
    """Sign in with the keyboard only: type, Tab, type, Tab, type, Enter."""
    page.goto("/web/sign-in")
    page.get_by_label("Username").fill(name)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Tab")
    page.keyboard.type(live.code(name))
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/web/inbox$"))


def section(page: Page, heading_id: str) -> object:
    return page.locator(f"section[aria-labelledby='{heading_id}']")


def test_sign_in_with_a_one_time_code(page: Page, live: LiveServer, axe: Axe) -> None:
    page.goto("/web/sign-in")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    accessible(page, axe)
    shot(page, "sign-in")
    page.get_by_label("Username").fill("ngo")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("One-time code").fill("000000")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("did not match")
    sign_in(page, live, "ngo")
    expect(page.get_by_role("heading", level=1)).to_have_text("Inbox")
    expect(page.get_by_text("ngo caseworker")).to_be_visible()
    cookies = {c["name"]: c for c in page.context.cookies()}
    session = cookies["referral-session"]
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Strict"


def test_answer_a_referral(page: Page, live: LiveServer, axe: Axe) -> None:
    case_id = live.open_case("ngo")
    live.append(
        "ngo",
        case_id,
        "ReferralSent",
        to_agency_id=agency("ngo2"),
        respond_by=(live.clock() + timedelta(days=3)).isoformat(),
        legal_basis="Child Protection Act s.20",
    )
    sign_in(page, live, "ngo2")
    row = page.locator("section[aria-labelledby='referrals-h'] tr", has_text=case_id[:8])
    expect(row).to_be_visible()
    accessible(page, axe)
    shot(page, "inbox")
    row.get_by_role("link", name="Answer").click()
    expect(page.get_by_role("heading", name=re.compile("Referral to answer"))).to_be_visible()
    accessible(page, axe)
    shot(page, "referral-answer")
    page.get_by_role("button", name="Accept referral").click()
    expect(page.get_by_role("status").first).to_contain_text("Saved: Referral accepted.")
    expect(page.locator("ol.timeline")).to_contain_text("Referral accepted")
    referrals = live.api.get(f"/cases/{case_id}", headers=live.headers("ngo")).json()["referrals"]
    assert [r["status"] for r in referrals] == ["accepted"]


def test_a_stale_version_is_refused_and_explained(page: Page, live: LiveServer, axe: Axe) -> None:
    case_id = live.open_case("ngo")
    live.settle()
    sign_in(page, live, "ngo")
    page.goto(f"/web/cases/{case_id}")
    page.get_by_label("What happened").select_option("ServiceDelivered")  # htmx swaps the form in
    form = page.locator("#entry-form")
    expect(form.get_by_role("heading", name="Service delivered")).to_be_visible()
    form.get_by_label("Service type").select_option("education")
    form.get_by_label("Provider agency").select_option(agency("ngo"))
    form.get_by_label("Delivered on").fill("2026-11-28")
    form.get_by_label("Outcome").select_option("ongoing")
    # meanwhile a colleague records something on the same case
    live.append("ngo", case_id, "ServiceDelivered", provider_agency_id=agency("ngo"))
    page.get_by_role("button", name="Record", exact=True).click()
    alert = page.locator("#form-message")
    expect(alert).to_contain_text("Not saved: someone recorded something on this case")
    expect(alert).to_contain_text("version 1")
    expect(alert).to_contain_text("version 2")
    expect(page.get_by_text("New since you opened the case")).to_be_visible()
    expect(form.get_by_label("Service type")).to_have_value("education")  # nothing typed is lost
    accessible(page, axe)
    shot(page, "version-conflict")
    page.get_by_role("button", name="Record", exact=True).click()
    expect(page.get_by_role("status").first).to_contain_text("Saved: Service delivered.")
    case = live.api.get(f"/cases/{case_id}", headers=live.headers("ngo")).json()
    assert case["version"] == 3


def test_a_deadline_breach_shows_in_the_inbox(page: Page, live: LiveServer) -> None:
    case_id = live.open_case("ngo")
    live.settle()
    sign_in(page, live, "ngo")
    row = page.locator("section[aria-labelledby='deadlines-h'] tr", has_text=case_id[:8])
    expect(row).to_contain_text("Report to the police")
    expect(row).not_to_contain_text("Overdue")
    live.clock.advance(timedelta(hours=25))  # past the 24 h report deadline
    page.reload()
    expect(page).to_have_url(re.compile(r"/web/sign-in\?ended=idle_timeout$"))
    expect(page.get_by_role("status")).to_contain_text("without activity")
    sign_in(page, live, "ngo")
    expect(row).to_contain_text("Overdue")
    expect(page.locator(".summary")).to_contain_text("overdue")
    shot(page, "deadline-breach")


def test_two_agencies_each_see_only_their_own_cases(
    browser: Browser, page: Page, live: LiveServer
) -> None:
    own = live.open_case("ngo")
    theirs = live.open_case("ngo2")
    live.settle()
    other = browser.new_context(base_url=live.url, viewport={"width": 1280, "height": 860})
    other_page = other.new_page()
    sign_in(page, live, "ngo")
    sign_in(other_page, live, "ngo2")
    for viewer, mine, not_mine in ((page, own, theirs), (other_page, theirs, own)):
        viewer.goto("/web/cases")
        results = viewer.locator("#case-results")
        expect(results).to_contain_text(mine[:8])
        expect(results).not_to_contain_text(not_mine[:8])
        viewer.get_by_label("Search by case number").fill(not_mine[:8])
        expect(results).to_contain_text("No cases match.")  # htmx live search
        response = viewer.goto(f"/web/cases/{not_mine}")
        assert response is not None
        assert response.status == 404
        expect(viewer.get_by_role("alert")).to_have_text("Not found")
        assert viewer.goto(f"/web/cases/{mine}").status == 200  # type: ignore[union-attr]
    page.goto("/web/cases")
    shot(page, "cases")
    page.goto(f"/web/cases/{own}")
    shot(page, "case")
    other.close()


def test_police_inbox_acknowledges_a_report(page: Page, live: LiveServer, axe: Axe) -> None:
    case_id = live.open_case("ngo")
    live.append(
        "ngo", case_id, "ReportedToLawEnforcement", receiving_unit_agency_id=agency("police")
    )
    sign_in(page, live, "police")
    row = page.locator("section[aria-labelledby='reports-h'] tr", has_text=case_id[:8])
    expect(row).to_be_visible()
    accessible(page, axe)
    shot(page, "police-inbox")
    row.get_by_role("link", name="Acknowledge").click()
    page.get_by_label("Police reference number").fill("UA-JUV-2026-0107")
    page.get_by_role("button", name="Acknowledge report").click()
    expect(page.get_by_role("status").first).to_contain_text("Saved: Report acknowledged.")
    timeline = page.locator("ol.timeline")
    expect(timeline).to_contain_text("UA-JUV-2026-0107")
    expect(timeline).not_to_contain_text("Mali")  # no given name for the police unit


def test_shelter_roster(page: Page, live: LiveServer, axe: Axe) -> None:
    case_id = live.open_case("ngo")
    live.append("ngo", case_id, "ChildSheltered", shelter_agency_id=agency("shelter"))
    sign_in(page, live, "shelter")
    page.get_by_role("link", name="Roster").click()
    expect(page.locator("table")).to_contain_text(case_id[:8])
    accessible(page, axe)
    shot(page, "roster")


def test_dashboard_charts_and_csv(page: Page, live: LiveServer, axe: Axe) -> None:
    live.open_case("ngo", sex="male", nationality="UA")
    live.settle()
    sign_in(page, live, "ministry")
    page.get_by_role("link", name="Dashboard").click()
    expect(page.get_by_role("heading", name="Identifications per month")).to_be_visible()
    expect(page.locator(".suppressed").first).to_have_text("suppressed")
    accessible(page, axe)
    shot(page, "dashboard")
    with page.expect_download() as download:
        page.get_by_role(
            "link", name=re.compile("Download CSV — Identifications per month")
        ).click()
    text = download.value.path().read_text(encoding="utf-8")
    assert text.splitlines()[0] == "month,count,suppressed"


def test_audit_page(page: Page, live: LiveServer, axe: Axe) -> None:
    sign_in(page, live, "auditor")
    page.get_by_role("link", name="Audit").click()
    expect(page.locator("section[aria-labelledby='verify-h']")).to_contain_text("Verified")
    signins = page.locator("section[aria-labelledby='signins-h']")
    expect(signins).to_contain_text("Wrong code")
    expect(signins).to_contain_text("Signed in")
    accessible(page, axe)
    shot(page, "audit")


def test_public_report_form_in_two_languages(page: Page, live: LiveServer, axe: Axe) -> None:
    page.goto("/report")
    expect(page.get_by_role("note")).to_contain_text("call 112")
    accessible(page, axe)
    shot(page, "public-report")
    uk = catalogue("uk")
    page.get_by_role("link", name=LANGUAGES["uk"]).click()
    expect(page.locator("html")).to_have_attribute("lang", "uk")
    expect(page.get_by_role("heading", level=1)).to_have_text(uk["Report a suspected case"])
    accessible(page, axe)
    shot(page, "public-report-uk")
    page.get_by_label(uk["What is it about?"]).select_option("report_of_exploitation")
    page.get_by_label(uk["Who are you?"]).select_option("member_of_public")
    page.get_by_label(uk["What did you see or hear?"]).fill(
        "A boy of about 12 begs at the station."
    )
    page.get_by_role("button", name=uk["Send report"]).click()
    sent = next(text for key, text in uk.items() if key.startswith("Thank you. Your report"))
    expect(page.get_by_role("status")).to_contain_text(sent)
    live.settle()
    inbox = live.api.get("/inbox", headers=live.headers("hotline")).json()
    assert inbox["cases"], "the report reached the hotline's inbox"
    page.goto("/web/lang/en?next=/report")


def test_a_hotline_opens_a_case_in_thai(page: Page, live: LiveServer, axe: Axe) -> None:
    th = catalogue("th")
    sign_in(page, live, "hotline")
    page.get_by_role("link", name=LANGUAGES["th"]).click()
    expect(page.locator("html")).to_have_attribute("lang", "th")
    expect(page.get_by_role("heading", level=1)).to_have_text(th["Inbox"])
    shot(page, "inbox-th")
    page.get_by_role("link", name=th["Cases"], exact=True).click()
    page.get_by_role("link", name=th["Open a case"]).click()
    form = page.locator("#entry-form")
    required = f" ({th['required']})"
    form.get_by_label(th["term:channel"] + required, exact=True).select_option("phone")
    form.get_by_label(th["term:caller_type"] + required, exact=True).select_option("relative")
    form.get_by_label(th["term:safe_migration"]).check()
    accessible(page, axe)
    shot(page, "open-case-th")
    form.get_by_role("button", name=th["Open the case"]).click()
    expect(page.get_by_role("status").first).to_contain_text(th["term:ContactReceived"])
    page.goto("/web/lang/en?next=/web/inbox")
