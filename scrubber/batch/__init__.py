"""Batches: create (snapshot + hash + members and tags), article (write + parse), post."""
