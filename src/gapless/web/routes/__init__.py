"""HTTP resources by domain, one module each (`chats` and the rest are still in `web.api`)."""
