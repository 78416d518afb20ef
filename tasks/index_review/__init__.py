"""The index review: statistics and catalogue reads, turned into findings with the SQL to act on them."""
