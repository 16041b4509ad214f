// Small DOM helpers: elements are built with createElement and textContent only, so no value
// from the hub is ever parsed as HTML.

const SVG_NS = "http://www.w3.org/2000/svg";

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function setAttrs(el, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === "class") {
      el.setAttribute("class", Array.isArray(value) ? value.filter(Boolean).join(" ") : value);
    } else if (key === "value" && "value" in el && !(el instanceof SVGElement)) {
      el.value = value;
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (key in el && !(el instanceof SVGElement) && typeof value !== "string") {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  return el;
}

export function h(tag, attrs, ...children) {
  return append(setAttrs(document.createElement(tag), attrs), children);
}

export function s(tag, attrs, ...children) {
  return append(setAttrs(document.createElementNS(SVG_NS, tag), attrs), children);
}

/** Replace the children of `el` (null and false children are skipped, arrays flattened). */
export function clear(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

// ---- formatting -------------------------------------------------------------------------

const dateFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });
const dateTimeFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const intFmt = new Intl.NumberFormat();

export const fmt = {
  date: (iso) => (iso ? dateFmt.format(new Date(iso)) : "—"),
  dateTime: (iso) => (iso ? dateTimeFmt.format(new Date(iso)) : "—"),
  int: (n) => (n === null || n === undefined ? "—" : intFmt.format(n)),
  signed: (n) => (n > 0 ? `+${intFmt.format(n)}` : intFmt.format(n)),
  // Money is integer fen end to end; only the screen shows yuan.
  fen: (fen) => {
    const sign = fen < 0 ? "-" : "";
    const abs = Math.abs(fen);
    const yuan = intFmt.format(Math.trunc(abs / 100));
    return `${sign}¥${yuan}.${String(abs % 100).padStart(2, "0")}`;
  },
  percent: (x) => `${Math.round(x * 1000) / 10}%`,
  bits: (x) => (x === null || x === undefined ? "—" : `${x.toFixed(1)} bits`),
};

const KIND_LABELS = {
  phone: "Phone",
  phone_masked: "Phone (masked)",
  email: "Email",
  id_document: "ID document",
  wechat_unionid: "WeChat unionid",
  wechat_openid: "WeChat openid",
  app_user_id: "App user ID",
  douyin_union_id: "Douyin union ID",
  douyin_open_id: "Douyin open ID",
  taobao_ouid: "Taobao ouid",
  taobao_omid: "Taobao omid",
  taobao_nick: "Taobao nick",
  taobao_mix_nick: "Taobao mix nick",
  card_no: "Card no.",
  hotel_profile_id: "Hotel profile",
  membership_id: "Membership ID",
};

export function kindLabel(kind) {
  const key = String(kind || "").toLowerCase();
  return KIND_LABELS[key] || key.replaceAll("_", " ");
}

const LINE_LABELS = {
  store: "Stores",
  app: "App / WeChat",
  taobao: "Tmall / Taobao",
  douyin: "Douyin",
  hotel: "Hotels",
  group: "Group",
  _group: "Group (adjustments)",
};

export function lineLabel(line) {
  return LINE_LABELS[line] || line;
}

export function lineBadge(line) {
  return h("span", { class: ["badge", `line-${line}`] }, lineLabel(line));
}

/** A horizontal bar filled to `fraction` (CSSOM width: the CSP allows no inline style). */
export function bar(fraction, fillClass) {
  const fill = h("span", { class: ["bar-fill", fillClass] });
  fill.style.width = `${Math.round(Math.max(0, Math.min(1, fraction)) * 1000) / 10}%`;
  return h("span", { class: "bar", "aria-hidden": "true" }, fill);
}

// ---- feedback ---------------------------------------------------------------------------

export function toast(message, kind = "ok") {
  const region = document.getElementById("toasts");
  const item = h(
    "div",
    { class: ["toast", `toast-${kind}`] },
    h("span", {}, message),
    h("button", { type: "button", class: "link", "aria-label": "Dismiss", onclick: () => item.remove() }, "×"),
  );
  region.append(item);
  while (region.children.length > 3) region.firstElementChild.remove();
  // Errors stay until dismissed: an agent may need to read them to the customer.
  if (kind !== "error") setTimeout(() => item.remove(), 6000);
  return item;
}

export function errorBox(message) {
  return h("div", { class: "error-box", role: "alert" }, h("strong", {}, "Could not complete: "), message);
}

export function empty(message) {
  return h("p", { class: "empty" }, message);
}

export function spinner(label = "Loading…") {
  return h("p", { class: "loading", role: "status" }, h("span", { class: "spin", "aria-hidden": "true" }), label);
}

// ---- forms in a modal dialog ------------------------------------------------------------

export function idempotencyKey(prefix) {
  // crypto.randomUUID needs a secure context; getRandomValues works on plain-HTTP intranets.
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return `console-${prefix}-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

let fieldSeq = 0;

/**
 * Ask for input in a modal <dialog>. fields: [{name, label, type, required, hint, value, min}].
 * onSubmit(values) runs while the dialog stays open and returns an error text to show, or
 * nothing to close. Resolves to the values on success, null when cancelled.
 */
export function formDialog({ title, intro, fields, submitLabel, danger = false, onSubmit }) {
  const dialog = document.getElementById("dialog");
  const opener = document.activeElement;
  const error = h("div", { class: "dialog-error", role: "alert" });
  const inputs = {};
  const rows = fields.map((f) => {
    const id = `f-${++fieldSeq}`;
    const hintId = f.hint ? `${id}-hint` : null;
    const attrs = {
      id,
      name: f.name,
      required: f.required !== false,
      "aria-describedby": hintId,
      value: f.value ?? "",
      autocomplete: "off",
    };
    const input =
      f.type === "textarea"
        ? h("textarea", { ...attrs, rows: 3, maxlength: 500 })
        : h("input", { ...attrs, type: f.type || "text", inputmode: f.inputmode, step: f.step, min: f.min, pattern: f.pattern });
    inputs[f.name] = input;
    return h("div", { class: "field" }, h("label", { for: id }, f.label), input, f.hint ? h("p", { class: "hint", id: hintId }, f.hint) : null);
  });
  const submit = h("button", { type: "submit", class: danger ? "danger" : "primary" }, submitLabel);
  const cancel = h("button", { type: "button", class: "secondary", onclick: () => dialog.close("cancel") }, "Cancel");
  const form = h(
    "form",
    { method: "dialog", class: "dialog-form" },
    h("h2", { id: "dialog-title" }, title),
    intro ? h("p", { class: "dialog-intro" }, intro) : null,
    rows,
    error,
    h("div", { class: "actions" }, cancel, submit),
  );
  clear(dialog, form);
  dialog.setAttribute("aria-labelledby", "dialog-title");

  return new Promise((resolve) => {
    let result = null;
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!form.reportValidity()) return;
      const values = Object.fromEntries(Object.entries(inputs).map(([k, el]) => [k, el.value.trim()]));
      submit.disabled = true;
      submit.setAttribute("aria-busy", "true");
      error.textContent = "";
      try {
        const problem = await onSubmit(values);
        if (problem) {
          error.textContent = problem;
          return;
        }
        result = values;
        dialog.close("done");
      } finally {
        submit.disabled = false;
        submit.removeAttribute("aria-busy");
      }
    });
    dialog.addEventListener(
      "close",
      () => {
        if (opener && document.contains(opener)) opener.focus();
        resolve(result);
      },
      { once: true },
    );
    dialog.showModal();
    (fields.length ? inputs[fields[0].name] : submit).focus();
  });
}
