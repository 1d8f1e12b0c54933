"""Optical music recognition for ocrframe (CRNN paper, section 3.4): pitch-sequence datasets
(engraved synthetic snippets, PrIMuS / Camera-PrIMuS folders) and their metrics."""
