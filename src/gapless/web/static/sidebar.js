/**
 * The chat list: newest first, live from the account stream, with rename
 * (inline) and delete on each entry.
 */
import { api } from "./api.js";

const ICON_RENAME = '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M4 20h4L19 9l-4-4L4 16v4z"/></svg>';
const ICON_DELETE =
  '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M4 7h16M10 11v6M14 11v6M6 7l1 13h10l1-13M9 7V4h6v3"/></svg>';

export class Sidebar {
  /** @param {{navigate: Function, toast: Function, currentChat: () => string|null, account: () => any}} shell */
  constructor(shell) {
    this.shell = shell;
    this.list = document.getElementById("chat-list");
    this.empty = document.getElementById("chat-list-empty");
    /** @type {Map<string, HTMLLIElement>} */
    this.items = new Map();
    this.chats = [];
    this.list.addEventListener("click", (event) => this.clicked(event));
  }

  /** Draw the chats (newest first), reusing items. */
  show(chats) {
    this.chats = chats;
    const current = this.shell.currentChat();
    const wanted = chats.map((chat) => {
      let item = this.items.get(chat.id);
      if (item === undefined) {
        item = document.createElement("li");
        item.className = "chat-item";
        item.dataset.id = chat.id;
        item.innerHTML =
          `<a class="chat-link" data-link></a>` +
          `<span class="chat-tools">` +
          `<button type="button" class="icon-button small" data-action="rename" aria-label="Rename chat" title="Rename">${ICON_RENAME}</button>` +
          `<button type="button" class="icon-button small" data-action="delete" aria-label="Delete chat" title="Delete">${ICON_DELETE}</button>` +
          `</span>`;
        this.items.set(chat.id, item);
      }
      const link = item.querySelector(".chat-link");
      if (link) {
        link.href = `/chats/${chat.id}`;
        link.textContent = chat.title || "New chat";
      }
      item.classList.toggle("current", chat.id === current);
      if (chat.id === current) item.querySelector(".chat-link")?.setAttribute("aria-current", "page");
      else item.querySelector(".chat-link")?.removeAttribute("aria-current");
      return item;
    });
    wanted.forEach((item, i) => {
      if (this.list.children[i] !== item) this.list.insertBefore(item, this.list.children[i] ?? null);
    });
    while (this.list.children.length > wanted.length) this.list.lastElementChild.remove();
    const ids = new Set(chats.map((chat) => chat.id));
    for (const id of this.items.keys()) if (!ids.has(id)) this.items.delete(id);
    this.empty.hidden = chats.length > 0;
  }

  /** Mark the open chat. */
  highlight() {
    this.show(this.chats);
  }

  clicked(event) {
    const button = event.target.closest("[data-action]");
    if (!button) return;
    const item = button.closest(".chat-item");
    const chat = this.chats.find((c) => c.id === item.dataset.id);
    if (!chat) return;
    if (button.dataset.action === "rename") this.rename(item, chat);
    if (button.dataset.action === "delete") this.remove(chat);
  }

  rename(item, chat) {
    const link = item.querySelector(".chat-link");
    const input = document.createElement("input");
    input.className = "rename-input";
    input.value = chat.title || "";
    input.setAttribute("aria-label", "Chat title");
    link.replaceWith(input);
    input.focus();
    input.select();
    let done = false;
    const finish = async (save) => {
      if (done) return;
      done = true;
      input.replaceWith(link);
      const title = input.value.trim();
      if (!save || title === "" || title === chat.title) return;
      link.textContent = title;
      try {
        const updated = await api.patch(`/api/chats/${encodeURIComponent(chat.id)}`, { title });
        this.shell.account().upsert(updated);
        this.shell.account().emit();
      } catch (error) {
        link.textContent = chat.title || "New chat";
        this.shell.toast(`Couldn't rename: ${error.message}`);
      }
    };
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter") finish(true);
      if (event.key === "Escape") finish(false);
    });
    input.addEventListener("blur", () => finish(true));
  }

  async remove(chat) {
    if (!window.confirm(`Delete “${chat.title || "New chat"}”? This can't be undone.`)) return;
    try {
      await api.delete(`/api/chats/${encodeURIComponent(chat.id)}`);
      this.shell.account().remove(chat.id);
      if (this.shell.currentChat() === chat.id) this.shell.navigate("/", { replace: true });
    } catch (error) {
      this.shell.toast(`Couldn't delete: ${error.message}`);
    }
  }
}
