// The only way the console talks to the hub: POST ../graphql with the agent's bearer token and
// the id of a persisted operation (schema/operations/console/<Name>.graphql). The ids come
// from operations.json, which the server derives from the same manifest /graphql uses, so the
// console works when the hub enforces persisted operations.

const TOKEN_KEY = "memberHub.console.token";
const GRAPHQL_URL = new URL("../graphql", document.baseURI).href;
let operations = null;

export class ApiError extends Error {
  constructor(message, { code = null, status = 0 } = {}) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

export const session = {
  get token() {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  set token(value) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
  viewer: null,
};

async function loadOperations() {
  if (operations) return operations;
  let response;
  try {
    response = await fetch("operations.json", { headers: { accept: "application/json" } });
  } catch {
    throw new ApiError("The hub did not answer. Check the network connection and try again.");
  }
  if (!response.ok) throw new ApiError(`The console's operation list could not be loaded (HTTP ${response.status}).`);
  operations = await response.json();
  return operations;
}

// "PERMISSION_DENIED: needs an admin token" -> "Permission denied: needs an admin token".
export function inWords(message) {
  const match = /^([A-Z][A-Z_]+):\s*(.*)$/s.exec(message || "");
  if (!match) return message || "Something went wrong.";
  const code = match[1].toLowerCase().replaceAll("_", " ");
  return `${code[0].toUpperCase()}${code.slice(1)}: ${match[2]}`;
}

const CODE_WORDS = {
  NOT_AUTHENTICATED: "Your sign-in is not valid any more. Sign in again with a current token.",
  PERSISTED_OPERATION_NOT_FOUND:
    "This hub does not know one of the console's operations: the page and the server are different versions. Reload the page.",
  PERSISTED_OPERATION_REQUIRED: "This hub only runs its registered operations. Reload the page.",
  RATE_LIMITED: "Too many requests in a short time. Wait a moment and try again.",
  LIMIT_EXCEEDED: "The request was too large for the hub.",
};

/** Run a console operation; resolves to `data`, rejects with an ApiError in words. */
export async function gql(name, variables = {}) {
  const ops = await loadOperations();
  const id = ops[name];
  if (!id) throw new ApiError(`The console has no operation named ${name}. Reload the page.`);
  const headers = { "content-type": "application/json", accept: "application/json" };
  if (session.token) headers.authorization = `Bearer ${session.token}`;
  let response;
  try {
    response = await fetch(GRAPHQL_URL, {
      method: "POST",
      headers,
      body: JSON.stringify({ id, operationName: name, variables }),
    });
  } catch {
    throw new ApiError("The hub did not answer. Check the network connection and try again.");
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    throw new ApiError(`The hub answered with an unexpected response (HTTP ${response.status}).`, { status: response.status });
  }
  const first = body && Array.isArray(body.errors) ? body.errors[0] : null;
  if (first) {
    const code = (first.extensions && first.extensions.code) || null;
    const unauthenticated = response.status === 401 || code === "NOT_AUTHENTICATED";
    if (unauthenticated && !session.viewer) {
      // Signing in: say what is wrong with the token that was pasted.
      throw new ApiError(`The hub refused this token: ${first.message}.`, { code, status: response.status });
    }
    const error = new ApiError(CODE_WORDS[code] || inWords(first.message), { code, status: response.status });
    if (unauthenticated) window.dispatchEvent(new CustomEvent("console:signed-out", { detail: error.message }));
    throw error;
  }
  if (!response.ok || !body || !body.data) {
    throw new ApiError(`The hub could not answer (HTTP ${response.status}).`, { status: response.status });
  }
  return body.data;
}

const PROBLEM_WORDS = {
  InsufficientPoints: (r) => `Not enough points: ${r.requested} requested, ${r.available} available.`,
  MemberNotFound: (r) => r.message || "There is no such member.",
  IdempotencyConflict: (r) => r.message || "This request was already made with different values.",
};

/**
 * A typed result union in words: null when it is the success type, else the sentence to show.
 * Identity problems and most others carry their own `message`.
 */
export function problemOf(result, successType) {
  if (!result) return "The hub returned no result.";
  if (result.__typename === successType) return null;
  const words = PROBLEM_WORDS[result.__typename];
  return sentence(words ? words(result) : result.message || result.__typename.replace(/([a-z])([A-Z])/g, "$1 $2"));
}

function sentence(text) {
  const t = String(text).trim();
  return `${t.charAt(0).toUpperCase()}${t.slice(1)}${/[.!?]$/.test(t) ? "" : "."}`;
}
