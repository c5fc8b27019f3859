"""Shared test helpers: fakes that speak the real protocols, and small builders."""
