"""The agents' console in headless Chromium: search, review, merge, unmerge, adjust; the admins'
settlement view; errors in words. Screenshots go to test-artifacts/console/."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from hub.core.tokens import Role
from hub.loyalty.program import configured_program
from tests.console.conftest import Landed, shot, token

AGENT = token(Role.AGENT, "agent-e2e", business_line="hotel")
ADMIN = token(Role.ADMIN, "admin-e2e")


async def sign_in(page: Any, value: str) -> None:
    await page.goto("/console/")
    await page.get_by_label("Agent token").fill(value)
    await page.get_by_role("button", name="Sign in").click()


async def confirm(page: Any, reason: str, button: str, **fields: str) -> None:
    """Fill the open action dialog (its labelled fields, then the reason) and submit it."""
    dialog = page.get_by_role("dialog")
    for label, value in fields.items():
        await dialog.get_by_label(label).fill(value)
    await dialog.get_by_label("Reason (kept in the audit log)").fill(reason)
    await dialog.get_by_role("button", name=button, exact=True).click()


async def records_count(page: Any) -> int:
    from playwright.async_api import expect

    heading = page.get_by_role("heading", name=re.compile(r"^Source records"))
    await expect(heading).to_be_visible()
    match = re.search(r"\((\d+)\)", await heading.inner_text())
    assert match
    return int(match[1])


async def test_the_agent_tour_search_review_merge_unmerge_adjust(page: Any, landed: Landed) -> None:
    from playwright.async_api import expect

    toasts = page.locator("#toasts")
    await sign_in(page, AGENT)
    await expect(page.locator("#who-role")).to_have_text("agent · hotel")
    await expect(page.get_by_role("link", name="Settlement")).to_be_hidden()

    # The hub knows this phone under several members; the screen shows it masked.
    # Search by phone, from the keyboard: sign-in leaves the focus in the search box.
    await expect(page.get_by_label("Find a member")).to_be_focused()
    await page.keyboard.type(landed.phone)
    await page.keyboard.press("Enter")
    results = page.locator(".results a.result")
    await expect(results).to_have_count(len(landed.members))
    await expect(results.first).to_contain_text(f"{landed.phone[:3]}****{landed.phone[-4:]}")
    await expect(page.locator("main")).not_to_contain_text(landed.phone)
    await shot(page, "01-search")

    # Review: reject the first pair, accept the next; each shows both records and comparisons.
    await page.get_by_role("link", name="Review queue").click()
    pairs = page.locator("article.review")
    await expect(pairs.first).to_be_visible()
    await expect(pairs.first.locator(".pair-record")).to_have_count(2)
    await expect(pairs.first.locator(".compare-table tbody tr").first).to_be_visible()
    await shot(page, "02-review-queue")
    # The other order: the pairs most likely one person first, then back to the oldest first.
    await page.get_by_label("Order").select_option("MOST_LIKELY")
    likely = page.locator(".review-list[data-order=MOST_LIKELY] article.review")
    await expect(likely.first).to_be_visible()
    scores = [float(s) for s in await likely.evaluate_all("els => els.map(e => e.dataset.score)")]
    assert len(scores) > 1
    assert scores == sorted(scores, reverse=True)
    await page.get_by_label("Order").select_option("OLDEST")
    pairs = page.locator(".review-list[data-order=OLDEST] article.review")
    await expect(pairs.first).to_be_visible()
    # Accept a pair away from the landed phone's members: they are merged by hand further on
    # (its household's nameless accounts are in the queue too, proposed against each member).
    first, second = pairs.nth(0), None
    alternatives = "|".join(map(re.escape, landed.members))
    landed_ids = re.compile(rf"member #(?:{alternatives})\b")
    for i in range(1, await pairs.count()):
        if not landed_ids.search(await pairs.nth(i).inner_text()):
            second = pairs.nth(i)
            break
    assert second is not None
    await first.get_by_role("button", name="Reject — keep apart").click()
    await confirm(page, "different people: checked on the phone", "Reject")
    await expect(first.locator(".review-outcome")).to_contain_text("Rejected")
    await second.get_by_role("button", name="Accept — merge").click()
    await confirm(page, "same guest, confirmed by phone", "Accept and merge")
    await expect(second.locator(".review-outcome")).to_contain_text(
        "Accepted: merged into member #"
    )
    await expect(toasts).to_contain_text("accepted")
    await shot(page, "03-review-decided")

    # Two members with different WeChat unionids: the hub refuses, and says why in words.
    x, y = landed.conflicting
    await page.goto(f"/console/#/member/{x}")
    await page.get_by_role("button", name="Merge with…").click()
    await confirm(page, "customer showed both accounts", "Merge", **{"Other member's id": y})
    await expect(page.locator(".dialog-error")).to_contain_text("different wechat_unionid")
    await shot(page, "04-merge-refused")
    await page.get_by_role("dialog").get_by_role("button", name="Cancel").click()

    # A merge the hub allows: the survivor holds both sets of records.
    a, b = landed.mergeable
    await page.goto(f"/console/#/member/{b}")
    count_b = await records_count(page)
    await page.goto(f"/console/#/member/{a}")
    count_a = await records_count(page)
    await page.get_by_role("button", name="Merge with…").click()
    await confirm(page, "customer showed both cards", "Merge", **{"Other member's id": b})
    await expect(toasts).to_contain_text("Merged member #")
    total = count_a + count_b
    await expect(page.get_by_role("heading", name=f"Source records ({total})")).to_be_visible()
    survivor = re.search(r"#/member/(\d+)", page.url)
    assert survivor
    assert survivor[1] in (a, b)
    await expect(page.locator("#history-h + div")).to_contain_text("Merged")
    await shot(page, "05-merged")

    # Unmerge: back to the earlier partition.
    await page.get_by_role("button", name="Unmerge last merge…").click()
    await confirm(page, "merged by mistake", "Unmerge")
    await expect(toasts).to_contain_text("Unmerged:")
    kept = count_a if survivor[1] == a else count_b
    await expect(page.get_by_role("heading", name=f"Source records ({kept})")).to_be_visible()
    await shot(page, "06-unmerged")

    # Adjust points with a reason: the balance, the ledger and the audit trail show it.
    before = int((await page.locator("#available").inner_text()).split()[0].replace(",", ""))
    await page.get_by_role("button", name="Adjust points…").click()
    await confirm(page, "goodwill: late delivery", "Adjust points", Points="200")
    await expect(toasts).to_contain_text("Added 200 points")
    await expect(page.locator("#available")).to_contain_text(f"{before + 200:,}")
    ledger_top = page.locator("table.ledger tbody tr").first
    await expect(ledger_top).to_contain_text("Adjustment")
    await expect(ledger_top).to_contain_text("goodwill: late delivery")
    await expect(page.locator("#audit-h ~ div")).to_contain_text("goodwill: late delivery")

    # Unmask with a reason: the phone in clear, for this call only, and audited.
    await page.get_by_role("button", name="Show unmasked…").click()
    await confirm(page, "customer asked to confirm the phone on file", "Show unmasked")
    panel = page.get_by_role("region", name="Unmasked data")
    await expect(panel).to_contain_text(landed.phone[-8:])
    audit = page.locator("#audit-h ~ div")
    await expect(audit).to_contain_text("customer asked to confirm the phone on file")
    await shot(page, "07-unmasked")
    await panel.get_by_role("button", name="Hide").click()
    await expect(panel).to_be_hidden()

    # Move a record out on its own: the member keeps the others.
    records = await records_count(page)
    if records > 1:
        await page.get_by_role("button", name=re.compile(r"^Move record")).first.click()
        await confirm(page, "belongs to the spouse", "Move record")
        await expect(toasts).to_contain_text("Moved record")
        heading = f"Source records ({records - 1})"
        await expect(page.get_by_role("heading", name=heading)).to_be_visible()

    # A rule the hub enforces comes back in words, and the dialog stays open to correct it.
    await page.get_by_role("button", name="Adjust points…").click()
    await confirm(page, "typo", "Adjust points", Points="99999999")
    await expect(page.locator(".dialog-error")).not_to_be_empty()
    await shot(page, "08-adjust-refused")
    await page.get_by_role("dialog").get_by_role("button", name="Cancel").click()
    await expect(page.get_by_role("dialog")).to_be_hidden()
    for reason in ("goodwill: late delivery", "customer asked to confirm the phone on file"):
        await expect(audit).to_contain_text(reason)
    await shot(page, "09-profile-after-tour")


async def test_admins_see_settlement_flows_with_the_netted_table_and_csv(
    page: Any, landed: Landed
) -> None:
    from playwright.async_api import expect

    program = configured_program()
    period = datetime.now(program.timezone).strftime("%Y-%m")
    await sign_in(page, ADMIN)
    await page.get_by_role("link", name="Settlement").click()
    await page.get_by_label("Period (month)").fill(period)
    await page.get_by_role("button", name="Show settlement").click()
    gross = page.locator("table[data-table=gross] tbody tr")
    await expect(gross.first).to_be_visible()
    flows = await gross.count()
    await expect(page.locator("svg.flow-chart path.band")).to_have_count(flows)
    await expect(page.locator("table[data-table=netted] tbody tr").first).to_be_visible()
    await expect(page.locator(".summary")).to_contain_text("Yes ✓")
    await shot(page, "10-settlement")
    async with page.expect_download() as info:
        await page.get_by_role("button", name="Download CSV").click()
    download = await info.value
    assert download.suggested_filename == f"settlement-{period}.csv"
    saved = Path(await download.path())
    text = await asyncio.to_thread(saved.read_text, encoding="utf-8-sig")
    assert text.splitlines()[0].count(",") >= 3
    assert len(text.splitlines()) > flows


async def test_sign_in_explains_refused_tokens_and_agents_do_not_get_settlement(
    page: Any,
) -> None:
    from playwright.async_api import expect

    await sign_in(page, "not-a-token")
    await expect(page.locator(".signin-error")).to_contain_text("The hub refused this token")
    member = token(Role.MEMBER, "m-e2e", member_id=1)
    await page.get_by_label("Agent token").fill(member)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator(".signin-error")).to_contain_text("not belong to an agent")
    await shot(page, "00-sign-in-refused")
    await page.get_by_label("Agent token").fill(AGENT)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_label("Find a member")).to_be_focused()
    await page.goto("/console/#/settlement")
    await expect(page.get_by_role("alert")).to_contain_text("for admins")
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_label("Agent token")).to_be_visible()
    assert await page.evaluate("sessionStorage.length") == 0
