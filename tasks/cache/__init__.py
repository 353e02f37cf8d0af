"""Cache warming for a release: copy (and reshape) blue's cache namespace into green's."""
