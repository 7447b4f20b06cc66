"""Helpers the tests share: database servers, builders of commands and envelopes."""
