"""Two-way contact sync with a connected CRM (issue 18 points 3 and 6): field mapping, conflict
policy, deletions, runs."""
