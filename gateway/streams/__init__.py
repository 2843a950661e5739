"""This gateway's link to the live streams: which are live, one relay per followed stream, and who watches what here."""
