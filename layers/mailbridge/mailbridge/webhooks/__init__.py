"""Provider push receipt: verify, acknowledge at once, enqueue a sync; never process inline.
A push is a hint; the stored cursor is the truth (DESIGN.md)."""
