"""Risk: the guardian between every signal and every order."""
