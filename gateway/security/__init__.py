"""Who is calling and what they may do: passwords, tokens, rate limits, the injection guard."""
