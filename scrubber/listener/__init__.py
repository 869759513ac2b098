"""The opt-out listener: SMTP and HTTP edges over one ingest path."""
