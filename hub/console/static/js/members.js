// Find a member, and the unified profile with its records, loyalty, history and audit trail.
import { ApiError, gql, problemOf } from "./api.js";
import { bar, clear, empty, errorBox, fmt, formDialog, h, idempotencyKey, kindLabel, lineBadge, spinner, toast } from "./dom.js";
import { explainBlock, identifierList, recordIdentity } from "./records.js";
import { ledgerSection } from "./ledger.js";

// The last search stays in memory only: phone numbers and names must not land in the URL or
// the browser history of a shared desk.
let lastSearch = { query: "", members: null };

export function renderSearch(main) {
  const input = h("input", {
    id: "q",
    name: "q",
    type: "search",
    required: true,
    value: lastSearch.query,
    autocomplete: "off",
    spellcheck: "false",
    "aria-describedby": "q-hint",
  });
  const results = h("div", { id: "results", "aria-live": "polite" });
  const form = h(
    "form",
    { class: "search", role: "search" },
    h("label", { for: "q" }, "Find a member"),
    h("div", { class: "search-row" }, input, h("button", { type: "submit", class: "primary" }, "Search")),
    h("p", { class: "hint", id: "q-hint" }, "Phone, email, nick, card no., order or folio no., WeChat unionid, ID number or name."),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const query = input.value.trim();
    if (!query) return;
    clear(results, spinner("Searching…"));
    try {
      const { searchMembers } = await gql("SearchMembers", { query, first: 20 });
      lastSearch = { query, members: searchMembers };
      showResults(results, searchMembers);
    } catch (err) {
      clear(results, errorBox(err.message));
    }
  });
  clear(main, 
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Members"), h("p", { class: "sub" }, "Search by any key a business line knows the customer by. Results show masked data."))),
    h("div", { class: "card" }, form),
    results,
  );
  if (lastSearch.members) showResults(results, lastSearch.members);
  input.focus();
}

function showResults(results, members) {
  clear(results);
  if (!members.length) {
    results.append(empty("No member matches. Check the number, or try another key (card no., nick, order no.)."));
    return;
  }
  results.append(
    h("p", { class: "result-count" }, members.length === 1 ? "1 member found" : `${members.length} members found`),
    h(
      "ul",
      { class: "results", "aria-label": "Search results" },
      members.map((m) =>
        h(
          "li",
          {},
          h(
            "a",
            { class: "result", href: `#/member/${m.id}`, dataset: { memberId: m.id } },
            h("div", { class: "result-main" }, h("span", { class: "result-name" }, m.name || "(no name on file)"), h("span", { class: "member-id" }, `#${m.id}`), m.status !== "active" ? h("span", { class: "badge warn" }, m.status) : null),
            h("div", { class: "result-ids" }, m.identifiers.slice(0, 3).map((i) => h("span", { class: "chip" }, `${kindLabel(i.kind)} ${i.value}`))),
            h("div", { class: "result-lines" }, [...new Set(m.sourceRecords.map((r) => r.businessLine))].map(lineBadge)),
            h("div", { class: "result-points" }, h("strong", {}, fmt.int(m.loyalty.points.available)), " pts · ", m.loyalty.tier.name),
          ),
        ),
      ),
    ),
  );
}

// ---- profile --------------------------------------------------------------------------------

export async function renderProfile(main, id) {
  clear(main, spinner("Loading the profile…"));
  let data;
  try {
    data = await gql("MemberProfile", { id, ledgerFirst: 20 });
  } catch (err) {
    clear(main, errorBox(err.message));
    return;
  }
  const m = data.member;
  if (!m) {
    clear(main, h("h1", {}, `Member #${id}`), empty("There is no member with this id."), h("p", {}, h("a", { href: "#/members" }, "Back to search")));
    return;
  }
  const reload = () => renderProfile(main, m.id);
  const unmasked = h("div", { id: "unmasked" });
  clear(main, 
    profileHead(m, unmasked, reload),
    m.status === "merged" && m.mergedInto
      ? h("div", { class: "notice" }, "This member was merged. Its records now belong to ", h("a", { href: `#/member/${m.mergedInto}` }, `member #${m.mergedInto}`), ".")
      : null,
    unmasked,
    loyaltyCards(m.loyalty),
    recordsSection(m, reload),
    historySection(m, reload),
    h("div", { class: "grid-2" }, ledgerSection(m.id, m.loyalty.ledger), benefitsSection(m.loyalty.benefits)),
    auditSection(m.id),
  );
}

function profileHead(m, unmasked, reload) {
  const actions = [
    h("button", { type: "button", class: "secondary", onclick: () => unmask(m, unmasked) }, "Show unmasked…"),
    h("button", { type: "button", class: "secondary", onclick: () => merge(m) }, "Merge with…"),
    h("button", { type: "button", class: "secondary", onclick: () => unmerge(m, null, reload) }, "Unmerge last merge…"),
    h("button", { type: "button", class: "primary", onclick: () => adjust(m, reload) }, "Adjust points…"),
  ];
  const gender = { F: "Female", FEMALE: "Female", M: "Male", MALE: "Male" }[String(m.gender).toUpperCase()] || m.gender;
  const meta = [gender, m.birthYear ? `born ${m.birthYear}` : null, m.address].filter(Boolean).join(" · ");
  return h(
    "div",
    { class: "page-head" },
    h(
      "div",
      {},
      h("p", { class: "crumb" }, h("a", { href: "#/members" }, "Members"), " / ", `#${m.id}`),
      h("h1", {}, m.name || "(no name on file)", " ", h("span", { class: "member-id" }, `#${m.id}`), " ", h("span", { class: ["badge", m.status === "active" ? "ok" : "warn"] }, m.status)),
      meta ? h("p", { class: "sub" }, meta) : null,
      h("div", { class: "chips", "aria-label": "Identifiers (masked)" }, m.identifiers.map((i) => h("span", { class: "chip" }, h("span", { class: "chip-kind" }, kindLabel(i.kind)), i.value))),
    ),
    h("div", { class: "toolbar", role: "group", "aria-label": "Member actions" }, actions),
  );
}

function loyaltyCards(loyalty) {
  const { tier, points } = loyalty;
  const pct = Math.max(0, Math.min(1, tier.progress));
  const maxLine = Math.max(1, ...points.byBusinessLine.map((l) => l.available));
  return h(
    "div",
    { class: "grid-3" },
    h(
      "section",
      { class: "card", "aria-labelledby": "tier-h" },
      h("h2", { id: "tier-h" }, "Tier"),
      h("p", { class: "big" }, tier.name, " ", h("span", { class: "muted" }, tier.code)),
      h("div", { class: "progress", role: "progressbar", "aria-label": "Growth toward the next tier", "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": String(Math.round(pct * 100)) }, bar(pct, "fill-accent")),
      h("p", { class: "small" }, tier.nextTier ? `${fmt.percent(pct)} of the way to ${tier.nextTier} · growth ${fmt.int(tier.growth)}` : `Top tier · growth ${fmt.int(tier.growth)}`),
      h("p", { class: "small muted" }, tier.retention > 0 ? `${fmt.int(tier.retention)} more growth keeps the tier by ${fmt.date(tier.periodEnd)}` : `Tier kept for this period (ends ${fmt.date(tier.periodEnd)})`),
    ),
    h(
      "section",
      { class: "card", "aria-labelledby": "points-h" },
      h("h2", { id: "points-h" }, "Points"),
      h("p", { class: "big", id: "available" }, fmt.int(points.available), h("span", { class: "unit" }, " available")),
      h("p", { class: "small muted" }, `${fmt.int(points.pending)} pending`, points.debt ? ` · ${fmt.int(points.debt)} owed` : ""),
      points.byBusinessLine.length
        ? h(
            "ul",
            { class: "bars", "aria-label": "Points by business line" },
            points.byBusinessLine.map((l) =>
              h("li", {}, lineBadge(l.line), bar(l.available / maxLine, `fill-${l.line}`), h("span", { class: "num" }, fmt.int(l.available))),
            ),
          )
        : h("p", { class: "small muted" }, "No points held at any line."),
    ),
    h(
      "section",
      { class: "card", "aria-labelledby": "expiring-h" },
      h("h2", { id: "expiring-h" }, "Expiring soon"),
      points.expiringSoon.length
        ? h("ul", { class: "plain" }, points.expiringSoon.map((e) => h("li", {}, h("strong", {}, fmt.int(e.amount)), ` points on ${fmt.date(e.expiresAt)}`)))
        : h("p", { class: "small muted" }, "Nothing expires in the coming weeks."),
    ),
  );
}

function recordsSection(m, reload) {
  const linkOf = new Map(m.links.map((l) => [l.sourceRecordId, l]));
  return h(
    "section",
    { class: "card", "aria-labelledby": "records-h" },
    h("h2", { id: "records-h" }, `Source records (${m.sourceRecords.length})`),
    h("p", { class: "sub" }, "What each business line knows, and why the hub put it in this member."),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "records" },
        h("thead", {}, h("tr", {}, ["Record", "Identifiers", "Why it is here", "Seen", ""].map((c) => h("th", { scope: "col" }, c)))),
        h(
          "tbody",
          {},
          m.sourceRecords.map((r) =>
            h(
              "tr",
              { dataset: { recordId: r.id } },
              h("td", {}, recordIdentity(r)),
              h("td", {}, identifierList(r.identifiers)),
              h("td", {}, explainBlock(linkOf.get(r.id))),
              h("td", { class: "nowrap" }, fmt.date(r.observedAt)),
              h("td", {}, m.sourceRecords.length > 1 ? h("button", { type: "button", class: "small-btn", onclick: () => move(m, r, reload), "aria-label": `Move record ${r.id}…` }, "Move…") : null),
            ),
          ),
        ),
      ),
    ),
  );
}

const EVENT_WORDS = { attach: "Attached", merge: "Merged", move: "Moved", unmerge: "Unmerged", erase: "Erased" };

function historySection(m, reload) {
  const seenOps = new Set();
  const rows = m.events.map((e) => {
    // One restore button per operation (its first event here): restoring undoes it as a whole.
    const first = !seenOps.has(e.operation);
    seenOps.add(e.operation);
    const restorable = first && (e.kind === "merge" || e.kind === "move");
    return h(
      "tr",
      {},
      h("td", { class: "nowrap" }, fmt.dateTime(e.at)),
      h("td", {}, EVENT_WORDS[e.kind] || e.kind),
      h("td", {}, e.sourceRecordId ? `record ${e.sourceRecordId}` : "—"),
      h("td", { class: "nowrap" }, e.fromMember ? memberLink(e.fromMember) : "new", " → ", e.toMember ? memberLink(e.toMember) : "—"),
      h("td", {}, e.rule || "—"),
      h("td", {}, e.actor),
      h("td", {}, restorable ? h("button", { type: "button", class: "small-btn", onclick: () => unmerge(m, e, reload) }, "Restore before this…") : null),
    );
  });
  return h(
    "section",
    { class: "card", "aria-labelledby": "history-h" },
    h("h2", { id: "history-h" }, "Identity history"),
    rows.length
      ? h("div", { class: "table-wrap" }, h("table", {}, h("thead", {}, h("tr", {}, ["When", "Change", "Record", "Member", "Rule", "By", ""].map((c) => h("th", { scope: "col" }, c)))), h("tbody", {}, rows)))
      : empty("No changes recorded."),
  );
}

function memberLink(id) {
  return h("a", { href: `#/member/${id}` }, `#${id}`);
}

function benefitsSection(benefits) {
  return h(
    "section",
    { class: "card", "aria-labelledby": "benefits-h" },
    h("h2", { id: "benefits-h" }, "Benefits"),
    benefits.length
      ? h(
          "table",
          {},
          h("thead", {}, h("tr", {}, ["Benefit", "Line", "Left", "Per"].map((c) => h("th", { scope: "col" }, c)))),
          h("tbody", {}, benefits.map((b) => h("tr", {}, h("td", {}, b.description || b.code), h("td", {}, lineBadge(b.line)), h("td", { class: "num" }, fmt.int(b.remaining)), h("td", {}, b.period)))),
        )
      : empty("No benefits at this tier."),
  );
}

// Redraws the audit trail of the profile on screen (after an act that does not reload it).
let refreshAudit = () => {};

function auditSection(memberId) {
  const body = h("div", {}, spinner("Loading the audit trail…"));
  refreshAudit = () => loadAudit(memberId, body);
  refreshAudit();
  return h("section", { class: "card", "aria-labelledby": "audit-h" }, h("h2", { id: "audit-h" }, "Audit trail"), h("p", { class: "sub" }, "Every act on this member through any screen or API, newest first."), body);
}

function loadAudit(memberId, body) {
  gql("MemberAudit", { subject: `member:${memberId}`, first: 20 }).then(
    ({ auditLog }) => {
      clear(body, 
        auditLog.length
          ? h(
              "div",
              { class: "table-wrap" },
              h(
                "table",
                {},
                h("thead", {}, h("tr", {}, ["When", "Action", "By", "Reason"].map((c) => h("th", { scope: "col" }, c)))),
                h("tbody", {}, auditLog.map((a) => h("tr", {}, h("td", { class: "nowrap" }, fmt.dateTime(a.at)), h("td", {}, h("code", {}, a.action)), h("td", {}, `${a.actor} (${a.role})`), h("td", {}, a.reason || "—")))),
              ),
            )
          : empty("No audited acts on this member yet."),
      );
    },
    (err) => clear(body, errorBox(err.message)),
  );
}

// ---- actions --------------------------------------------------------------------------------

const REASON = { name: "reason", label: "Reason (kept in the audit log)", type: "textarea" };

async function run(name, input, successType) {
  try {
    const data = await gql(name, { input });
    const result = Object.values(data)[0];
    const problem = problemOf(result, successType);
    return problem ? { problem } : { result };
  } catch (err) {
    return { problem: err instanceof ApiError ? err.message : String(err) };
  }
}

async function unmask(m, target) {
  let shown = null;
  await formDialog({
    title: "Show unmasked data",
    intro: "The member's data in clear is for this call only. Your name and reason go into the audit log.",
    fields: [REASON],
    submitLabel: "Show unmasked",
    onSubmit: async ({ reason }) => {
      const { problem, result } = await run("UnmaskMember", { memberId: m.id, reason }, "UnmaskedMember");
      shown = result;
      return problem;
    },
  });
  if (!shown) return;
  refreshAudit();
  const hide = h("button", { type: "button", class: "secondary", onclick: () => clear(target) }, "Hide");
  const rows = [
    ["Name", shown.name],
    ["Name (Latin)", shown.nameLatin],
    ["Gender", shown.gender],
    ["Birthday", shown.birthday],
    ["Address", addressText(shown.address)],
    ...identifierRows(shown.identifiers),
  ].filter(([, v]) => v);
  clear(target, 
    h(
      "section",
      { class: "card unmasked", "aria-labelledby": "unmasked-h" },
      h("div", { class: "section-head" }, h("h2", { id: "unmasked-h" }, "Unmasked data"), hide),
      h("p", { class: "small muted" }, "Recorded in the audit log. Hide it when the call is over."),
      h("dl", { class: "kv" }, rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
    ),
  );
  hide.focus();
}

function addressText(address) {
  if (!address) return null;
  if (typeof address === "string") return address;
  return ["country", "province", "city", "district", "detail"].map((k) => address[k]).filter(Boolean).join(" ");
}

function identifierRows(identifiers) {
  if (Array.isArray(identifiers)) {
    return identifiers.map((i) => (typeof i === "object" && i ? [kindLabel(i.kind), String(i.value)] : ["Identifier", String(i)]));
  }
  if (identifiers && typeof identifiers === "object") {
    return Object.entries(identifiers).map(([k, v]) => [kindLabel(k), Array.isArray(v) ? v.join(", ") : String(v)]);
  }
  return [];
}

async function merge(m) {
  const key = idempotencyKey("merge");
  let merged = null;
  await formDialog({
    title: `Merge member #${m.id} with another`,
    intro: "The two become one member: records, points and history move to the survivor. Unmerge restores the exact earlier state.",
    fields: [{ name: "other", label: "Other member's id", type: "text", inputmode: "numeric", pattern: "\\d+", hint: "The number after # on the other profile or search result." }, REASON],
    submitLabel: "Merge",
    danger: true,
    onSubmit: async ({ other, reason }) => {
      if (other === m.id) return "Choose a different member to merge with.";
      const { problem, result } = await run("MergeMembers", { memberA: m.id, memberB: other, reason, idempotencyKey: key }, "MembersMerged");
      merged = result;
      return problem;
    },
  });
  if (!merged) return;
  toast(`Merged member #${merged.absorbedId} into #${merged.survivorId}.`);
  location.hash = `#/member/${merged.survivorId}`;
  if (merged.survivorId === m.id) renderProfile(document.getElementById("main"), m.id);
}

async function unmerge(m, event, reload) {
  const key = idempotencyKey("unmerge");
  let done = null;
  await formDialog({
    title: event ? `Restore member #${m.id} to before ${fmt.dateTime(event.at)}` : `Unmerge member #${m.id}`,
    intro: event
      ? "Every record goes back to the member it belonged to just before this change; points follow the records that earned them."
      : "Splits the member back to the state before its last merge; points follow the records that earned them.",
    fields: [REASON],
    submitLabel: event ? "Restore" : "Unmerge",
    danger: true,
    onSubmit: async ({ reason }) => {
      const input = { memberId: m.id, reason, idempotencyKey: key };
      if (event) input.toEventId = event.id;
      const { problem, result } = await run("UnmergeMember", input, "MemberUnmerged");
      done = result;
      return problem;
    },
  });
  if (!done) return;
  const others = done.restoredMemberIds.filter((x) => x !== m.id);
  toast(`Unmerged: ${done.movedSourceRecordIds.length} record(s) moved back${others.length ? ` to ${others.map((x) => `#${x}`).join(", ")}` : ""}.`);
  reload();
}

async function move(m, record, reload) {
  const key = idempotencyKey("move");
  let moved = null;
  await formDialog({
    title: `Move record ${record.id} out of member #${m.id}`,
    intro: "The record and the points it earned go to another member, or become a member of their own. The record stays pinned there.",
    fields: [{ name: "to", label: "To member id (optional)", type: "text", inputmode: "numeric", pattern: "\\d+", required: false, hint: "Leave empty to make it a member of its own." }, REASON],
    submitLabel: "Move record",
    danger: true,
    onSubmit: async ({ to, reason }) => {
      const input = { sourceRecordId: record.id, reason, idempotencyKey: key };
      if (to) input.toMemberId = to;
      const { problem, result } = await run("MoveSourceRecord", input, "SourceRecordMoved");
      moved = result;
      return problem;
    },
  });
  if (!moved) return;
  toast(`Moved record ${moved.sourceRecordId} to member #${moved.toMemberId}.`);
  reload();
}

async function adjust(m, reload) {
  const key = idempotencyKey("adjust");
  let done = null;
  await formDialog({
    title: `Adjust points for member #${m.id}`,
    intro: "Positive adds points, negative takes them. Adjustments are capped per agent per day.",
    fields: [{ name: "amount", label: "Points", type: "number", step: "1", hint: "For example 200, or -50." }, REASON],
    submitLabel: "Adjust points",
    onSubmit: async ({ amount, reason }) => {
      const n = Number(amount);
      if (!Number.isInteger(n) || n === 0) return "Enter a whole number of points other than zero.";
      const { problem, result } = await run("AdjustPoints", { memberId: m.id, amount: n, reason, idempotencyKey: key }, "AdjustPointsSuccess");
      done = result;
      return problem;
    },
  });
  if (!done) return;
  const verb = done.amount > 0 ? `Added ${fmt.int(done.amount)}` : `Took ${fmt.int(-done.amount)}`;
  toast(`${verb} points${done.replayed ? " (already done before)" : ""}. Available now: ${fmt.int(done.available)}.`);
  reload();
}
