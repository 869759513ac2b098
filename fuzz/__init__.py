"""Coverage-guided fuzzing (atheris) of the parsers that read untrusted bytes."""
