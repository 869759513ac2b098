"""The reference responder: what a registrant runs to opt out of senders' batches.

``store`` keeps the registrant's protected addresses (canonical forms only)
and everything it learned; ``source`` reads articles (NNTP or a spool);
``scan`` finds the batches that list a protected address; ``ping`` sends the
proofs (HTTP, SMTP fallback) after checking the key binding.
"""
