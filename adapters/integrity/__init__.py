"""Tamper evidence for the event log: the hash chain of each stream (`chain`, `recorders`),
RFC 9162 Merkle trees (`merkle`), Ed25519 signed tree heads (`tree_head`), and the verifier
that recomputes them all from the stored bytes (`verify`, `log_reader`)."""
