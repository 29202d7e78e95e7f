/**
 * The JSON API client: one `request` that sends the session cookie, adds the
 * CSRF token to state-changing requests and turns failures into `ApiError`
 * (the server's `{"error": {code, message, details?}}`, or a network failure). A 401
 * outside sign-in dispatches `gapless:signed-out` on window.
 */

let csrfToken = "";

/** Remember the CSRF token of the signed-in session (from /api/session). */
export function setCsrfToken(token) {
  csrfToken = token ?? "";
}

/** A failed request: `status` is 0 when the server could not be reached. */
export class ApiError extends Error {
  constructor(status, code, message, details = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.details = details; // what the server pointed at, e.g. an import's bad lines
  }
}

const UNSAFE = new Set(["POST", "PATCH", "PUT", "DELETE"]);

/**
 * Call the API and answer the parsed JSON body (null for an empty body).
 * @param {string} method
 * @param {string} path  e.g. "/api/chats"
 * @param {object} [body]  sent as JSON
 * @returns {Promise<any>}
 */
export async function request(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (UNSAFE.has(method) && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "network", "Can't reach the server. Check your connection and try again.");
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (response.status === 401 && path !== "/api/session") {
    // the session ended (signed out elsewhere, expired): the app shows the sign-in page
    window.dispatchEvent(new CustomEvent("gapless:signed-out"));
  }
  if (!response.ok) {
    const error = data?.error ?? data?.detail?.error;
    const fallback = typeof data?.detail === "string" ? data.detail : `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, error?.code ?? `http_${response.status}`, error?.message ?? fallback, error?.details ?? null);
  }
  return data;
}

export const api = {
  get: (path) => request("GET", path),
  post: (path, body = {}) => request("POST", path, body),
  patch: (path, body) => request("PATCH", path, body),
  delete: (path) => request("DELETE", path),
};
