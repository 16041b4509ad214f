// Source records and the explanations of why records belong together (shared by the profile
// and the review queue). Explanations carry field names, levels and weights, never values.
import { bar, fmt, h, kindLabel, lineBadge, lineLabel } from "./dom.js";

const SOURCE_LABELS = {
  pos: "Store POS",
  app: "App / WeChat",
  taobao: "Tmall / Taobao",
  douyin_members: "Douyin shop",
  hotel: "Hotel PMS",
};

export function sourceLabel(source) {
  return SOURCE_LABELS[source] || source;
}

export function recordIdentity(r) {
  return h(
    "div",
    { class: "record-id" },
    h("div", {}, lineBadge(r.businessLine), sourceLabel(r.source) !== lineLabel(r.businessLine) ? h("span", { class: "source" }, " ", sourceLabel(r.source)) : null, r.pinned ? h("span", { class: "badge pin", title: "Placed by an agent; resolution keeps it here" }, "pinned") : null, r.erased ? h("span", { class: "badge warn" }, "erased") : null),
    h("div", { class: "small muted" }, `record ${r.id} · `, h("code", {}, r.sourceKey)),
  );
}

export function identifierList(identifiers) {
  if (!identifiers.length) return h("span", { class: "muted" }, "—");
  return h(
    "ul",
    { class: "ids" },
    identifiers.map((i) =>
      h("li", {}, h("span", { class: "id-kind" }, kindLabel(i.kind)), " ", h("span", { class: "id-value" }, i.value), i.verified ? h("span", { class: "verified", title: "verified by the source" }, " ✓") : null),
    ),
  );
}

/** Why a record sits in its member, in words, with the field comparisons on demand. */
export function explainBlock(link) {
  if (!link) return h("span", { class: "muted" }, "—");
  const summary = ruleWords(link);
  const comparisons = link.explain && Array.isArray(link.explain.comparisons) ? link.explain.comparisons : [];
  const by = link.createdBy && link.createdBy !== "ingest" ? ` · by ${link.createdBy}` : "";
  if (!comparisons.length) return h("div", { class: "why" }, summary, h("span", { class: "small muted" }, by));
  return h(
    "details",
    { class: "why" },
    h("summary", {}, summary, link.linkedTo ? h("span", { class: "small muted" }, ` (to record ${link.linkedTo})`) : null),
    comparisonTable(link.explain),
  );
}

function ruleWords(link) {
  const rule = link.rule || "";
  if (rule === "first") return "First record of this member";
  if (rule === "pinned_member") return "Kept here by an agent";
  if (rule.startsWith("key:")) return `Same ${kindLabel(rule.slice(4))}`;
  if (rule.startsWith("agent:")) return `Placed by an agent (${rule.slice(6)})`;
  if (rule === "score") {
    const p = link.explain && link.explain.probability;
    return `Probable match: ${fmt.bits(link.scoreBits ?? link.explain?.score_bits)}${p ? ` (${fmt.percent(p)})` : ""}`;
  }
  return rule;
}

const LEVEL_WORDS = { null: "not compared", exact: "same", different: "different", pinyin_equal: "same pinyin", shared_value: "same, but shared by several people" };

/** The field comparisons behind a score: agreeing fields first, the uncompared ones folded. */
export function comparisonTable(explain) {
  const rows = (explain.comparisons || []).filter((c) => c.level !== "null");
  const skipped = (explain.comparisons || []).filter((c) => c.level === "null");
  const maxWeight = Math.max(1, ...rows.map((c) => Math.abs(c.weight_bits)));
  return h(
    "div",
    { class: "compare" },
    h(
      "table",
      { class: "compare-table" },
      h("caption", { class: "sr-only" }, "Field comparisons"),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Field"), h("th", { scope: "col" }, "Result"), h("th", { scope: "col", class: "num" }, "Weight"))),
      h(
        "tbody",
        {},
        rows.map((c) =>
          h(
            "tr",
            { class: c.weight_bits >= 0 ? "for" : "against" },
            h("td", {}, c.field.replaceAll("_", " ")),
            h("td", {}, LEVEL_WORDS[c.level] || c.level.replaceAll("_", " ")),
            h("td", { class: "num weight" }, bar(Math.abs(c.weight_bits) / maxWeight, c.weight_bits >= 0 ? "fill-for" : "fill-against"), `${c.weight_bits > 0 ? "+" : ""}${c.weight_bits.toFixed(1)}`),
          ),
        ),
      ),
    ),
    skipped.length ? h("p", { class: "small muted" }, `Not compared (missing on one side): ${skipped.map((c) => c.field.replaceAll("_", " ")).join(", ")}.`) : null,
  );
}
