/**
 * Messages that could not be sent, kept in sessionStorage per chat, so a
 * reload or a sign-in in between loses nothing the user typed. Only failed
 * messages are kept: one still on its way may have reached the server.
 */

const key = (chatId) => `gapless:unsent:${chatId ?? "new"}`;

/**
 * Remember the failed entries of `outbox` for `chatId` (null: a chat not created yet).
 * @param {string|null} chatId
 * @param {{localId: string, content: string, parentId: string|null, state: string, error: string}[]} outbox
 */
export function keepUnsent(chatId, outbox) {
  const failed = outbox
    .filter((entry) => entry.state === "failed")
    .map(({ localId, content, parentId, error }) => ({ localId, content, parentId, error, state: "failed" }));
  try {
    if (failed.length) sessionStorage.setItem(key(chatId), JSON.stringify(failed));
    else sessionStorage.removeItem(key(chatId));
  } catch {
    // storage full or disabled: the messages stay on the page, just not across a reload
  }
}

/** The failed entries kept for `chatId`, ready to show and retry. */
export function unsent(chatId) {
  try {
    const entries = JSON.parse(sessionStorage.getItem(key(chatId)) ?? "[]");
    return Array.isArray(entries) ? entries : [];
  } catch {
    return [];
  }
}
