// The points ledger of a member: newest first, paged with the API's cursor, filtered on screen.
import { gql } from "./api.js";
import { clear, empty, errorBox, fmt, h } from "./dom.js";

const PAGE = 20;

const CODE_WORDS = {
  accrue: "Earned",
  accrue_pending: "Earned (pending)",
  release: "Pending released",
  adjust: "Adjustment",
  adjust_debit: "Adjustment",
  expire: "Expired",
  hold: "Held for redemption",
  capture: "Redeemed",
  cancel: "Hold cancelled",
  refund: "Refunded",
  reverse: "Reversed (return)",
  reattribute: "Moved with a record",
};

const FILTERS = [
  ["all", "All entries", () => true],
  ["in", "Points in", (n) => n.delta > 0 || (n.delta === 0 && n.pendingDelta > 0)],
  ["out", "Points out", (n) => n.delta < 0 || (n.delta === 0 && n.pendingDelta < 0)],
  ["adjust", "Adjustments", (n) => n.code.startsWith("adjust")],
  ["redeem", "Redemptions", (n) => ["hold", "capture", "cancel", "refund"].some((c) => n.code.startsWith(c))],
  ["expire", "Expiry", (n) => n.code.startsWith("expire")],
];

export function codeWords(code) {
  return CODE_WORDS[code] || code.replaceAll("_", " ");
}

export function ledgerSection(memberId, firstPage) {
  const entries = firstPage.edges.map((e) => e.node);
  let pageInfo = firstPage.pageInfo;
  let filter = "all";

  const tbody = h("tbody", {});
  const status = h("p", { class: "small muted", "aria-live": "polite" });
  const more = h("button", { type: "button", class: "secondary", onclick: loadMore }, "Load older entries");
  const select = h(
    "select",
    { id: "ledger-filter", onchange: (e) => { filter = e.target.value; draw(); } },
    FILTERS.map(([value, label]) => h("option", { value }, label)),
  );
  const errors = h("div", {});

  function draw() {
    const keep = FILTERS.find(([v]) => v === filter)[2];
    const shown = entries.filter(keep);
    clear(tbody, 
      shown.map((n) =>
        h(
          "tr",
          { dataset: { code: n.code } },
          h("td", { class: "nowrap" }, fmt.dateTime(n.at)),
          h("td", {}, codeWords(n.code)),
          h("td", { class: ["num", n.delta > 0 ? "pos" : n.delta < 0 ? "neg" : ""] }, n.delta ? fmt.signed(n.delta) : "—"),
          h("td", { class: "num muted" }, n.pendingDelta ? fmt.signed(n.pendingDelta) : ""),
          h("td", { class: "reason" }, n.reason || ""),
        ),
      ),
    );
    status.textContent = `${shown.length} of ${entries.length} loaded entries shown${pageInfo.hasNextPage ? "; older entries not loaded yet" : ""}.`;
    more.hidden = !pageInfo.hasNextPage;
  }

  async function loadMore() {
    more.disabled = true;
    clear(errors);
    try {
      const { memberLoyalty } = await gql("MemberLedger", { memberId, first: PAGE, after: pageInfo.endCursor });
      entries.push(...memberLoyalty.ledger.edges.map((e) => e.node));
      pageInfo = memberLoyalty.ledger.pageInfo;
      draw();
    } catch (err) {
      errors.append(errorBox(err.message));
    } finally {
      more.disabled = false;
    }
  }

  const table = h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "ledger" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "When"), h("th", { scope: "col" }, "Entry"), h("th", { scope: "col", class: "num" }, "Points"), h("th", { scope: "col", class: "num" }, "Pending"), h("th", { scope: "col" }, "Reason"))),
      tbody,
    ),
  );
  draw();
  return h(
    "section",
    { class: "card", "aria-labelledby": "ledger-h" },
    h("div", { class: "section-head" }, h("h2", { id: "ledger-h" }, "Points ledger"), h("div", { class: "inline-field" }, h("label", { for: "ledger-filter" }, "Show"), select)),
    entries.length ? table : empty("No ledger entries yet."),
    status,
    errors,
    h("div", { class: "actions-left" }, more),
  );
}
