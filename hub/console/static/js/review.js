// The review queue: pairs the resolver was not sure about, side by side, to accept or reject.
import { ApiError, gql, problemOf } from "./api.js";
import { clear, empty, errorBox, fmt, formDialog, h, idempotencyKey, spinner, toast } from "./dom.js";
import { comparisonTable, identifierList, recordIdentity } from "./records.js";

const PAGE = 10;

const REASON_WORDS = {
  score_between_thresholds: "The score is between the merge and the keep-apart thresholds",
  weak_evidence_only: "A merge-grade score, but only from weak evidence",
  conflicting_strong_keys: "They share evidence but hold different strong keys",
  max_cluster_size: "Merging would make an unusually large member",
  bridges_large_clusters: "This pair would join two large members",
  shared_key_different_people: "A shared key, but the rest says different people",
  shared_key_only_link: "Their only link is a value several people use (a household's phone)",
};

const ORDERS = [
  ["OLDEST", "Oldest first"],
  ["MOST_LIKELY", "Most likely the same person first"],
];

export async function renderReview(main) {
  const list = h("div", { class: "review-list" });
  const footer = h("div", { class: "actions-left" });
  const count = h("p", { class: "sub", "aria-live": "polite" });
  let orderBy = "OLDEST";
  const order = h(
    "select",
    { id: "review-order", onchange: (e) => { orderBy = e.target.value; restart(); } },
    ORDERS.map(([value, label]) => h("option", { value }, label)),
  );
  clear(main, 
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Review queue"), h("p", { class: "sub" }, "Pairs the hub would not merge on its own. Compare the fields, then accept (merge their members) or reject (keep them apart)."), count), h("div", { class: "inline-field" }, h("label", { for: "review-order" }, "Order"), order)),
    list,
    footer,
  );
  let after = null;
  let shown = 0;
  let generation = 0; // a page that arrives after the order changed is dropped

  function restart() {
    generation += 1;
    after = null;
    shown = 0;
    clear(list, spinner("Loading the queue…"));
    clear(footer);
    return loadPage();
  }

  async function loadPage() {
    const mine = generation;
    try {
      const { reviewQueue } = await gql("ReviewQueue", { first: PAGE, after, orderBy });
      if (mine !== generation) return;
      if (after === null) clear(list);
      list.dataset.order = orderBy;
      for (const edge of reviewQueue.edges) list.append(reviewCard(edge.node, () => updateCount(-1)));
      shown += reviewQueue.edges.length;
      after = reviewQueue.pageInfo.endCursor;
      updateCount(0, reviewQueue.pageInfo.hasNextPage);
      clear(footer);
      if (reviewQueue.pageInfo.hasNextPage) {
        footer.append(h("button", { type: "button", class: "secondary", onclick: loadPage }, "Load more pairs"));
      }
      if (!shown) list.append(empty("The queue is empty: nothing waits for a decision."));
    } catch (err) {
      if (mine !== generation) return;
      clear(list, errorBox(err.message));
    }
  }

  let more = false;
  function updateCount(delta, hasMore = more) {
    shown += delta;
    more = hasMore;
    count.textContent = `${shown}${more ? "+" : ""} open ${shown === 1 ? "pair" : "pairs"} shown.`;
  }

  await restart();
}

function reviewCard(item, onResolved) {
  const titleId = `review-${item.id}-h`;
  const explain = item.explain || {};
  const probability = explain.probability;
  const outcome = h("div", { class: "review-outcome", "aria-live": "polite" });
  const accept = h("button", { type: "button", class: "primary", onclick: () => decide("ACCEPT") }, "Accept — merge");
  const reject = h("button", { type: "button", class: "secondary", onclick: () => decide("REJECT") }, "Reject — keep apart");
  const card = h(
    "article",
    { class: "card review", "aria-labelledby": titleId, dataset: { reviewId: item.id, score: item.scoreBits } },
    h(
      "header",
      { class: "review-head" },
      h("h2", { id: titleId }, `Pair #${item.id}`),
      h("span", { class: "score" }, fmt.bits(item.scoreBits), probability ? ` · ${fmt.percent(probability)} likely the same` : ""),
    ),
    h("p", { class: "review-reason" }, REASON_WORDS[item.reason] || item.reason.replaceAll("_", " "), item.detail ? h("span", { class: "muted" }, ` (${item.detail.replaceAll("_", " ")})`) : null, h("span", { class: "small muted" }, ` · waiting since ${fmt.date(item.createdAt)}`)),
    h(
      "div",
      { class: "pair" },
      recordPanel("A", item.recordA),
      h("div", { class: "pair-compare" }, h("h3", {}, "Field comparison"), comparisonTable(explain)),
      recordPanel("B", item.recordB),
    ),
    h("div", { class: "actions" }, outcome, reject, accept),
  );

  async function decide(decision) {
    const key = idempotencyKey("review");
    let resolved = null;
    await formDialog({
      title: decision === "ACCEPT" ? `Accept pair #${item.id}: merge` : `Reject pair #${item.id}: keep apart`,
      intro:
        decision === "ACCEPT"
          ? "The two records' members become one; unmerge can restore them."
          : "The hub will not propose this pair again.",
      fields: [{ name: "reason", label: "Reason (kept in the audit log)", type: "textarea" }],
      submitLabel: decision === "ACCEPT" ? "Accept and merge" : "Reject",
      danger: decision === "ACCEPT",
      onSubmit: async ({ reason }) => {
        try {
          const { resolveReview } = await gql("ResolveReview", { input: { id: item.id, decision, reason, idempotencyKey: key } });
          const problem = problemOf(resolveReview, "ReviewResolved");
          resolved = problem ? null : resolveReview;
          return problem;
        } catch (err) {
          return err instanceof ApiError ? err.message : String(err);
        }
      },
    });
    if (!resolved) return;
    accept.remove();
    reject.remove();
    card.classList.add("resolved");
    const words =
      decision === "ACCEPT"
        ? [`Accepted: merged into `, h("a", { href: `#/member/${resolved.survivorId}` }, `member #${resolved.survivorId}`), "."]
        : ["Rejected: the records stay apart."];
    clear(outcome, h("span", { class: "badge ok" }, resolved.status), " ", ...words);
    toast(decision === "ACCEPT" ? `Pair #${item.id} accepted: merged into member #${resolved.survivorId}.` : `Pair #${item.id} rejected.`);
    onResolved();
    outcome.querySelector("a")?.focus();
  }

  return card;
}

function recordPanel(side, record) {
  if (!record) return h("div", { class: "pair-record" }, h("h3", {}, `Record ${side}`), empty("This record was erased."));
  return h(
    "div",
    { class: "pair-record" },
    h("h3", {}, `Record ${side}`),
    recordIdentity(record),
    h("p", { class: "small" }, "In ", record.memberId ? h("a", { href: `#/member/${record.memberId}` }, `member #${record.memberId}`) : "no member", ` · seen ${fmt.date(record.observedAt)}`),
    identifierList(record.identifiers),
  );
}
