"""Packages handed to the systems distributors already run, each in that system's own format:
Nix expressions, Guix package definitions, CycloneDX ML-BOMs and SLSA provenance.

Every exporter is a function of a recipe (and, for provenance, of a build record) to text; none
fetches anything. What they write is deterministic: the same recipe gives the same bytes.
"""
