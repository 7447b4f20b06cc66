"""Adapters: persistence, cryptography, authentication and outbound integrations."""
