/** Formatting and element helpers shared by the observability pages. */

export const fmt = {
  ms(value) {
    if (value === null || value === undefined) return "—";
    if (value < 1000) return `${Math.round(value)} ms`;
    if (value < 60_000) return `${(value / 1000).toFixed(2)} s`;
    return `${(value / 60_000).toFixed(1)} min`;
  },
  count(value) {
    if (value === null || value === undefined) return "—";
    const n = Number(value);
    if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
    if (n >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
    return n.toLocaleString();
  },
  cost(value) {
    if (value === null || value === undefined) return "—";
    const n = Number(value);
    return `$${n.toFixed(n === 0 ? 2 : n < 0.01 ? 5 : n < 100 ? 3 : 0)}`;
  },
  pct(value) {
    return value === null || value === undefined ? "—" : `${(Number(value) * 100).toFixed(1)}%`;
  },
  /** "14:05:03" today, "Nov 21, 14:05" another day. */
  when(iso) {
    if (!iso) return "—";
    const date = new Date(iso);
    if (date.toDateString() === new Date().toDateString()) {
      return date.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
    }
    const day = date.toLocaleDateString(undefined, { month: "short", day: "numeric" });
    return `${day}, ${date.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" })}`;
  },
};

/** An element from trusted markup; text goes in with `textContent` only. */
export function h(tag, attributes = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key === "style") el.style.cssText = value; // the CSSOM: the CSP refuses style attributes
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** The children that are there (`replaceChildren(null)` would show the text "null"). */
export function present(...children) {
  return children.filter((child) => child !== null && child !== undefined && child !== false);
}
