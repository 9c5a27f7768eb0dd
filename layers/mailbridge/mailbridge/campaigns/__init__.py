"""Campaign sending (issue 17 point 4): one outbound email per audience contact, exactly once,
throttled per sending account and resumable; and the suppression list it leaves out."""
