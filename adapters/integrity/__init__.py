"""Tamper evidence for the event log: RFC 9162 Merkle trees and Ed25519 signed tree heads."""
