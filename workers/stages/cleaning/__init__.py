"""Building blocks of the clean stage: normalisation, guards, line features, text dumps, HTML, metadata."""
