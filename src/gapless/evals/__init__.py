"""Evaluations: versioned prompts with labels (`prompts`), their sandboxed templates
(`templates`), and feedback and scores on replies, traces and chats (`feedback`)."""
