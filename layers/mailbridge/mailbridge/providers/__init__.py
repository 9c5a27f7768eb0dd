"""Mail provider adapters: the only code that talks to mail servers (IMAP, Gmail, Graph, mbox)."""
