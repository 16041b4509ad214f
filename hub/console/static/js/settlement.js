// Settlement between business lines (admins): who owes whom for points spent across lines,
// drawn as a flow chart (inline SVG), with the netted table and finance's CSV.
import { gql } from "./api.js";
import { clear, empty, errorBox, fmt, h, lineBadge, lineLabel, s, spinner } from "./dom.js";

function thisMonth() {
  const now = new Date();
  return `${now.getFullYear()}-${String(now.getMonth() + 1).padStart(2, "0")}`;
}

let lastPeriod = null;

export async function renderSettlement(main) {
  const input = h("input", { id: "period", name: "period", type: "month", required: true, value: lastPeriod || thisMonth(), pattern: "\\d{4}-\\d{2}" });
  const out = h("div", { id: "settlement-out" });
  const form = h(
    "form",
    { class: "inline-form" },
    h("label", { for: "period" }, "Period (month)"),
    input,
    h("button", { type: "submit", class: "primary" }, "Show settlement"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    load(input.value);
  });
  clear(main, 
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Settlement"), h("p", { class: "sub" }, "When points issued by one line are spent at another, the issuing line owes the redeeming line. Amounts are in yuan."))),
    h("div", { class: "card" }, form),
    out,
  );

  async function load(period) {
    lastPeriod = period;
    clear(out, spinner("Settling…"));
    try {
      const { settlement } = await gql("Settlement", { period });
      clear(out, report(settlement));
    } catch (err) {
      clear(out, errorBox(err.message));
    }
  }

  await load(input.value);
}

function report(st) {
  const download = h("button", { type: "button", class: "secondary", onclick: () => downloadCsv(st) }, "Download CSV");
  const summary = h(
    "div",
    { class: "summary" },
    h("div", {}, h("span", { class: "label" }, "Period"), h("strong", {}, st.period)),
    h("div", {}, h("span", { class: "label" }, "State"), h("strong", {}, st.state)),
    h("div", {}, h("span", { class: "label" }, "Gross flows"), h("strong", {}, fmt.fen(st.pairs.reduce((a, p) => a + p.amountFen, 0)))),
    h("div", {}, h("span", { class: "label" }, "Ties out to clearing"), h("strong", { class: st.tiesOut ? "pos" : "neg" }, st.tiesOut ? "Yes ✓" : `No ✗ (off by ${fmt.int(st.clearingSum)} points)`)),
    download,
  );
  if (!st.pairs.length) {
    return h("div", {}, h("section", { class: "card" }, summary), empty(`No points crossed business lines in ${st.period}.`));
  }
  return h(
    "div",
    {},
    h("section", { class: "card" }, summary),
    h("section", { class: "card", "aria-labelledby": "flows-h" }, h("h2", { id: "flows-h" }, "Flows between lines"), h("p", { class: "sub" }, "Left: the line that issued the points. Right: the line where they were spent. Band width is the amount owed."), flowChart(st.pairs)),
    h(
      "div",
      { class: "grid-2" },
      h(
        "section",
        { class: "card", "aria-labelledby": "netted-h" },
        h("h2", { id: "netted-h" }, "Netted: who pays whom"),
        table(
          ["Payer", "Payee", "Points", "Amount"],
          st.netted.map((n) => [lineBadge(n.payerLine), lineBadge(n.payeeLine), num(fmt.int(n.points)), num(fmt.fen(n.amountFen))]),
          "netted",
        ),
      ),
      h(
        "section",
        { class: "card", "aria-labelledby": "positions-h" },
        h("h2", { id: "positions-h" }, "Net position per line"),
        table(
          ["Line", "Net points", "Net amount", "Clearing", "Ties out"],
          st.lines.map((l) => [lineBadge(l.line), num(fmt.signed(l.netPoints)), num(fmt.fen(l.netFen)), num(fmt.signed(l.clearingPoints)), l.tiesOut ? "✓" : h("span", { class: "neg" }, "✗")]),
          "positions",
        ),
      ),
    ),
    h(
      "section",
      { class: "card", "aria-labelledby": "gross-h" },
      h("h2", { id: "gross-h" }, "Gross flows"),
      table(
        ["Issued by", "Spent at", "Points", "Amount"],
        st.pairs.map((p) => [lineBadge(p.issuerLine), lineBadge(p.redeemingLine), num(fmt.int(p.points)), num(fmt.fen(p.amountFen))]),
        "gross",
      ),
    ),
  );
}

function num(text) {
  return { num: text };
}

function table(headers, rows, name) {
  const numeric = headers.map((_, i) => rows.length > 0 && rows.every((r) => r[i] && r[i].num !== undefined));
  return h(
    "table",
    { class: name, dataset: { table: name } },
    h("thead", {}, h("tr", {}, headers.map((c, i) => h("th", { scope: "col", class: numeric[i] ? "num" : null }, c)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, r.map((cell) => (cell && cell.num !== undefined ? h("td", { class: "num" }, cell.num) : h("td", {}, cell)))))),
  );
}

function downloadCsv(st) {
  // A BOM so spreadsheet programs read the UTF-8 correctly.
  const blob = new Blob(["\ufeff", st.csv], { type: "text/csv;charset=utf-8" });
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: url, download: `settlement-${st.period}.csv` });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

// ---- the chart ------------------------------------------------------------------------------

const WIDTH = 760;
const NODE_W = 14;
const GAP = 18;
const LEFT_X = 150;
const RIGHT_X = WIDTH - 150 - NODE_W;

/** Issuing lines on the left, redeeming lines on the right, bands as wide as the fen owed. */
function flowChart(all) {
  // Refunds can leave a pair at zero or below for the month: nothing flows there.
  const pairs = all.filter((p) => p.amountFen > 0);
  if (!pairs.length) return empty("No net flow to draw for this period.");
  const outOf = totals(pairs, "issuerLine");
  const into = totals(pairs, "redeemingLine");
  const total = pairs.reduce((a, p) => a + p.amountFen, 0);
  const count = Math.max(outOf.size, into.size);
  const height = Math.max(180, 60 + count * 70);
  const scale = (height - 40 - GAP * (count - 1)) / total;

  const leftY = place(outOf, scale, height);
  const rightY = place(into, scale, height);
  const leftCursor = new Map(leftY);
  const rightCursor = new Map(rightY);

  const bands = [...pairs]
    .sort((a, b) => a.issuerLine.localeCompare(b.issuerLine) || a.redeemingLine.localeCompare(b.redeemingLine))
    .map((p) => {
      const w = Math.max(1.5, p.amountFen * scale);
      const y0 = leftCursor.get(p.issuerLine);
      const y1 = rightCursor.get(p.redeemingLine);
      leftCursor.set(p.issuerLine, y0 + w);
      rightCursor.set(p.redeemingLine, y1 + w);
      const x0 = LEFT_X + NODE_W;
      const x1 = RIGHT_X;
      const mid = (x0 + x1) / 2;
      const d = `M${x0},${y0} C${mid},${y0} ${mid},${y1} ${x1},${y1} L${x1},${y1 + w} C${mid},${y1 + w} ${mid},${y0 + w} ${x0},${y0 + w} Z`;
      return s("path", { d, class: ["band", `band-${p.issuerLine}`] }, s("title", {}, `${lineLabel(p.issuerLine)} → ${lineLabel(p.redeemingLine)}: ${fmt.fen(p.amountFen)} (${fmt.int(p.points)} points)`));
    });

  const nodes = (map, ys, x, anchor, labelX) =>
    [...map].map(([line, fen]) => {
      const y = ys.get(line);
      const hgt = Math.max(2, fen * scale);
      return s(
        "g",
        { class: "node" },
        s("rect", { x, y, width: NODE_W, height: hgt, rx: 3, class: `node-${line}` }),
        s("text", { x: labelX, y: y + hgt / 2 - 2, "text-anchor": anchor, class: "node-label" }, lineLabel(line)),
        s("text", { x: labelX, y: y + hgt / 2 + 14, "text-anchor": anchor, class: "node-value" }, fmt.fen(fen)),
      );
    });

  const summary = pairs.map((p) => `${lineLabel(p.issuerLine)} to ${lineLabel(p.redeemingLine)} ${fmt.fen(p.amountFen)}`).join("; ");
  return h(
    "figure",
    { class: "chart" },
    s(
      "svg",
      { viewBox: `0 0 ${WIDTH} ${height}`, role: "img", "aria-label": `Flows between lines: ${summary}`, class: "flow-chart" },
      s("text", { x: LEFT_X + NODE_W / 2, y: 14, "text-anchor": "middle", class: "axis-label" }, "Issued by"),
      s("text", { x: RIGHT_X + NODE_W / 2, y: 14, "text-anchor": "middle", class: "axis-label" }, "Spent at"),
      bands,
      nodes(outOf, leftY, LEFT_X, "end", LEFT_X - 10),
      nodes(into, rightY, RIGHT_X, "start", RIGHT_X + NODE_W + 10),
    ),
  );
}

function totals(pairs, key) {
  const map = new Map();
  for (const p of pairs) map.set(p[key], (map.get(p[key]) || 0) + p.amountFen);
  return new Map([...map].sort((a, b) => a[0].localeCompare(b[0])));
}

function place(map, scale, height) {
  const used = [...map.values()].reduce((a, v) => a + Math.max(2, v * scale), 0) + GAP * (map.size - 1);
  let y = 24 + (height - 24 - used) / 2;
  const ys = new Map();
  for (const [line, fen] of map) {
    ys.set(line, y);
    y += Math.max(2, fen * scale) + GAP;
  }
  return ys;
}
