"""What a run captures: code, environment, params, files; and redaction of secrets."""
