/**
 * Which messages a chat shows: messages form a tree (PROTOCOL.md), and the
 * page shows one path from a root, taking at each step the child the user
 * chose, or else the newest. Pure; no DOM.
 */

/** Key of a parent in the children index (roots share the key ""). */
export const parentKey = (message) => message.parent_id ?? "";

const older = (a, b) =>
  a.created_at === b.created_at ? (a.id < b.id ? -1 : a.id > b.id ? 1 : 0) : a.created_at < b.created_at ? -1 : 1;

/**
 * Children of every parent, oldest first.
 * @param {Iterable<object>} messages
 * @returns {Map<string, object[]>}
 */
export function childrenOf(messages) {
  const index = new Map();
  for (const message of messages) {
    const key = parentKey(message);
    if (!index.has(key)) index.set(key, []);
    index.get(key).push(message);
  }
  for (const list of index.values()) list.sort(older);
  return index;
}

/**
 * The shown path: `[{message, siblings, index}]` from a root to a leaf.
 * @param {Iterable<object>} messages
 * @param {Map<string, string>} chosen  parent key -> id of the child the user picked
 */
export function shownPath(messages, chosen) {
  const index = childrenOf(messages);
  const path = [];
  const seen = new Set();
  let key = "";
  while (index.has(key) && !seen.has(key)) {
    seen.add(key);
    const siblings = index.get(key);
    let at = siblings.findIndex((message) => message.id === chosen.get(key));
    if (at < 0) at = siblings.length - 1;
    path.push({ message: siblings[at], siblings, index: at });
    key = siblings[at].id;
  }
  return path;
}
