"""Models: collaborative filtering, text, audio and cold start, behind one contract (base.py)."""
