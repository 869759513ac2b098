"""Batches: create (snapshot + hash + proof index), article (write + parse), post."""
