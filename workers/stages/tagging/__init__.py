"""Helpers of the tag stage: lookup tables, span rules, in-article normalisation and salience."""
