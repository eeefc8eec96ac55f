"""Listening tests: a self-contained MUSHRA + A/B page (:mod:`.build`, :mod:`.page`) and the
aggregation of the answers listeners download from it (:mod:`.results`)."""
