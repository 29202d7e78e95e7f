/**
 * Markdown to safe DOM, for text that may still be streaming.
 *
 * The pipeline is `DOMPurify.sanitize(marked.parse(remend(text)))`: remend
 * closes unfinished emphasis, inline code and links so a half-written reply
 * reads naturally (an open code fence is already code to marked); raw HTML
 * from the model is shown as text, never parsed; DOMPurify then removes
 * anything executable that slipped through (scripts, event handlers,
 * `javascript:` and other non-web links) and images (no pixels load from
 * a model's reply). `patch` swaps only the blocks that changed, so a
 * streaming reply redraws its last paragraph, not the whole message.
 */
import DOMPurify from "dompurify";
import hljs from "highlight";
import { Marked } from "marked";
import remend from "remend";

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** @param {string} text */
export const escapeHtml = (text) => text.replace(/[&<>"']/g, (c) => ESCAPES[c]);

const markdown = new Marked({
  gfm: true,
  breaks: false,
  renderer: {
    code({ text, lang }) {
      const language = (lang ?? "").trim().split(/\s+/)[0].toLowerCase();
      const known = language !== "" && hljs.getLanguage(language) !== undefined;
      const body = known ? hljs.highlight(text, { language, ignoreIllegals: true }).value : escapeHtml(text);
      const label = escapeHtml(language || "text");
      return (
        `<pre data-lang="${label}"><button type="button" class="code-copy" aria-label="Copy code"></button>` +
        `<code class="hljs${known ? ` language-${label}` : ""}">${body}</code></pre>\n`
      );
    },
    // A model's HTML is text to show, not markup to run.
    html({ text }) {
      return escapeHtml(text);
    },
    // Images become links: nothing is fetched on the reader's behalf.
    image({ href, text }) {
      return `<a href="${escapeHtml(href)}">${escapeHtml(text || href)}</a>`;
    },
  },
});

const SAFE_URL = /^(?:https?:|mailto:|#)/i;

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") {
    const href = node.getAttribute("href");
    if (href === null || !SAFE_URL.test(href)) {
      node.removeAttribute("href");
    } else if (!href.startsWith("#")) {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer nofollow");
    }
  }
});

const PURIFY = {
  FORBID_TAGS: ["img", "style", "form", "input", "textarea", "select", "iframe", "object", "embed", "svg", "math", "video", "audio", "source"],
  FORBID_ATTR: ["style"],
  ALLOWED_URI_REGEXP: SAFE_URL,
  RETURN_DOM_FRAGMENT: true,
};

/**
 * Sanitised DOM for a (possibly unfinished) Markdown text.
 * @param {string} text
 * @param {{streaming?: boolean}} [options]  heal unfinished syntax when streaming
 * @returns {DocumentFragment}
 */
export function toFragment(text, { streaming = false } = {}) {
  const source = streaming ? remend(text) : text;
  return DOMPurify.sanitize(markdown.parse(source, { async: false }), PURIFY);
}

/**
 * Make `container` show `text`, replacing only the top-level blocks from the
 * first one that differs (the unchanged start is left alone: no flicker, and
 * a selection in an earlier paragraph survives).
 * @param {HTMLElement} container
 * @param {string} text
 * @param {{streaming?: boolean}} [options]
 */
export function patch(container, text, options) {
  const next = [...toFragment(text, options).childNodes];
  const current = [...container.childNodes];
  let same = 0;
  while (same < next.length && same < current.length && current[same].isEqualNode(next[same])) same += 1;
  for (let i = same; i < next.length; i += 1) {
    if (i < current.length) container.replaceChild(next[i], current[i]);
    else container.appendChild(next[i]);
  }
  for (let i = next.length; i < current.length; i += 1) current[i].remove();
}
