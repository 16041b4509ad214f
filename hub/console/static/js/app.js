// The console shell: sign-in, navigation and the hash router.
import { ApiError, gql, session } from "./api.js";
import { clear, h, toast } from "./dom.js";
import { renderProfile, renderSearch } from "./members.js";
import { renderReview } from "./review.js";
import { renderSettlement } from "./settlement.js";

const main = document.getElementById("main");
const STAFF = new Set(["agent", "admin"]);

const ROUTES = [
  { pattern: /^#\/member\/(\d+)$/, nav: "members", render: (m) => renderProfile(main, m[1]) },
  { pattern: /^#\/review$/, nav: "review", render: () => renderReview(main) },
  { pattern: /^#\/settlement$/, nav: "settlement", admin: true, render: () => renderSettlement(main) },
  { pattern: /^(#\/?(members)?)?$/, nav: "members", render: () => renderSearch(main) },
];

function showShell(viewer) {
  const admin = viewer.role === "admin";
  document.getElementById("nav").hidden = false;
  document.getElementById("who").hidden = false;
  document.getElementById("who-role").textContent = viewer.businessLine ? `${viewer.role} · ${viewer.businessLine}` : viewer.role;
  for (const el of document.querySelectorAll("[data-admin]")) el.hidden = !admin;
}

function hideShell() {
  document.getElementById("nav").hidden = true;
  document.getElementById("who").hidden = true;
}

function renderSignIn(message) {
  hideShell();
  const error = h("div", { class: "signin-error", role: "alert" }, message || "");
  const input = h("textarea", {
    id: "token",
    name: "token",
    rows: 4,
    required: true,
    spellcheck: "false",
    autocomplete: "off",
    "aria-describedby": "token-hint",
  });
  const button = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h(
    "form",
    { class: "card signin", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title", tabindex: "-1" }, "Sign in to the console"),
    h("div", { class: "field" }, h("label", { for: "token" }, "Agent token"), input),
    h(
      "p",
      { class: "hint", id: "token-hint" },
      "Paste the bearer token your team lead issued. It is kept in this browser tab only and sent to this hub only.",
    ),
    error,
    h("div", { class: "actions" }, button),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = input.value.trim();
    if (!token) return;
    button.disabled = true;
    error.textContent = "";
    session.token = token;
    try {
      const viewer = await whoAmI();
      if (!viewer) {
        error.textContent = "That token does not belong to an agent or an admin; this console is for customer service.";
        session.token = null;
        return;
      }
      if (location.hash.length > 2) route();
      else location.hash = "#/members"; // routes via hashchange
    } catch (err) {
      session.token = null;
      error.textContent = err instanceof ApiError ? err.message : String(err);
    } finally {
      button.disabled = false;
    }
  });
  clear(main, form);
  input.focus();
}

async function whoAmI() {
  const { viewer } = await gql("ConsoleViewer");
  if (!viewer.authenticated || !STAFF.has(viewer.role)) return null;
  session.viewer = viewer;
  showShell(viewer);
  return viewer;
}

let routing = 0;

async function route() {
  if (!session.token) {
    renderSignIn();
    return;
  }
  const seq = ++routing;
  if (!session.viewer) {
    try {
      if (!(await whoAmI())) {
        session.token = null;
        renderSignIn("That token does not belong to an agent or an admin.");
        return;
      }
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        session.token = null;
        renderSignIn(err.message);
      } else {
        clear(main, h("div", { class: "error-box", role: "alert" }, err.message));
      }
      return;
    }
  }
  if (seq !== routing) return;
  const hash = location.hash;
  const match = ROUTES.map((r) => [r, r.pattern.exec(hash)]).find(([, m]) => m);
  if (!match) {
    location.hash = "#/members";
    return;
  }
  const [routeDef, m] = match;
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.nav === routeDef.nav) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (routeDef.admin && session.viewer.role !== "admin") {
    clear(main, h("div", { class: "error-box", role: "alert" }, "The settlement view is for admins."));
    return;
  }
  await routeDef.render(m);
  // Move focus to the new page's heading so keyboard and screen-reader users land on it.
  const heading = main.querySelector("h1");
  if (heading && seq === routing && !main.contains(document.activeElement)) {
    heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: true });
  }
}

function signOut(message) {
  session.token = null;
  session.viewer = null;
  renderSignIn(message);
}

document.getElementById("sign-out").addEventListener("click", () => {
  signOut();
  toast("Signed out. The token was removed from this tab.");
});
// The skip link focuses the content without touching the hash (the hash is the router's).
document.querySelector(".skip-link").addEventListener("click", (event) => {
  event.preventDefault();
  main.focus();
});
window.addEventListener("console:signed-out", (event) => signOut(event.detail));
window.addEventListener("hashchange", route);
route();
